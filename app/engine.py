"""The real-time engine: a source, a set of processors running side by side, and sinks.

Threads:
- audio callbacks (PortAudio) only copy into or out of preallocated rings and count xruns;
- a worker thread drains the input ring, resamples to each processor's rate, runs every slot
  (so each keeps its state warm), aligns the slots to a common latency, crossfades between the
  active slot and the previous one on a switch, brings every slot to one active speech level when
  asked (``level_match``), mixes in the dry signal (dry/wet), resamples
  back and fills the output ring; it also fills the display buffers and the health figures;
- whoever owns the engine (CLI or GUI) reads ``health()`` and the display buffers, and asks for a
  switch with ``request_active(i)``: a plain attribute write, applied by the worker at the next
  block boundary.
No Qt here. Nothing in a callback allocates sample storage, logs, locks or touches torch.
The device streams live in ``app/streams.py``, sources and sinks in ``app/endpoints.py``, the
health figures in ``app/health.py``; what is left here (slots, alignment, hand-overs, mixing,
the worker) is one state machine, kept whole (about 470 lines).
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from app.display import SpecFeed, full_scale_magnitude
from app.endpoints import (  # noqa: F401  (re-exported: the engine's public names)
    DeviceSource,
    EngineError,
    FileSink,
    FileSource,
    LatencyTooLong,
    SpeakerSink,
    list_devices,
    resolve_device,
)
from app.health import EngineHealth
from app.streams import DeviceStreams
from dsp.loudness import LevelMatcher
from dsp.resample import StreamResampler
from dsp.ringbuffer import RingBuffer
from dsp.stft import StftGeometry, window
from models.processor import Bypass, Processor

log = logging.getLogger(__name__)


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


REPORT_HOP_S = 0.020  # work per hop is reported per 20 ms of audio, whatever the block size
HANDOVER_WARMUP_S = 0.2  # a replacing model's state warms up this long before it is heard


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


class Engine(DeviceStreams, EngineHealth):
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
        self._handovers: list[dict] = []  # replaced slots still playing until their crossfade
        self._mixed = 0  # device samples mixed so far (the output's position)
        self._requested = self.active
        self._prev = self.active
        self._fade_len = max(1, int(c.rate * c.crossfade_ms / 1000))
        self._fade_pos = self._fade_len  # >= len: no fade in progress
        theta = np.linspace(0, np.pi / 2, self._fade_len, dtype=np.float32)
        self._fade_in, self._fade_out = np.sin(theta), np.cos(theta)
        self.wet = 1.0  # 1 = processed only, 0 = dry only
        # every slot's stream at one active speech level (dsp/loudness.py), when asked: tracked
        # always, so that turning it on starts from the level heard so far
        self.level_match = False
        self._matchers = [LevelMatcher(c.rate) for _ in self.slots]
        cap = int(c.rate * c.ring_seconds)
        self.in_ring = RingBuffer(cap)
        self.out_ring = RingBuffer(cap)
        self._out_fill_target = int(c.rate * c.min_output_fill_ms / 1000)
        self._geom = StftGeometry()
        self._db_ref = full_scale_magnitude(window(self._geom))  # columns are in dBFS
        feeds = {
            k: SpecFeed(c.rate, c.display_columns, self._geom, self._db_ref)
            for k in ("in", "out", "a", "b")
        }
        self._feeds = feeds
        self.spec_in, self.spec_out = feeds["in"].hist, feeds["out"].hist
        # A against B: both slots' aligned outputs as spectrograms (when asked: display work)
        self.spec_a, self.spec_b = feeds["a"].hist, feeds["b"].hist
        self.ab_display = False
        self.ref_tap = None  # live reference metrics, when the source knows its clean speech
        self._ab_taken: tuple[np.ndarray, np.ndarray] | None = None
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

    def match_gains_db(self) -> list[float]:
        """The loudness-matching gain now applied to each processor's stream (dB; 0 when off)."""
        return [20 * math.log10(m.gain) for m in self._matchers[: len(self.procs)]]

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
            lat = self._slot_latency(proc)
            pad = self.samples_in + self.latency_samples - lat - self._mixed
            if pad > 0:
                slot.out.append(np.zeros(pad, np.float32))
                slot.out_len = pad
            # the old processor keeps playing until the new one has warmed up, then a
            # crossfade hands over (no gap, no click, even in the audible slot)
            start = self._mixed + max(0, pad) + lat + int(self.cfg.rate * HANDOVER_WARMUP_S)
            # a second change before the first one's crossfade began: what is heard is still
            # that handover's old slot, so the new one hands over from it (the half-warm
            # model in between is dropped, never heard)
            old = self.slots[index]
            for h in self._handovers:
                if h["index"] == index and self._mixed < h["start"]:
                    old = h["old"]
            self._handovers = [h for h in self._handovers if h["index"] != index]
            self._handovers.append(
                {
                    "index": index,
                    "old": old,
                    "start": start,
                    "end": start + self._fade_len,
                }
            )
            self.procs = [*self.procs[:index], proc, *self.procs[index + 1 :]]
            self.slots = [*self.slots[:index], slot, *self.slots[index + 1 :]]

    # -- the worker's per-block work (also callable directly in tests) -----------------------
    def process_block(self, x: np.ndarray) -> np.ndarray | None:
        """Feed one device-rate block; returns the mixed output that became ready (maybe empty)."""
        t0 = time.perf_counter()
        if self._pending:
            self._apply_replacements()
        self.samples_in += len(x)
        for slot in [*self.slots, *(h["old"] for h in self._handovers)]:
            try:
                self._run_slot(slot, x)
            except Exception as exc:  # a failing processor goes silent; the engine keeps going
                slot.error = f"{slot.proc.name}: {type(exc).__name__}: {exc}"
                self.warn_once(f"slot-{id(slot)}", f"processor failed, muted: {slot.error}")
                n = len(x)
                slot.out.append(np.zeros(n, np.float32))
                slot.out_len += n
        n = min(s.out_len for s in [*self.slots, *(h["old"] for h in self._handovers)])
        out = self._mix(n) if n > 0 else np.zeros(0, np.float32)
        self._mixed += len(out)
        self._display(x, out)
        dt = time.perf_counter() - t0  # every slot, mixing and the display work
        self._busy_s += dt
        audio_s = len(x) / self.cfg.rate
        self._audio_s += audio_s
        if audio_s:  # the cost of 20 ms of audio (one model hop), whatever the block size
            self._hop_times.append(dt * REPORT_HOP_S / audio_s)
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
        for h in list(self._handovers):  # a replaced processor fading out into its successor
            old = self._take(h["old"], n)
            k = np.arange(self._mixed, self._mixed + n)
            u = np.clip((k - h["start"]) / self._fade_len, 0.0, 1.0)
            g = 0.5 - 0.5 * np.cos(np.pi * u)  # equal gain: old and new versions correlate
            i = h["index"]
            taken[i] = (g * taken[i] + (1.0 - g) * old).astype(np.float32)
            if self._mixed + n >= h["end"]:
                self._handovers.remove(h)
        if self.ref_tap is not None:  # live reference metrics (copies only)
            self.ref_tap.push(
                self._mixed, taken[-1], taken[0], taken[1] if len(taken) > 2 else None
            )
        on = self.level_match
        taken = [m.process(t, on) for m, t in zip(self._matchers, taken, strict=True)]
        if self.ab_display and len(taken) >= 3:  # A and B (the dry slot is last)
            self._ab_taken = (taken[0], taken[1])
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
        self._feeds["in"].push(x)
        self._feeds["out"].push(out)
        if self._ab_taken is not None:
            a, b = self._ab_taken
            self._ab_taken = None
            self._feeds["a"].push(a)
            self._feeds["b"].push(b)
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
        clean = getattr(source, "clean", None)
        if clean is not None and len(clean):
            from app.live_metrics import ReferenceTap

            self.ref_tap = ReferenceTap(clean, self.cfg.rate, self.latency_samples)
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
                        dropped = self.in_ring.discard(backlog - c.block)
                        self.dropped_input += dropped
                        if self.ref_tap is not None:  # keep the clean reference aligned
                            self.ref_tap.skip(self.samples_in + self.latency_samples, dropped)
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
