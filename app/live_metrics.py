"""Live reference metrics: when the clean reference is known (a file played with a noise file
mixed in, corpus mixtures, the demo), the running SI-SDR and STOI of the input, A and B over the
last few seconds, and A - B. The worker only copies time-aligned blocks into a small buffer
(``ReferenceTap.push``); the scores are computed on another thread, on the display's clock."""

from __future__ import annotations

import threading

import numpy as np

from dsp.metrics import si_sdr, stoi
from dsp.resample import resample

WINDOW_S = 3.0


class ReferenceTap:
    """The last ``seconds`` of the clean reference, the (delayed) input, A and B, aligned."""

    def __init__(self, clean: np.ndarray, rate: int, latency: int, seconds: float = WINDOW_S):
        self.clean = np.asarray(clean, np.float32)
        self.rate, self.latency = rate, latency
        self.n = int(rate * seconds)
        self._bufs = np.zeros((4, self.n), np.float32)  # clean, input, A, B
        self._pos = 0
        self.filled = 0
        self._lock = threading.Lock()
        self._skips: list[tuple[int, int]] = []  # (from output sample, input samples dropped)

    def skip(self, at_output: int, n: int) -> None:
        """The engine dropped ``n`` input samples to catch up; output from ``at_output`` on
        carries input that many samples further along the source (worker side)."""
        self._skips.append((at_output, n))

    def push(self, start: int, dry: np.ndarray, a: np.ndarray, b: np.ndarray | None) -> None:
        """Output samples [start, start + len) of the dry signal and both slots (worker side):
        output sample k carries input sample k - latency."""
        m = len(dry)
        if m == 0:
            return
        if m > self.n:
            start, dry, a = start + m - self.n, dry[-self.n :], a[-self.n :]
            b = None if b is None else b[-self.n :]
            m = self.n
        out = np.arange(start, start + m)
        k = out - self.latency
        for at, n in self._skips:
            k = k + np.where(out >= at, n, 0)
        ref = np.where(k >= 0, self.clean[np.maximum(k, 0) % len(self.clean)], 0.0)
        rows = (ref, dry, a, b if b is not None else np.zeros(m, np.float32))
        with self._lock:
            idx = (self._pos + np.arange(m)) % self.n
            for r, x in enumerate(rows):
                self._bufs[r, idx] = x
            self._pos = (self._pos + m) % self.n
            self.filled = min(self.n, self.filled + m)

    def snapshot(self) -> np.ndarray | None:
        """[4, n] in time order (clean, input, A, B), or None until the window is full."""
        with self._lock:
            if self.filled < self.n:
                return None
            return np.roll(self._bufs, -self._pos, axis=1).copy()


def scores(snapshot: np.ndarray, rate: int) -> dict | None:
    """SI-SDR (dB) and STOI of input, A and B against the clean reference (None when the window
    holds too little speech to score)."""
    x = [resample(row, rate, 16000) for row in snapshot]
    clean = x[0]
    if np.sqrt(np.mean(clean.astype(np.float64) ** 2)) < 1e-4:
        return None
    out = {}
    for name, est in zip(("input", "A", "B"), x[1:], strict=True):
        try:
            out[name] = {"si_sdr": si_sdr(clean, est), "stoi": stoi(clean, est, 16000)}
        except Exception:  # a silent slot (muted after an error): not scored
            out[name] = None
    return out


def describe(s: dict | None, names: tuple[str, str]) -> str:
    if not s:
        return "live metrics: waiting for speech"
    parts = []
    for key, label in (("input", "input"), ("A", f"A {names[0]}"), ("B", f"B {names[1]}")):
        v = s.get(key)
        if v:
            parts.append(f"{label}: SI-SDR {v['si_sdr']:.1f} dB, STOI {v['stoi']:.2f}")
    if s.get("A") and s.get("B"):
        parts.append(
            f"A - B: {s['A']['si_sdr'] - s['B']['si_sdr']:+.1f} dB, "
            f"{s['A']['stoi'] - s['B']['stoi']:+.3f}"
        )
    return f"live, last {WINDOW_S:.0f} s against the clean reference: " + "; ".join(parts)
