"""The engine's health figures: time per 20 ms of audio, real-time factor, latency (computed
from the slot delays, device buffers, rings, resamplers and queues), xruns and messages. Mixed
into :class:`app.engine.Engine`."""

from __future__ import annotations

import numpy as np


class EngineHealth:
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
