import numpy as np
import pytest
import scipy.signal as ss

from dsp.eq import biquad, random_eq


def _gain_db(sos, f, sr=16000):
    _, h = ss.sosfreqz(sos, worN=[f], fs=sr)
    return 20 * np.log10(np.abs(h[0]))


@pytest.mark.parametrize("gain", [-6.0, 3.0, 9.0])
def test_sections_have_their_gain_where_they_should(gain):
    assert _gain_db(biquad("peak", 1000, gain, q=1.0)[None], 1000) == pytest.approx(gain, abs=1e-6)
    assert _gain_db(biquad("peak", 1000, gain, q=1.0)[None], 7900) == pytest.approx(0, abs=0.3)
    assert _gain_db(biquad("lowshelf", 200, gain)[None], 1e-3) == pytest.approx(gain, abs=1e-3)
    assert _gain_db(biquad("lowshelf", 200, gain)[None], 6000) == pytest.approx(0, abs=0.1)
    assert _gain_db(biquad("highshelf", 3000, gain)[None], 7999.9) == pytest.approx(gain, abs=1e-2)
    assert _gain_db(biquad("highshelf", 3000, gain)[None], 50) == pytest.approx(0, abs=0.1)


def test_bad_sections_are_refused():
    with pytest.raises(ValueError, match="f0"):
        biquad("peak", 9000, 3.0)
    with pytest.raises(ValueError, match="kind"):
        biquad("notch", 1000, 3.0)


def test_random_eq_is_stable_bounded_and_seeded():
    for seed in range(50):
        sos = random_eq(np.random.default_rng(seed), max_gain_db=6.0)
        assert 1 <= len(sos) <= 3
        poles = np.concatenate([np.roots(np.r_[1.0, row[4:]]) for row in sos])
        assert np.all(np.abs(poles) < 1)
        _, h = ss.sosfreqz(sos, worN=512, fs=16000)
        assert np.max(np.abs(20 * np.log10(np.abs(h)))) <= 18.0 + 1e-6
    a = random_eq(np.random.default_rng(7))
    assert np.array_equal(a, random_eq(np.random.default_rng(7)))
