"""The real-time engine: a source, a set of processors running side by side, and sinks.

Threads:
- audio callbacks (PortAudio) only copy into or out of preallocated rings and count xruns;
- a worker thread drains the input ring, resamples to each processor's rate, runs every slot
  (so each keeps its state warm), aligns the slots to a common latency, crossfades between the
  active slot and the previous one on a switch, mixes in the dry signal (dry/wet), resamples
  back and fills the output ring; it also fills the display buffers and the health figures;
- whoever owns the engine (CLI or GUI) reads ``health()`` and the display buffers, and asks for a
  switch with ``request_active(i)``: a plain attribute write, applied by the worker at the next
  block boundary.
No Qt here. Nothing in a callback allocates sample storage, logs, locks or touches torch.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from app.display import ColumnHistory, full_scale_magnitude, magnitude_db
from dsp.errors import UserError
from dsp.resample import StreamResampler
from dsp.ringbuffer import RingBuffer
from dsp.stft import StftGeometry, StreamingStft, window
from models.processor import Bypass, Processor

log = logging.getLogger(__name__)


class EngineError(UserError):
    pass


class LatencyTooLong(EngineError):
    """A processor needs more latency than a running engine was built for: restart it."""


# -- sources -------------------------------------------------------------------------------


class FileSource:
    """A file played as if it were a microphone: mono, at ``rate``, optionally looped and mixed
    with a noise file at a chosen SNR (then ``clean`` holds the scaled clean reference)."""

    kind = "file"

    def __init__(
        self,
        path,
        rate: int,
        noise=None,
        snr: float = 0.0,
        loop: bool = False,
        level_dbfs: float | None = None,
        audio: np.ndarray | None = None,
    ):
        from dsp.audio_io import load_audio
        from dsp.mixing import fit_length, mix_at_snr

        if audio is not None:
            x = np.asarray(audio, np.float32)
        else:
            x, _ = load_audio(path, rate, allow_silent=False)
        self.clean = None
        if noise is not None:
            v = noise if isinstance(noise, np.ndarray) else load_audio(noise, rate)[0]
            v = fit_length(np.asarray(v, np.float32), len(x))
            x, self.clean, _ = mix_at_snr(x, v, snr, level_dbfs=level_dbfs)
        self.audio = x
        self.rate = rate
        self.loop = loop
        self.pos = 0
        self.name = str(path) if path else "array"

    def read(self, n: int) -> np.ndarray | None:
        """Next ``n`` samples (fewer at the end); None when finished."""
        if self.pos >= len(self.audio):
            if not self.loop:
                return None
            self.pos = 0
        out = self.audio[self.pos : self.pos + n]
        self.pos += len(out)
        if self.loop and len(out) < n:
            self.pos = 0
            out = np.concatenate([out, self.audio[: n - len(out)]])
        return out


def list_devices() -> list[dict]:
    """Audio devices with host API and default rate; [] when PortAudio finds none."""
    try:
        import sounddevice as sd

        devs = sd.query_devices()
        apis = sd.query_hostapis()
    except Exception as exc:  # PortAudio missing or broken
        log.debug("no audio devices: %s", exc)
        return []
    out = []
    for i, d in enumerate(devs):
        out.append(
            {
                "index": i,
                "name": d["name"],
                "hostapi": apis[d["hostapi"]]["name"],
                "inputs": d["max_input_channels"],
                "outputs": d["max_output_channels"],
                "rate": int(d["default_samplerate"]),
            }
        )
    return out


def resolve_device(spec, want: str) -> dict:
    """'mic'/'speaker'/'default', an index or a name fragment -> device dict (clear errors)."""
    devs = list_devices()
    key = "inputs" if want == "input" else "outputs"
    cands = [d for d in devs if d[key] > 0]
    if not cands:
        raise EngineError(
            f"no audio {want} devices found (is a sound server running? on a "
            "machine without a sound card use a file source)"
        )
    if spec in (None, "", "mic", "speaker", "default"):
        try:
            import sounddevice as sd

            idx = sd.default.device[0 if want == "input" else 1]
            for d in cands:
                if d["index"] == idx:
                    return d
        except Exception as exc:  # no default device set: fall back to the names below
            log.debug("no default %s device: %s", want, exc)
        for d in cands:
            if d["name"] in ("default", "pulse"):
                return d
        return cands[0]
    if str(spec).isdigit():
        for d in cands:
            if d["index"] == int(spec):
                return d
        raise EngineError(f"no {want} device with index {spec}")
    for d in cands:
        if str(spec).lower() in d["name"].lower():
            return d
    names = ", ".join(d["name"] for d in cands)
    raise EngineError(f"no {want} device matching '{spec}' (have: {names})")


# -- engine --------------------------------------------------------------------------------


@dataclass
class _Slot:
    proc: Processor
    state: object
    rs_in: StreamResampler
    rs_out: StreamResampler
    fifo_in: np.ndarray  # proc-rate samples waiting for a whole hop
    out: collections.deque = field(default_factory=collections.deque)  # device-rate blocks
    out_len: int = 0
    error: str = ""


@dataclass
class EngineConfig:
    rate: int = 48000  # device / engine rate (Hz)
    block: int = 480  # samples per worker cycle and per file-source push (10 ms at 48 kHz)
    crossfade_ms: float = 20.0
    ring_seconds: float = 2.0
    min_output_fill_ms: float = 20.0  # initial output buffering, grows on underruns
    max_output_fill_ms: float = 200.0
    max_input_backlog_ms: float = 300.0  # beyond this the worker drops input to catch up
    display_columns: int = 400  # 8 s of 20 ms columns
    realtime: bool = True


class Engine:
    def __init__(
        self, processors: list[Processor], cfg: EngineConfig | None = None, active: int = 0
    ):
        if not processors:
            raise EngineError("the engine needs at least one processor")
        self.cfg = cfg or EngineConfig()
        c = self.cfg
        self.procs = list(processors)
        # a hidden dry slot (bypass at the device rate: full band, no resampling) gives the
        # time-aligned dry signal for dry/wet and display
        self._dry = Bypass(c.rate, c.block, 0)
        self.slots = [self._make_slot(p) for p in [*self.procs, self._dry]]
        lat = [self._slot_latency(s.proc) for s in self.slots]
        self.latency_samples = max(lat)  # device samples every slot is aligned to
        for s, lt in zip(self.slots, lat, strict=True):  # pad each slot up to the common latency
            pad = self.latency_samples - lt
            if pad:
                s.out.append(np.zeros(pad, np.float32))
                s.out_len += pad
        self.active = min(max(0, active), len(self.procs) - 1)
        self._pending: collections.deque = collections.deque()  # replacements for the worker
        self._mixed = 0  # device samples mixed so far (the output's position)
        self._requested = self.active
        self._prev = self.active
        self._fade_len = max(1, int(c.rate * c.crossfade_ms / 1000))
        self._fade_pos = self._fade_len  # >= len: no fade in progress
        theta = np.linspace(0, np.pi / 2, self._fade_len, dtype=np.float32)
        self._fade_in, self._fade_out = np.sin(theta), np.cos(theta)
        self.wet = 1.0  # 1 = processed only, 0 = dry only
        cap = int(c.rate * c.ring_seconds)
        self.in_ring = RingBuffer(cap)
        self.out_ring = RingBuffer(cap)
        self._out_fill_target = int(c.rate * c.min_output_fill_ms / 1000)
        self._geom = StftGeometry()
        self._db_ref = full_scale_magnitude(window(self._geom))  # columns are in dBFS
        self._disp_rs_in = StreamResampler(c.rate, 16000)
        self._disp_rs_out = StreamResampler(c.rate, 16000)
        self._disp_stft_in, self._disp_stft_out = StreamingStft(), StreamingStft()
        self._disp_buf_in = np.zeros(0, np.float32)
        self._disp_buf_out = np.zeros(0, np.float32)
        self.spec_in = ColumnHistory(c.display_columns, self._geom.n_bins)
        self.spec_out = ColumnHistory(c.display_columns, self._geom.n_bins)
        self.level_in_db = -120.0
        self.level_out_db = -120.0
        # health
        self._hop_times = collections.deque(maxlen=2000)
        self._busy_s = 0.0
        self._audio_s = 0.0
        self.input_xruns = 0
        self.output_xruns = 0  # written by the output callback only
        self.output_overflows = 0  # written by the worker only
        self.dropped_input = 0
        self.underruns = 0
        self.buffer_grows = 0
        self.buffer_shrinks = 0
        self._last_underflows = 0
        self._calm_since = time.monotonic()
        self.messages: collections.deque = collections.deque(maxlen=50)
        self._warned: set[str] = set()
        self.device_latency_s = 0.0
        # I/O
        self.source = None
        self.sinks: list = []
        self._file_sinks: list = []
        self._streams: list = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.finished = threading.Event()
        self.running = False
        self.samples_in = 0
        self.samples_out = 0

    # -- setup -----------------------------------------------------------------------------
    def _make_slot(self, p: Processor) -> _Slot:
        return _Slot(
            p,
            p.init_state(),
            StreamResampler(self.cfg.rate, p.sample_rate),
            StreamResampler(p.sample_rate, self.cfg.rate),
            np.zeros(0, np.float32),
        )

    def _slot_latency(self, p: Processor) -> int:
        """A slot's output delay in device samples (its algorithmic delay, rounded)."""
        return int(round(p.latency_samples * self.cfg.rate / p.sample_rate))

    @property
    def algorithmic_latency_ms(self) -> float:
        """Common slot delay plus the largest hop of buffering."""
        hop_s = max(p.hop / p.sample_rate for p in self.procs)
        return 1000 * (self.latency_samples / self.cfg.rate + hop_s)

    def names(self) -> list[str]:
        return [p.name for p in self.procs]

    def warn_once(self, key: str, text: str) -> None:
        """Rate-limited messages: each key once per engine run."""
        if key not in self._warned:
            self._warned.add(key)
            self.messages.append(text)
            log.warning(text)

    # -- control (any thread) ---------------------------------------------------------------
    def request_active(self, index: int) -> None:
        """Ask for slot ``index`` to become audible; applied at the next block boundary."""
        if not 0 <= index < len(self.procs):
            raise IndexError(f"no processor {index} (have {len(self.procs)})")
        self._requested = index

    def add_sink(self, sink: FileSink) -> None:
        """Start writing to another file sink while running (for example, recording)."""
        self.sinks = [*self.sinks, sink]
        self._file_sinks = [*self._file_sinks, sink]

    def remove_sink(self, sink: FileSink) -> None:
        """Stop writing to a sink; the worker sees the change at its next block. The caller
        closes the sink once the worker is past it."""
        self._file_sinks = [s for s in self._file_sinks if s is not sink]
        self.sinks = [s for s in self.sinks if s is not sink]

    def set_wet(self, wet: float) -> None:
        self.wet = float(min(1.0, max(0.0, wet)))

    def replace_processor(self, index: int, proc: Processor) -> None:
        """Swap a slot's processor (load it first, off the audio path; any thread). The swap
        is applied by the worker at its next block, with fresh state, aligned to the others.
        Raises :class:`LatencyTooLong` if the engine must be restarted for it."""
        if not 0 <= index < len(self.procs):
            raise IndexError(f"no processor {index} (have {len(self.procs)})")
        lat = self._slot_latency(proc)
        if lat > self.latency_samples:
            raise LatencyTooLong(
                f"{proc.name} needs {lat} samples of latency, more than this "
                f"engine's {self.latency_samples}; restart the engine with it"
            )
        self._pending.append((index, proc, self._make_slot(proc)))

    def _apply_replacements(self) -> None:
        """Worker side of ``replace_processor``. A slot starting now (input position T) emits
        its sample m for input T + m - lat; on the output that belongs at T + m - lat + L, and
        the output has reached ``self._mixed``: so its queue starts with that many zeros."""
        while self._pending:
            index, proc, slot = self._pending.popleft()
            pad = self.samples_in + self.latency_samples - self._slot_latency(proc) - self._mixed
            if pad > 0:
                slot.out.append(np.zeros(pad, np.float32))
                slot.out_len = pad
            self.procs = [*self.procs[:index], proc, *self.procs[index + 1 :]]
            self.slots = [*self.slots[:index], slot, *self.slots[index + 1 :]]

    # -- the worker's per-block work (also callable directly in tests) -----------------------
    def process_block(self, x: np.ndarray) -> np.ndarray | None:
        """Feed one device-rate block; returns the mixed output that became ready (maybe empty)."""
        t0 = time.perf_counter()
        if self._pending:
            self._apply_replacements()
        self.samples_in += len(x)
        for slot in self.slots:
            try:
                self._run_slot(slot, x)
            except Exception as exc:  # a failing processor goes silent; the engine keeps going
                slot.error = f"{slot.proc.name}: {type(exc).__name__}: {exc}"
                self.warn_once(f"slot-{id(slot)}", f"processor failed, muted: {slot.error}")
                n = len(x)
                slot.out.append(np.zeros(n, np.float32))
                slot.out_len += n
        n = min(s.out_len for s in self.slots)
        out = self._mix(n) if n > 0 else np.zeros(0, np.float32)
        self._mixed += len(out)
        self._display(x, out)
        dt = time.perf_counter() - t0  # every slot, mixing and the display work
        self._busy_s += dt
        audio_s = len(x) / self.cfg.rate
        self._audio_s += audio_s
        if audio_s:  # the cost of 20 ms of audio (one model hop), whatever the block size
            self._hop_times.append(dt * 0.020 / audio_s)
        return out

    def _run_slot(self, slot: _Slot, x: np.ndarray) -> int:
        """Feed one block to a slot; returns the hops it ran."""
        p = slot.proc
        y = slot.rs_in.process(x)
        buf = np.concatenate([slot.fifo_in, y]) if len(slot.fifo_in) else y
        k = len(buf) // p.hop
        outs = []
        for i in range(k):
            o, slot.state = p.step(buf[i * p.hop : (i + 1) * p.hop], slot.state)
            outs.append(o)
        slot.fifo_in = buf[k * p.hop :].copy()
        if outs:
            z = slot.rs_out.process(np.concatenate(outs).astype(np.float32, copy=False))
            if len(z):
                slot.out.append(z)
                slot.out_len += len(z)
        return k

    @staticmethod
    def _take(slot: _Slot, n: int) -> np.ndarray:
        if n <= 0:
            return np.zeros(0, np.float32)
        parts, need = [], n
        while need > 0:
            blk = slot.out[0]
            if len(blk) <= need:
                parts.append(slot.out.popleft())
                need -= len(blk)
            else:
                parts.append(blk[:need])
                slot.out[0] = blk[need:]
                need = 0
        slot.out_len -= n
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _mix(self, n: int) -> np.ndarray:
        taken = [self._take(s, n) for s in self.slots]
        dry = taken[-1]
        req = self._requested
        if req != self.active:  # apply a switch at this block boundary
            self._prev, self.active = self.active, req
            self._fade_pos = 0
        wet_sig = taken[self.active]
        if self._fade_pos < self._fade_len:
            m = min(n, self._fade_len - self._fade_pos)
            seg = slice(self._fade_pos, self._fade_pos + m)
            wet_sig = wet_sig.copy()
            wet_sig[:m] = (
                self._fade_in[seg] * taken[self.active][:m]
                + self._fade_out[seg] * taken[self._prev][:m]
            )
            self._fade_pos += m
        if self.wet >= 1.0:
            return wet_sig
        return self.wet * wet_sig + (1 - self.wet) * dry

    def _display(self, x: np.ndarray, out: np.ndarray) -> None:
        for rs, stft_, hist, buf_name, sig in (
            (self._disp_rs_in, self._disp_stft_in, self.spec_in, "_disp_buf_in", x),
            (self._disp_rs_out, self._disp_stft_out, self.spec_out, "_disp_buf_out", out),
        ):
            if not len(sig):
                continue
            y = rs.process(sig)
            buf = getattr(self, buf_name)
            buf = np.concatenate([buf, y]) if len(buf) else y
            h = self._geom.hop
            k = len(buf) // h
            for i in range(k):
                hist.push(magnitude_db(stft_.push(buf[i * h : (i + 1) * h]), self._db_ref))
            setattr(self, buf_name, buf[k * h :].copy())
        if len(x):
            self.level_in_db = 10 * math.log10(float(np.mean(x.astype(np.float64) ** 2)) + 1e-12)
        if len(out):
            self.level_out_db = 10 * math.log10(float(np.mean(out.astype(np.float64) ** 2)) + 1e-12)

    # -- running -----------------------------------------------------------------------------
    def start(self, source, sinks: list) -> None:
        """``source``: a FileSource or ('device', spec); ``sinks``: FileSink / SpeakerSink."""
        if self.running:
            raise EngineError("engine already running")
        self.source = source
        self.sinks = list(sinks)
        self._file_sinks = [s for s in self.sinks if isinstance(s, FileSink)]
        self._stop.clear()
        self.finished.clear()
        self._prefilled = False
        self._source_done = False
        self._last_input_t = time.monotonic()
        want_speaker = any(isinstance(s, SpeakerSink) for s in self.sinks)
        try:
            if isinstance(source, DeviceSource):
                self._open_input(source)
            if want_speaker:
                self._open_output(next(s for s in self.sinks if isinstance(s, SpeakerSink)))
        except Exception:
            self._close_streams()
            raise
        self.running = True
        w = threading.Thread(target=self._worker, name="hushlab-engine", daemon=True)
        self._threads = [w]
        if isinstance(source, FileSource) and self.cfg.realtime:
            f = threading.Thread(target=self._file_feeder, name="hushlab-file", daemon=True)
            self._threads.append(f)
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout)
        self._close_streams()
        for s in self.sinks:
            s.close()
        self.running = False
        self._threads = []

    def wait(self, timeout: float | None = None) -> bool:
        return self.finished.wait(timeout)

    # sounddevice streams -------------------------------------------------------------------
    def _open_input(self, src: DeviceSource) -> None:
        import sounddevice as sd

        ring = self.in_ring

        def callback(indata, frames, time_info, status):  # audio thread: copy only
            if status.input_overflow:
                self.input_xruns += 1
            if not ring.write(indata[:, 0]):
                self.input_xruns += 1

        self._start_stream(sd.InputStream, src.device, callback, "input")

    def _open_output(self, sink: SpeakerSink) -> None:
        import sounddevice as sd

        ring = self.out_ring
        scratch = np.zeros(self.cfg.rate, np.float32)

        def callback(outdata, frames, time_info, status):  # audio thread: copy only
            if status.output_underflow:
                self.output_xruns += 1
            buf = scratch[:frames]
            if not ring.read_into(buf):
                buf.fill(0.0)
                self.underruns += 1
            outdata[:] = buf[:, None]

        self._start_stream(sd.OutputStream, sink.device, callback, "output")

    def _start_stream(self, stream_cls, device: dict, callback, what: str) -> None:
        try:
            st = stream_cls(
                device=device["index"],
                channels=1,
                samplerate=self.cfg.rate,
                dtype="float32",
                callback=callback,
                latency="low",
            )
        except Exception as exc:
            raise EngineError(
                f"cannot open {what} device '{device['name']}' at {self.cfg.rate} Hz: {exc}"
            ) from None
        self._streams.append(st)
        st.start()
        self.device_latency_s += float(st.latency)

    def _close_streams(self) -> None:
        for st in self._streams:
            try:
                st.stop()
                st.close()
            except Exception as exc:  # a device that vanished cannot be closed: say so
                self.messages.append(f"closing an audio stream failed: {exc}")
                log.warning("closing an audio stream failed: %s", exc)
        self._streams = []

    def _file_feeder(self) -> None:
        """Pushes the file into the input ring at real-time pace, like a device callback."""
        c = self.cfg
        period = c.block / c.rate
        t_next = time.monotonic()
        while not self._stop.is_set():
            blk = self.source.read(c.block)
            if blk is None:
                self._source_done = True
                return
            if not self.in_ring.write(blk):
                self.input_xruns += 1
            t_next += period
            delay = t_next - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.5:  # we were suspended: do not burst to catch up
                t_next = time.monotonic()

    def _worker(self) -> None:
        c = self.cfg
        blk = np.zeros(c.block, np.float32)
        file_direct = isinstance(self.source, FileSource) and not c.realtime
        speaker = any(isinstance(s, SpeakerSink) for s in self.sinks)
        try:
            while not self._stop.is_set():
                if file_direct:
                    x = self.source.read(c.block)
                    if x is None:
                        self._flush_tail(speaker)
                        break
                else:
                    backlog = self.in_ring.fill
                    limit = int(c.rate * c.max_input_backlog_ms / 1000)
                    if backlog > limit:  # fell behind: drop the oldest input, keep latency bound
                        self.dropped_input += self.in_ring.discard(backlog - c.block)
                        self.warn_once("drop", "processing fell behind; input was dropped")
                    if not self.in_ring.read_into(blk):
                        self.in_ring.underflows -= 1  # waiting for input is not an error
                        if self._source_done and self.in_ring.fill == 0:
                            self._flush_tail(speaker)
                            break
                        self._check_input_alive()
                        time.sleep(c.block / c.rate / 4)
                        continue
                    self._last_input_t = time.monotonic()
                    x = blk
                self._emit(x, self.process_block(x), speaker)
        except Exception as exc:
            self.messages.append(f"engine stopped: {type(exc).__name__}: {exc}")
            log.exception("engine worker failed")
        finally:
            self.finished.set()

    def _emit(self, x: np.ndarray | None, out: np.ndarray, speaker: bool) -> None:
        file_sinks = self._file_sinks  # one read: add/remove_sink swap the list
        if x is not None:
            for s in file_sinks:
                s.write_input(x)
        if len(out):
            self.samples_out += len(out)
            for s in file_sinks:
                s.write(out)
            if speaker:
                self._feed_output(out)

    def _flush_tail(self, speaker: bool) -> None:
        """At the end of a file: push silence until the output has caught up with the input
        (latency, a hop waiting to fill, resampler delays), so nothing of it is cut off."""
        c = self.cfg
        target = self.samples_in + self.latency_samples
        zeros = np.zeros(c.block, np.float32)
        for _ in range(int(c.rate * 0.5 / c.block) + 1):  # at most 0.5 s of flushing
            if self.samples_out >= target or self._stop.is_set():
                return
            self._emit(None, self.process_block(zeros), speaker)

    def _check_input_alive(self) -> None:
        """A device that disappears stops calling back: say so once, keep running."""
        if not isinstance(self.source, DeviceSource):
            return
        if time.monotonic() - self._last_input_t > 2.0:
            dead = [st for st in self._streams if not getattr(st, "active", True)]
            why = "its stream stopped" if dead else "no audio for 2 s"
            self.warn_once(
                "input-stalled",
                f"the input device '{self.source.name}' stopped "
                f"delivering audio ({why}); was it unplugged?",
            )

    def _feed_output(self, out: np.ndarray) -> None:
        """Write to the output ring, adapting its buffering: grow on underruns (stop the
        crackle), shrink after 10 s without one, and never hold more than target + 4 blocks."""
        c = self.cfg
        ring = self.out_ring
        add = 0
        if not self._prefilled:
            add = self._out_fill_target
            self._prefilled = True
        if self.underruns != self._last_underflows:
            self._last_underflows = self.underruns
            grown = min(
                int(c.rate * c.max_output_fill_ms / 1000), self._out_fill_target + 2 * c.block
            )
            if grown > self._out_fill_target:
                add += grown - self._out_fill_target
                self._out_fill_target = grown
                self.buffer_grows += 1
            self._calm_since = time.monotonic()
        elif time.monotonic() - self._calm_since > 10.0:
            floor = int(c.rate * c.min_output_fill_ms / 1000)
            if self._out_fill_target > floor:
                self._out_fill_target = max(floor, self._out_fill_target - c.block)
                self.buffer_shrinks += 1
            self._calm_since = time.monotonic()
        if add:
            ring.write(np.zeros(add, np.float32))
        # never hold more than target + 4 blocks: drop the oldest of what is being written
        # (the worker only ever writes to this ring; the output callback is its one reader)
        room = self._out_fill_target + 4 * c.block - ring.fill
        if room < len(out):
            self.output_overflows += len(out) - max(0, room)
            out = out[len(out) - max(0, room) :]
        if len(out) and not ring.write(out):
            self.output_overflows += len(out)

    # -- health ------------------------------------------------------------------------------
    def _queue_latency_s(self) -> float:
        """Delay inside the audible slot beyond its algorithmic latency: the resamplers' filter
        delays, input waiting for a whole hop, and output waiting to be mixed."""
        slots = self.slots
        slot = slots[min(self.active, len(slots) - 1)]
        p, rate = slot.proc, self.cfg.rate
        d = 0.0
        d += slot.rs_in.delay / p.sample_rate + slot.rs_out.delay / rate
        d += len(slot.fifo_in) / p.sample_rate + slot.out_len / rate
        return d

    def health(self) -> dict:
        c = self.cfg
        times = np.array(self._hop_times) if self._hop_times else np.zeros(1)
        rtf = self._busy_s / self._audio_s if self._audio_s else 0.0
        ring_lat = (self.in_ring.fill + self.out_ring.fill) / c.rate
        queue_lat = self._queue_latency_s()
        return {
            "active": self.names()[self.active],
            "ms_per_hop_p50": float(np.percentile(times, 50) * 1000),
            "ms_per_hop_p99": float(np.percentile(times, 99) * 1000),
            "rtf": rtf,
            "input_fill": self.in_ring.fill_fraction,
            "output_fill": self.out_ring.fill_fraction,
            "input_xruns": self.input_xruns,
            "output_xruns": self.output_xruns,
            "output_overflow_samples": self.output_overflows,
            "underruns": self.underruns,
            "dropped_input_samples": self.dropped_input,
            "output_buffer_ms": 1000 * self._out_fill_target / c.rate,
            "buffer_grows": self.buffer_grows,
            "buffer_shrinks": self.buffer_shrinks,
            "algorithmic_latency_ms": self.algorithmic_latency_ms,
            "queue_latency_ms": 1000 * queue_lat,
            "latency_ms": 1000 * (self.device_latency_s + ring_lat + queue_lat)
            + self.algorithmic_latency_ms,
            "audio_seconds": self._audio_s,
            "messages": list(self.messages),
        }


