"""Loudness matching: streams at different levels meet at one active level, pauses hold it."""

import numpy as np

from dsp.loudness import TARGET_DB, LevelMatcher
from tests.conftest import speechlike


def _active_db(y: np.ndarray, rate: int) -> float:
    """The mean power of the 10 ms blocks within 15 dB of the loudest, in dB."""
    b = y[: len(y) // (rate // 100) * (rate // 100)].reshape(-1, rate // 100)
    p = np.mean(b.astype(np.float64) ** 2, axis=1)
    p = p[p > p.max() * 10 ** (-1.5)]
    return float(10 * np.log10(np.mean(p)))


def _stream(m: LevelMatcher, x: np.ndarray, block: int, apply: bool = True) -> np.ndarray:
    return np.concatenate([m.process(x[i : i + block], apply) for i in range(0, len(x), block)])


def test_streams_at_any_level_meet_at_the_target():
    rate, block = 16000, 160
    x = speechlike(8.0, rate, seed=3).astype(np.float32)
    outs = {}
    for gain_db in (-18.0, -12.0, -6.0, 0.0):  # active levels about -38 to -20 dBFS
        x_g = (x * 10 ** (gain_db / 20)).astype(np.float32)
        y = _stream(LevelMatcher(rate), x_g, block)
        outs[gain_db] = _active_db(y[-2 * rate :], rate)
    assert all(abs(v - TARGET_DB) < 1.5 for v in outs.values()), outs
    assert max(outs.values()) - min(outs.values()) < 1.0, outs


def test_pauses_and_silence_do_not_raise_the_gain():
    rate, block = 16000, 160
    speech = 0.3 * speechlike(5.0, rate, seed=4)
    hiss = 1e-4 * np.random.default_rng(0).standard_normal(3 * rate)  # -80 dBFS
    x = np.concatenate([speech, hiss, np.zeros(rate)]).astype(np.float32)
    m = LevelMatcher(rate)
    gains = []
    for i in range(0, len(x), block):
        m.process(x[i : i + block])
        gains.append(m.gain)
    at_end_of_speech = gains[len(speech) // block - 1]
    assert max(gains[len(speech) // block :]) <= at_end_of_speech * 1.01
    assert abs(m.level_db - _active_db(speech, rate)) < 2.0


def test_the_gain_moves_smoothly_and_stays_bounded():
    rate, block = 16000, 160
    x = (1e-3 * speechlike(4.0, rate, seed=5)).astype(np.float32)  # about -66 dBFS active...
    m = LevelMatcher(rate, floor_db=-90.0)
    y = _stream(m, x, block)
    assert abs(20 * np.log10(m.gain) - 20.0) < 1e-3  # ...needs +40 dB: held at the limit
    g = y[x != 0] / x[x != 0]
    assert np.max(np.abs(np.diff(g))) < 0.05  # ramped within blocks, slewed across them
    # tracking without applying: the stream passes unchanged, and matching then starts at once
    m2 = LevelMatcher(rate)
    x2 = (0.1 * speechlike(4.0, rate, seed=6)).astype(np.float32)  # about -41 dBFS active
    np.testing.assert_array_equal(_stream(m2, x2, block, apply=False), x2)
    assert m2.gain == 1.0 and np.isfinite(m2.level_db)
    y2 = _stream(m2, x2[:rate], block)  # 60 dB/s: the 15 dB step is made within 0.25 s
    assert abs(_active_db(y2[rate // 2 :], rate) - TARGET_DB) < 1.5


def test_bad_blocks_leave_the_state_alone():
    m = LevelMatcher(16000)
    m.process(np.full(160, 0.1, np.float32))
    before = (m.power, m.peak_db)
    out = m.process(np.full(160, np.nan, np.float32))
    assert (m.power, m.peak_db) == before and np.isfinite(m.gain) and out.shape == (160,)
    assert len(m.process(np.zeros(0, np.float32))) == 0
