"""End-to-end latency of `hushlab stream` through real PortAudio devices, measured with speech.

Two PulseAudio null sinks stand in for a sound card: the engine records the monitor of `vsink`
(its microphone) and plays to `vout` (its speaker). A probe plays clean speech (the demo clip;
an enhancer keeps speech, where it would remove test clicks as noise) into `vsink` and, in the
same full-duplex stream, records the monitor of `vout`; the delay of the cross-correlation peak
is the whole path: the engine's input device, its processing and buffering, its output device,
plus the probe's own loopback, which a second run without the engine (the probe records
`vsink`'s monitor directly) measures and which is subtracted.

    python scripts/measure_latency.py [--model baseline] [--json runs/latency.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RATE = 48000
REPO = Path(__file__).resolve().parents[1]


def speech(seconds: float) -> np.ndarray:
    """The demo's clean speech at 48 kHz, 0.5 s of silence first, ``seconds`` long."""
    from dsp.audio_io import load_audio

    x, _ = load_audio(REPO / "app" / "assets" / "demo_clean.flac", RATE)
    x = np.concatenate([np.zeros(RATE // 2, np.float32), 0.5 * x / (np.max(np.abs(x)) + 1e-9)])
    return np.resize(x, int(seconds * RATE)).astype(np.float32)


def probe(sink: str, source: str, signal: np.ndarray) -> np.ndarray:
    """Play ``signal`` into ``sink`` while recording ``source`` (one full-duplex stream, in a
    child process so that PulseAudio routes by environment)."""
    code = (
        "import sys, numpy as np, sounddevice as sd; "
        "x = np.load(sys.argv[1]); "
        f"y = sd.playrec(x, samplerate={RATE}, channels=1, dtype='float32', device='pulse'); "
        "sd.wait(); np.save(sys.argv[2], y[:, 0])"
    )
    tmp = REPO / "runs"
    tmp.mkdir(exist_ok=True)
    np.save(tmp / "probe_in.npy", signal)
    env = {**os.environ, "PULSE_SINK": sink, "PULSE_SOURCE": source}
    subprocess.run(
        [sys.executable, "-c", code, str(tmp / "probe_in.npy"), str(tmp / "probe_out.npy")],
        env=env,
        check=True,
        timeout=120,
    )
    return np.load(tmp / "probe_out.npy")


def delay_ms(played: np.ndarray, recorded: np.ndarray, max_ms: float = 600.0) -> float | None:
    """Delay of ``recorded`` behind ``played`` (ms) at the cross-correlation peak, or None when
    the peak is not clear (nothing arrived)."""
    n = len(played) + len(recorded)
    spec = np.fft.rfft(recorded, n) * np.conj(np.fft.rfft(played, n))
    c = np.fft.irfft(spec, n)[: int(max_ms / 1000 * RATE)]
    k = int(np.argmax(c))
    if c[k] < 4 * np.median(np.abs(c)) or c[k] <= 0:
        return None
    return 1000 * k / RATE


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="baseline")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--json", default="runs/latency.json")
    args = p.parse_args()
    for name in ("vsink", "vout"):
        listed = subprocess.run(["pactl", "list", "short", "sinks"], capture_output=True, text=True)
        if name not in listed.stdout:
            subprocess.run(
                ["pactl", "load-module", "module-null-sink", f"sink_name={name}"], check=True
            )
    sys.path.insert(0, str(REPO))
    sig = speech(args.seconds)
    base = delay_ms(sig, probe("vsink", "vsink.monitor", sig))
    env = {**os.environ, "PULSE_SOURCE": "vsink.monitor", "PULSE_SINK": "vout"}
    health = REPO / "runs" / "latency-stream.json"
    eng = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.cli",
            "stream",
            "--input",
            "default",
            "--output",
            "speaker",
            "--model",
            args.model,
            "--rate",
            str(RATE),
            "--seconds",
            str(args.seconds + 4),
            "--json",
            str(health),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    time.sleep(2.5)  # model loaded, streams open
    through = delay_ms(sig, probe("vsink", "vout.monitor", sig))
    eng.wait(timeout=120)
    h = json.loads(health.read_text())
    res = {
        "model": args.model,
        "probe_loopback_ms": base,
        "through_engine_ms": through,
        "computed_latency_ms": h["latency_ms"],
        "algorithmic_latency_ms": h["algorithmic_latency_ms"],
    }
    if base is not None and through is not None:
        res["measured_latency_ms"] = through - base
    Path(args.json).write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))
    return 0 if base is not None and through is not None else 1


if __name__ == "__main__":
    sys.exit(main())
