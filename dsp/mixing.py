"""Mixing speech and noise at an exact SNR, with the same gain on the clean reference."""

from __future__ import annotations

import numpy as np

EPS = 1e-12


def power(x: np.ndarray) -> float:
    return float(np.mean(np.asarray(x, dtype=np.float64) ** 2))


def rms_dbfs(x: np.ndarray) -> float:
    """RMS level in dB relative to full scale (a full-scale sine is -3 dBFS)."""
    return 10.0 * np.log10(power(x) + EPS)


def snr_db(clean: np.ndarray, noise: np.ndarray) -> float:
    return 10.0 * np.log10((power(clean) + EPS) / (power(noise) + EPS))


def fit_length(x: np.ndarray, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Crop (at a random offset when rng is given) or loop ``x`` to exactly ``n`` samples."""
    if len(x) == 0:
        raise ValueError("cannot fit an empty signal")
    if len(x) >= n:
        start = 0 if rng is None else int(rng.integers(0, len(x) - n + 1))
        return x[start : start + n]
    reps = int(np.ceil(n / len(x)))
    return np.tile(x, reps)[:n]


def mix_at_snr(
    clean: np.ndarray,
    noise: np.ndarray,
    snr: float,
    level_dbfs: float | None = None,
    max_peak: float = 0.99,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mix ``clean`` and ``noise`` (same length) at ``snr`` dB.

    The noise is scaled to the SNR; then one gain brings the mixture to ``level_dbfs`` (RMS, if
    given) and, if needed, lower so that its peak stays below ``max_peak``. The same gain is applied
    to both parts, so the SNR is exact and the returned clean part is the reference to score
    against.

    Returns (noisy, clean_scaled, noise_scaled), float32, with noisy == clean_scaled + noise_scaled.
    """
    clean = np.asarray(clean, dtype=np.float64)
    noise = np.asarray(noise, dtype=np.float64)
    if clean.shape != noise.shape:
        raise ValueError(f"clean {clean.shape} and noise {noise.shape} must have the same shape")
    pc, pn = power(clean), power(noise)
    if pc <= EPS:
        raise ValueError("clean signal is silent; SNR undefined")
    if pn <= EPS:
        raise ValueError("noise signal is silent; SNR undefined")
    noise = noise * np.sqrt(pc / (pn * 10.0 ** (snr / 10.0)))
    noisy = clean + noise
    gain = 1.0
    if level_dbfs is not None:
        gain = 10.0 ** ((level_dbfs - rms_dbfs(noisy)) / 20.0)
    peak = float(np.max(np.abs(noisy))) * gain
    if peak > max_peak:
        gain *= max_peak / peak
    return (
        (noisy * gain).astype(np.float32),
        (clean * gain).astype(np.float32),
        (noise * gain).astype(np.float32),
    )
