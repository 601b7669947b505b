"""Resampling: whole signals and streaming, built on python-soxr (libsoxr, VHQ by default)."""

from __future__ import annotations

import numpy as np
import soxr

METHODS = ("soxr", "polyphase")


def resample(
    x: np.ndarray, sr_in: int, sr_out: int, quality: str = "VHQ", method: str = "soxr"
) -> np.ndarray:
    """Resample a whole mono or [N, C] signal; float32 out. No-op when the rates match.

    ``method``: ``soxr`` (libsoxr at ``quality``; steep, linear phase) or ``polyphase``
    (scipy's ``resample_poly``: a Kaiser-windowed FIR, gentler band edge, shorter ringing)."""
    x = np.asarray(x, dtype=np.float32)
    if sr_in == sr_out:
        return x
    if sr_in <= 0 or sr_out <= 0:
        raise ValueError(f"sample rates must be positive, got {sr_in} -> {sr_out}")
    if method == "polyphase":
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(int(sr_in), int(sr_out))
        return resample_poly(x, sr_out // g, sr_in // g, axis=0).astype(np.float32, copy=False)
    if method != "soxr":
        raise ValueError(f"unknown resampling method '{method}' (use {', '.join(METHODS)})")
    return soxr.resample(x, sr_in, sr_out, quality=quality).astype(np.float32, copy=False)


def change_speed(
    x: np.ndarray, factor: float, steps: int = 100, method: str = "polyphase"
) -> np.ndarray:
    """Play ``x`` ``factor`` times faster (pitch and formants move with it, as with a tape):
    ``len(x) / factor`` samples, the factor rounded to 1 / ``steps``; always a new array."""
    x = np.asarray(x, dtype=np.float32)
    rate = int(round(steps * factor))
    if rate == steps:
        return x.copy()
    return resample(x, rate, steps, method=method)


class StreamResampler:
    """Stateful resampler for blocks of any size: the concatenated output does not depend on how
    the input was cut into blocks. Mono float32. A pass-through when the rates are equal.

    ``delay_samples`` is the output-rate delay to expect before the first non-silent output (soxr
    emits its filter delay as fewer samples at the start, then keeps pace).
    """

    def __init__(self, sr_in: int, sr_out: int, quality: str = "HQ"):
        self.sr_in = int(sr_in)
        self.sr_out = int(sr_out)
        self.passthrough = self.sr_in == self.sr_out
        self.quality = quality
        self._rs = (
            None
            if self.passthrough
            else soxr.ResampleStream(self.sr_in, self.sr_out, 1, dtype="float32", quality=quality)
        )

    @property
    def delay(self) -> float:
        """Samples (at the output rate) the resampler holds back right now (0 for a
        pass-through)."""
        return 0.0 if self.passthrough else float(self._rs.delay())

    def reset(self) -> None:
        if not self.passthrough:
            self._rs = soxr.ResampleStream(
                self.sr_in, self.sr_out, 1, dtype="float32", quality=self.quality
            )

    def process(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        """Resample one block (float32 [n]); returns whatever output samples are ready."""
        block = np.ascontiguousarray(block, dtype=np.float32)
        if self.passthrough:
            return block.copy()
        return self._rs.resample_chunk(block, last=last)
