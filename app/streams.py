"""PortAudio streams for the engine (sounddevice): callbacks that only copy into or out of
preallocated rings and count xruns, the adaptive output buffering the worker feeds, the
watchdog for an input device that stops delivering audio, and the file feeder that pushes a
file into the input ring at real-time pace, as a device would. Mixed into
:class:`app.engine.Engine`.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from app.endpoints import DeviceSource, EngineError, SpeakerSink

log = logging.getLogger(__name__)


class DeviceStreams:
    """The device side of the engine (expects the engine's rings, config and counters)."""

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
