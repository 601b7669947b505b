"""Synthesised noise families (16 kHz). Each generator is seeded by the caller's RNG.

Real recordings transfer better to real rooms; these fill in what the recordings lack (stationary
coloured noise, mains hum, fans, rumble, babble of many talkers, alarms, transients).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.signal as ss
import soundfile as sf

FAMILIES = (
    "white",
    "pink",
    "brown",
    "babble",
    "crowd",
    "hum",
    "fan",
    "engine",
    "keyboard",
    "am_noise",
    "alarm",
    "traffic",
    "wind",
    "rain",
    "machinery",
    "siren",
)
NEEDS_SPEECH = ("babble", "crowd")


def _coloured(n: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Noise with power spectrum ~ 1 / f**exponent."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    spec /= f ** (exponent / 2)
    x = np.fft.irfft(spec, n)
    return x / (np.std(x) + 1e-12)


def _lowpass(x, cutoff, sr, order=4):
    sos = ss.butter(order, cutoff, "low", fs=sr, output="sos")
    return ss.sosfilt(sos, x)


def _bandpass(x, lo, hi, sr, order=4):
    sos = ss.butter(order, [lo, min(hi, sr / 2 - 100)], "band", fs=sr, output="sos")
    return ss.sosfilt(sos, x)


def _slow(n, rng, sr, rate_hz, depth):
    """A slow random envelope in [1 - depth, 1]."""
    k = max(4, int(n / sr * rate_hz) + 4)
    pts = rng.uniform(1 - depth, 1, k)
    return np.interp(np.linspace(0, k - 1, n), np.arange(k), pts)


def _talkers(paths, root: Path, n: int, k: int, rng, sr) -> np.ndarray:
    out = np.zeros(n)
    if not paths:
        raise ValueError("babble needs speech files")
    for _ in range(k):
        p = paths[int(rng.integers(len(paths)))]
        x, _ = sf.read(str(root / p), dtype="float32")
        if len(x) < n:
            x = np.tile(x, int(np.ceil(n / len(x))))
        start = int(rng.integers(0, len(x) - n + 1))
        seg = x[start : start + n].astype(np.float64)
        seg /= np.std(seg) + 1e-9
        out += seg * rng.uniform(0.5, 1.0)
    return out


def make(
    family: str,
    seconds: float,
    sr: int,
    rng: np.random.Generator,
    speech=None,
    root: str | Path | None = None,
) -> np.ndarray:
    n = int(seconds * sr)
    t = np.arange(n) / sr
    if family == "white":
        x = rng.standard_normal(n)
    elif family == "pink":
        x = _coloured(n, rng, 1.0)
    elif family == "brown":
        x = _coloured(n, rng, 2.0)
    elif family == "babble":
        x = _talkers(speech, Path(root), n, int(rng.integers(3, 9)), rng, sr)
    elif family == "crowd":
        x = _talkers(speech, Path(root), n, int(rng.integers(12, 25)), rng, sr)
        x = _lowpass(x, rng.uniform(2500, 5000), sr) + 0.1 * _coloured(n, rng, 1.0)
    elif family == "hum":
        f0 = rng.choice([50.0, 60.0]) * rng.uniform(0.99, 1.01)
        x = sum(
            rng.uniform(0.1, 1) / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3))
            for k in range(1, 12)
        )
        x = x + 0.05 * rng.standard_normal(n)
    elif family == "fan":
        x = _bandpass(rng.standard_normal(n), rng.uniform(80, 300), rng.uniform(1500, 5000), sr)
        blade = rng.uniform(80, 400)
        x = x / np.std(x) + 0.3 * np.sin(2 * np.pi * blade * t) * _slow(n, rng, sr, 0.5, 0.3)
    elif family == "engine":
        rpm = rng.uniform(15, 60) * _slow(n, rng, sr, 0.3, 0.4)
        phase = 2 * np.pi * np.cumsum(rpm) / sr
        x = sum(np.sin(k * phase) / k**0.7 for k in range(1, 25))
        x = _lowpass(x, 2500, sr) + 0.3 * _lowpass(_coloured(n, rng, 1.0), 1200, sr)
    elif family == "keyboard":
        x = 0.01 * rng.standard_normal(n)
        rate = rng.uniform(3, 9)
        times = np.cumsum(rng.exponential(1 / rate, int(seconds * rate * 2) + 5))
        for tt in times[times < seconds - 0.05]:
            i = int(tt * sr)
            L = int(sr * rng.uniform(0.005, 0.03))
            click = rng.standard_normal(L) * np.exp(-np.arange(L) / (L / 5))
            x[i : i + L] += click * rng.uniform(0.3, 1.0)
        x = _bandpass(x, 300, 7000, sr, 2)
    elif family == "am_noise":
        base = _coloured(n, rng, rng.uniform(0, 1.5))
        x = base * (1 + 0.9 * np.sin(2 * np.pi * rng.uniform(0.5, 8) * t))
    elif family == "alarm":
        f = rng.uniform(500, 3000)
        on = (np.sin(2 * np.pi * rng.uniform(1, 4) * t) > 0).astype(float)
        x = on * (np.sin(2 * np.pi * f * t) + 0.3 * np.sin(2 * np.pi * 2 * f * t))
        x = x + 0.02 * rng.standard_normal(n)
    elif family == "traffic":
        x = _lowpass(_coloured(n, rng, 2.0), rng.uniform(300, 900), sr) * _slow(
            n, rng, sr, 0.2, 0.6
        )
        for _ in range(int(rng.integers(1, 4))):  # passing vehicles
            c = rng.uniform(0, seconds)
            w = rng.uniform(1, 3)
            env = np.exp(-((t - c) ** 2) / (2 * (w / 2) ** 2))
            x = x / (np.std(x) + 1e-9) + 2 * env * _bandpass(rng.standard_normal(n), 60, 2000, sr)
    elif family == "wind":
        gust = _slow(n, rng, sr, 0.8, 0.9) ** 2
        x = _lowpass(rng.standard_normal(n), rng.uniform(200, 800), sr) * gust
    elif family == "rain":
        drops = (rng.random(n) < rng.uniform(0.002, 0.02)) * rng.standard_normal(n)
        x = ss.sosfilt(ss.butter(2, 1000, "high", fs=sr, output="sos"), drops)
        x = x / (np.std(x) + 1e-9) + 0.3 * _coloured(n, rng, 0.5)
    elif family == "machinery":
        period = rng.uniform(0.1, 0.6)
        x = 0.05 * _coloured(n, rng, 1.0)
        res_f = rng.uniform(300, 3000)
        L = int(0.08 * sr)
        ring = np.sin(2 * np.pi * res_f * np.arange(L) / sr) * np.exp(-np.arange(L) / (0.015 * sr))
        for tt in np.arange(rng.uniform(0, period), seconds - 0.1, period):
            i = int(tt * sr)
            x[i : i + L] += ring * rng.uniform(0.6, 1.0)
        x = x + 0.2 * np.sin(2 * np.pi * rng.uniform(90, 200) * t)
    elif family == "siren":
        f_lo, f_hi = rng.uniform(500, 900), rng.uniform(1000, 1800)
        sweep = f_lo + (f_hi - f_lo) * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.2, 2) * t))
        x = np.sin(2 * np.pi * np.cumsum(sweep) / sr) + 0.05 * rng.standard_normal(n)
    else:
        raise ValueError(f"unknown noise family '{family}' (known: {', '.join(FAMILIES)})")
    x = np.asarray(x, dtype=np.float64)
    return (x / (np.max(np.abs(x)) + 1e-9) * 0.9).astype(np.float32)
