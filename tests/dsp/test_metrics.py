import math

import numpy as np
import pytest

from dsp.metrics import estimate_lag, score, si_sdr


def _speechlike(sr=16000, seconds=3.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 20))
    env = (np.sin(2 * np.pi * 3 * t) > -0.2).astype(float)
    return (0.1 * x * env + 0.001 * rng.standard_normal(len(t))).astype(np.float32)


def test_si_sdr_known_values():
    rng = np.random.default_rng(0)
    s = rng.standard_normal(16000)
    n = rng.standard_normal(16000)
    n -= np.dot(n, s) / np.dot(s, s) * s  # orthogonal noise -> SI-SDR equals SNR
    n *= np.sqrt(np.sum(s**2) / np.sum(n**2)) / 10 ** (10 / 20)
    assert abs(si_sdr(s, s + n) - 10.0) < 1e-3
    assert abs(si_sdr(s, 3.0 * (s + n)) - 10.0) < 1e-3  # scale invariant


def test_lag_detection_and_compensation():
    x = _speechlike()
    delayed = np.concatenate([np.zeros(137, np.float32), x])[: len(x)]
    assert estimate_lag(x, delayed, 400) == 137
    good = score(x, delayed, 16000, delay=100, max_lag=64)
    assert good.values["si_sdr"] > 40
    assert good.values["pesq"] > 4.0
    assert good.values["stoi"] > 0.99


def test_failures_are_nan_with_reason():
    x = _speechlike()
    res = score(x[:1000], x[:1000], 16000)
    assert all(math.isnan(v) for v in res.values.values())
    assert "too short" in res.reasons["pesq"]
    res = score(np.zeros(32000, np.float32), x[:32000], 16000)
    assert math.isnan(res.values["si_sdr"]) and "silent" in res.reasons["si_sdr"]


def test_any_rate_is_accepted():
    from dsp.resample import resample

    x = resample(_speechlike(), 16000, 48000)
    res = score(x, x, 48000)
    assert res.values["pesq"] > 4.0


def test_onset_metric_catches_a_gate_that_opens_late():
    import numpy as np

    from dsp.metrics import onset_level_db, speech_onsets
    from tests.conftest import speechlike

    sr = 16000
    words = []
    for k in range(5):  # five "words" between pauses
        words += [np.zeros(int(0.3 * sr), np.float32), speechlike(0.4, sr, seed=k)]
    clean = np.concatenate(words)
    starts = speech_onsets(clean, sr)
    assert len(starts) == 5
    assert abs(onset_level_db(clean, clean, sr)) < 1e-6
    gated = clean.copy()
    for s in starts:  # a suppressor that clips the first 40 ms of every word
        gated[s : s + int(0.04 * sr)] = 0
    late = onset_level_db(clean, gated, sr)
    quieter = onset_level_db(clean, 0.7 * clean, sr)  # uniformly 3 dB down, onsets kept
    assert late < -6 and quieter == pytest.approx(-3.1, abs=0.1) and late < quieter
