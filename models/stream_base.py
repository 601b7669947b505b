"""The processor interface (and bypass): everything the engine can play implements it.

A processor declares its geometry - ``sample_rate`` (Hz), ``hop`` (samples per step),
``latency_samples`` (how far its output stream trails its input stream) - and runs
``step(block [hop] float32, state) -> (out [hop] float32, state)``. ``init_state()`` returns a
fresh, independent state, so one processor can serve several streams and an A/B switch is just two
(processor, state) pairs.
"""

from __future__ import annotations

import numpy as np

from dsp.errors import UserError


class ProcessorUnavailable(UserError):
    """An optional processor whose extra is not installed, with the install hint."""


class Processor:
    name: str = "processor"
    backend: str = "-"
    sample_rate: int = 16000
    hop: int = 320
    latency_samples: int = 0
    params: int = 0
    megabytes: float = 0.0

    @property
    def algorithmic_latency_ms(self) -> float:
        """Block buffering (one hop) plus the output delay, in ms."""
        return 1000.0 * (self.hop + self.latency_samples) / self.sample_rate

    def init_state(self):
        raise NotImplementedError

    def step(self, block: np.ndarray, state):
        raise NotImplementedError

    resampler = "soxr"  # how offline enhancement brings audio to the processor's rate and back

    def describe(self) -> dict:
        return {
            "name": self.name,
            "backend": self.backend,
            "sample_rate": self.sample_rate,
            "hop": self.hop,
            "latency_samples": self.latency_samples,
            "latency_ms": round(self.algorithmic_latency_ms, 2),
            "params": self.params,
            "megabytes": round(self.megabytes, 2),
        }

    def process(self, x: np.ndarray) -> np.ndarray:
        """Run a whole signal through ``step`` (zero-padded to whole hops; same length out)."""
        state = self.init_state()
        n = len(x)
        pad = (-n) % self.hop
        xp = np.concatenate([np.asarray(x, np.float32), np.zeros(pad, np.float32)])
        out = np.empty_like(xp)
        for i in range(0, len(xp), self.hop):
            out[i : i + self.hop], state = self.step(xp[i : i + self.hop], state)
        return out[:n]

    def close(self) -> None:
        pass


# -- bypass --------------------------------------------------------------------------------


class Bypass(Processor):
    """The dry signal, delayed by ``latency_samples`` so A/B against a model is time-aligned."""

    name = "bypass"
    backend = "numpy"

    def __init__(self, sample_rate: int = 16000, hop: int = 320, latency_samples: int = 0):
        self.sample_rate, self.hop, self.latency_samples = sample_rate, hop, latency_samples

    def init_state(self):
        return np.zeros(self.latency_samples, np.float32)

    def step(self, block, state):
        if self.latency_samples == 0:
            return np.asarray(block, np.float32).copy(), state
        joined = np.concatenate([state, np.asarray(block, np.float32)])
        return joined[: self.hop], joined[self.hop :]


# -- GCRN ----------------------------------------------------------------------------------


# -- attenuation limit ---------------------------------------------------------------------


class AttenuationLimit(Processor):
    """Another processor with its suppression limited to ``limit_db``: the output is
    ``(1 - g) * processed + g * dry`` with ``g = 10 ** (-limit_db / 20)``, the dry input delayed
    by the inner processor's latency so that both are sample-aligned (DeepFilterNet's
    ``atten_lim``). Where the inner processor removes everything the output is the input
    ``limit_db`` down; where it keeps the speech, the noise is lowered by about ``limit_db``,
    and speech it removed by mistake comes back at that level."""

    backend = "numpy"

    def __init__(self, inner: Processor, limit_db: float):
        if not 0 < limit_db <= 100:
            raise UserError(f"an attenuation limit is a number of dB in (0, 100], not {limit_db}")
        self.inner, self.limit_db = inner, float(limit_db)
        self.gain = float(10 ** (-self.limit_db / 20))
        self.name = f"{inner.name}@lim{self.limit_db:g}"
        for k in ("sample_rate", "hop", "latency_samples", "params", "megabytes", "backend"):
            setattr(self, k, getattr(inner, k))
        self.resampler = getattr(inner, "resampler", "soxr")
        self._dry = Bypass(inner.sample_rate, inner.hop, inner.latency_samples)

    def init_state(self):
        return self.inner.init_state(), self._dry.init_state()

    def step(self, block, state):
        inner_state, dry_state = state
        wet, inner_state = self.inner.step(block, inner_state)
        dry, dry_state = self._dry.step(block, dry_state)
        out = (1.0 - self.gain) * np.asarray(wet, np.float32) + self.gain * dry  # stays float32
        return out, (inner_state, dry_state)

    def describe(self) -> dict:
        return {**self.inner.describe(), "name": self.name, "attenuation_limit_db": self.limit_db}

    def close(self) -> None:
        self.inner.close()