# -- sources and sinks ----------------------------------------------------------------------


class DeviceSource:
    kind = "device"

    def __init__(self, spec=None):
        self.device = resolve_device(spec, "input")
        self.name = self.device["name"]


class SpeakerSink:
    def __init__(self, spec=None):
        self.device = resolve_device(spec, "output")
        self.name = self.device["name"]

    def close(self):
        pass


class FileSink:
    """Writes the engine output (and optionally the input) as WAV while the engine runs.

    The worker only queues copies of its blocks; a writer thread of the sink's own does the disk
    writes, so a slow disk never stalls the audio, and a write after ``close`` (a recording
    stopped while the worker was mid-block) is dropped instead of raising."""

    def __init__(
        self,
        path,
        rate: int,
        record_input: str | None = None,
        skip: int = 0,
        limit: int | None = None,
    ):
        """``skip``: drop the first so many output samples (the engine's latency, for a file
        that lines up with its input); ``limit``: write at most so many output samples."""
        import queue

        import soundfile as sf

        self.path = str(path)
        self._f = sf.SoundFile(self.path, "w", samplerate=rate, channels=1, subtype="FLOAT")
        self._fin = (
            sf.SoundFile(record_input, "w", samplerate=rate, channels=1, subtype="FLOAT")
            if record_input
            else None
        )
        self.closed = False
        self.error = ""
        self._skip, self._limit, self.written = skip, limit, 0
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._writer, name="hushlab-sink", daemon=True)
        self._thread.start()

    def _writer(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            f, data = item
            try:
                f.write(data)
            except Exception as exc:  # a full disk: keep the audio going, say why once
                if not self.error:
                    self.error = f"{self.path}: {type(exc).__name__}: {exc}"
                    log.warning("recording stopped writing: %s", self.error)

    def write(self, out: np.ndarray) -> None:
        if self.closed:
            return
        if self._skip:
            k = min(self._skip, len(out))
            out, self._skip = out[k:], self._skip - k
        if self._limit is not None:
            out = out[: max(0, self._limit - self.written)]
        if len(out):
            self.written += len(out)
            self._q.put((self._f, np.array(out, np.float32)))

    def write_input(self, inp: np.ndarray) -> None:
        if self._fin is not None and not self.closed:
            self._q.put((self._fin, np.array(inp, np.float32)))

    def close(self) -> None:
        """Write everything queued, then close the files (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self._q.put(None)
        self._thread.join()
        self._f.close()
        if self._fin is not None:
            self._fin.close()
