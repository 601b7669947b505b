"""``hushlab stream``: the real-time engine without a GUI.

Examples:
  hushlab stream --input noisy.wav --output out.wav --as-fast-as-possible
  hushlab stream --input clean.wav --noise fan.wav --snr 0 --output speaker --model baseline \\
      --ab bypass --switch-every 2
  hushlab stream --input mic --output out.wav --seconds 20
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", default="mic", help="mic, a device index/name, or an audio file")
    p.add_argument(
        "--output",
        default="speaker",
        help="speaker, a device index/name, an audio file, virtual-mic (a microphone named "
        "'Hushlab' that other applications can record from), or FILE,speaker for both",
    )
    p.add_argument("--model", default="baseline", help="processor A (default: baseline)")
    p.add_argument("--ab", default="", help="processor B, run side by side with A")
    p.add_argument(
        "--switch-every",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="alternate A and B every SECONDS",
    )
    p.add_argument(
        "--schedule", default="", help="switch times in seconds, comma separated (alternates A/B)"
    )
    p.add_argument("--noise", default="", help="noise file mixed into a file input")
    p.add_argument("--snr", type=float, default=0.0, help="SNR of that mix in dB")
    p.add_argument("--loop", action="store_true", help="loop a file input")
    p.add_argument(
        "--seconds",
        type=float,
        default=0.0,
        help="stop after this long (0: at the end of a file input, or on Ctrl-C)",
    )
    pace = p.add_mutually_exclusive_group()
    pace.add_argument(
        "--realtime",
        dest="realtime",
        action="store_true",
        default=None,
        help="play a file input at real-time pace (default with a speaker)",
    )
    pace.add_argument(
        "--as-fast-as-possible",
        dest="realtime",
        action="store_false",
        help="process a file input as fast as possible (default to a file)",
    )
    p.add_argument(
        "--rate",
        type=int,
        default=0,
        help="engine/device rate (default: the device's; file to file: the input file's)",
    )
    p.add_argument("--wet", type=float, default=1.0, help="1 = processed only, 0 = dry only")
    p.add_argument(
        "--match-loudness",
        action="store_true",
        help="play every processor at one active speech level (-26 dBFS), as listening tests do",
    )
    p.add_argument("--record-input", default="", help="also record the input to this WAV")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx", "onnx-int8"])
    p.add_argument("--json", default="", metavar="PATH", help="write the health summary here")


def _is_device(spec: str) -> bool:
    if spec == "virtual-mic":
        return True
    return (
        spec in ("mic", "speaker", "default")
        or spec.isdigit()
        or not (Path(spec).suffix or "/" in spec)
    )


def build_engine(args):
    from app.engine import DeviceSource
    from models.processor import load_processor

    procs = [load_processor(args.model, backend=args.backend)]
    if args.ab:
        procs.append(load_processor(args.ab, backend=args.backend, bypass_like=procs[0]))
    outs = [o.strip() for o in args.output.split(",") if o.strip()]
    in_is_device = _is_device(args.input)
    source_dev = DeviceSource(None if args.input == "mic" else args.input) if in_is_device else None
    speaker = next((o for o in outs if _is_device(o)), None)
    opened: list = []  # what this function opened, released if a later step fails
    try:
        return _build(args, procs, outs, in_is_device, source_dev, speaker, opened)
    except BaseException:
        _close_all(opened)
        raise


def _close_all(things) -> None:
    """Close each of ``things`` (newest first), whatever the others do."""
    for t in reversed(things):
        try:
            t.close()
        except Exception:  # already failing: the first error is the one to report
            pass


def _build(args, procs, outs, in_is_device, source_dev, speaker, opened):
    from app.engine import Engine, EngineConfig, FileSink, FileSource, SpeakerSink

    vmic = None
    if speaker == "virtual-mic":
        from app.virtual_mic import VirtualMic

        vmic = VirtualMic().open()  # routes this process's 'pulse' output into it
        opened.append(vmic)
        speaker = "pulse"
    sink_dev = SpeakerSink(None if speaker == "speaker" else speaker) if speaker else None
    if sink_dev is not None:
        opened.append(sink_dev)
    file_to_file = not in_is_device and sink_dev is None
    if args.rate:
        rate = args.rate
    elif source_dev or sink_dev:
        rate = (source_dev or sink_dev).device["rate"]
    else:  # file to file: keep the input's rate
        import soundfile as sf

        from dsp.audio_io import AudioError

        try:
            rate = sf.info(args.input).samplerate
        except Exception as exc:
            raise AudioError(f"{args.input}: cannot read audio ({exc})") from None
    realtime = args.realtime
    if realtime is None:
        realtime = in_is_device or sink_dev is not None
    cfg = EngineConfig(rate=rate, block=max(1, rate // 100), realtime=realtime)
    engine = Engine(procs, cfg)
    engine.set_wet(args.wet)
    engine.level_match = args.match_loudness
    source = source_dev or FileSource(
        args.input, rate, noise=args.noise or None, snr=args.snr, loop=args.loop
    )
    sinks = []
    # file to file: the output lines up with the input, sample for sample, and has its length
    align = file_to_file and not args.loop and not args.seconds
    for o in outs:
        if not _is_device(o):
            sink = FileSink(
                o,
                rate,
                record_input=args.record_input or None,
                skip=engine.latency_samples if align else 0,
                limit=len(source.audio) if align else None,
            )
            opened.append(sink)
            sinks.append(sink)
    if sink_dev:
        sinks.append(sink_dev)
    if args.record_input and not any(isinstance(s, FileSink) for s in sinks):
        from dsp.errors import UserError

        raise UserError("--record-input needs a file output to pair with")
    engine.virtual_mic = vmic
    return engine, source, sinks


def run(args) -> int:
    engine, source, sinks = build_engine(args)
    if getattr(engine, "virtual_mic", None):
        print("virtual microphone 'Hushlab' is live: pick it in any application", flush=True)
    schedule = []
    if args.schedule:
        schedule = [float(t) for t in args.schedule.split(",")]
    try:
        engine.start(source, sinks)
    except BaseException:  # nothing streams: release the devices and files build_engine opened
        _close_all([x for x in (engine.virtual_mic, *sinks) if x is not None])
        raise
    t0 = time.monotonic()
    which = 0
    next_switch = args.switch_every if args.switch_every > 0 else None
    try:
        while not engine.finished.is_set():
            audio_t = engine.samples_in / engine.cfg.rate
            if args.seconds and audio_t >= args.seconds:
                break
            if len(engine.procs) > 1:
                due = (next_switch is not None and audio_t >= next_switch) or (
                    schedule and audio_t >= schedule[0]
                )
                if due:
                    which = 1 - which
                    engine.request_active(which)
                    if next_switch is not None:
                        next_switch += args.switch_every
                    if schedule and audio_t >= schedule[0]:
                        schedule.pop(0)
            time.sleep(0.002 if not engine.cfg.realtime else 0.01)
    except KeyboardInterrupt:
        pass
    finally:
        engine.stop()
        if getattr(engine, "virtual_mic", None):
            engine.virtual_mic.close()
    h = engine.health()
    h["wall_seconds"] = round(time.monotonic() - t0, 2)
    h["processors"] = engine.names()
    print(
        f"streamed {h['audio_seconds']:.1f} s of audio in {h['wall_seconds']:.1f} s through "
        f"{', '.join(f'{p.name} ({p.backend})' for p in engine.procs)}"
    )
    print(
        f"per hop: p50 {h['ms_per_hop_p50']:.2f} ms, p99 {h['ms_per_hop_p99']:.2f} ms; "
        f"RTF {h['rtf']:.3f}; latency {h['latency_ms']:.1f} ms (algorithmic "
        f"{h['algorithmic_latency_ms']:.1f} ms)"
    )
    print(
        f"xruns: input {h['input_xruns']}, output {h['output_xruns']}, underruns "
        f"{h['underruns']}; dropped input {h['dropped_input_samples']} samples"
    )
    for m in h["messages"]:
        print(f"note: {m}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(h, indent=2))
    return 0
