"""Second-order equaliser sections (the RBJ "Audio EQ Cookbook" forms) and a random colouring.

Used by training to vary the spectral balance of speech and noise the way microphones, rooms
and voices do, so the model does not learn one recording chain's colour as "speech".
"""

from __future__ import annotations

import numpy as np
import scipy.signal as ss


def biquad(kind: str, f0: float, gain_db: float, q: float = 0.707, sr: int = 16000) -> np.ndarray:
    """One section as an SOS row [b0, b1, b2, 1, a1, a2].

    ``kind``: ``peak`` (gain at ``f0``), ``lowshelf`` (gain at DC), ``highshelf`` (gain at
    Nyquist); unity gain far from the boosted or cut band. Shelves use slope 1 (``q`` unused).
    """
    if not 0 < f0 < sr / 2:
        raise ValueError(f"f0 must lie in (0, {sr / 2}) Hz, got {f0}")
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * f0 / sr
    cw, sw = np.cos(w0), np.sin(w0)
    if kind == "peak":
        alpha = sw / (2 * q)
        b = [1 + alpha * a, -2 * cw, 1 - alpha * a]
        den = [1 + alpha / a, -2 * cw, 1 - alpha / a]
    elif kind in ("lowshelf", "highshelf"):
        s = 1.0 if kind == "lowshelf" else -1.0  # the high shelf is the low one mirrored
        k = 2 * np.sqrt(a) * sw / np.sqrt(2)
        b = [
            a * ((a + 1) - s * (a - 1) * cw + k),
            s * 2 * a * ((a - 1) - s * (a + 1) * cw),
            a * ((a + 1) - s * (a - 1) * cw - k),
        ]
        den = [
            (a + 1) + s * (a - 1) * cw + k,
            -s * 2 * ((a - 1) + s * (a + 1) * cw),
            (a + 1) + s * (a - 1) * cw - k,
        ]
    else:
        raise ValueError(f"unknown section kind {kind!r} (peak, lowshelf, highshelf)")
    return np.array(b + den, dtype=np.float64) / den[0]


def random_eq(rng: np.random.Generator, max_gain_db: float = 6.0, sr: int = 16000) -> np.ndarray:
    """One to three random sections (SOS [k, 6]): a peak anywhere from 150 Hz to 6 kHz, a low
    shelf below 400 Hz, a high shelf above 2.5 kHz, each with a gain in +-``max_gain_db``."""
    rows = []
    for kind, lo, hi in (("peak", 150, 6000), ("lowshelf", 80, 400), ("highshelf", 2500, 6500)):
        if rng.random() < 0.6 or (not rows and kind == "highshelf"):
            f0 = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
            gain = float(rng.uniform(-max_gain_db, max_gain_db))
            rows.append(biquad(kind, f0, gain, q=float(rng.uniform(0.5, 2.0)), sr=sr))
    return np.stack(rows)


def apply_sos(sos: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``x`` through the sections, as float32."""
    return ss.sosfilt(sos, x).astype(np.float32)
