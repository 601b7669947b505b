"""The post-filter ('@pfBETA'): PercepNet's gain sharpening on a model's own spectra."""

import numpy as np
import pytest

from dsp.errors import UserError
from dsp.postfilter import post_filter
from models.processor import enhance_array, load_processor
from tests.conftest import speechlike
from training.evaluate import processor_digest


def test_the_factor_keeps_kept_bins_and_deepens_removed_ones():
    noisy = np.ones(6, np.complex64) * (1 - 1j)
    g = np.array([1.0, 0.9, 0.5, 0.1, 0.05, 0.0], np.float32)
    out = post_filter(noisy, noisy * g, 0.02)
    assert out.dtype == np.complex64
    h = np.abs(out) / np.maximum(np.abs(noisy * g), 1e-12)
    db = 20 * np.log10(np.maximum(h[:5], 1e-12))
    assert abs(db[0]) < 1e-5  # a kept bin is untouched
    assert -0.3 < db[2] < -0.1 and -6 < db[3] < -4 and -14 < db[4] < -10
    assert np.all(np.diff(db) < 0) and out[5] == 0  # deeper the more the model removed
    # phase is the model's; a gain above one (a filter that adds) counts as kept
    np.testing.assert_allclose(np.angle(out[:5]), np.angle(noisy[:5]), atol=1e-6)
    np.testing.assert_allclose(post_filter(noisy, 2 * noisy, 0.02), 2 * noisy)
    np.testing.assert_array_equal(post_filter(noisy, noisy * g, 0.0), noisy * g)
    with pytest.raises(ValueError, match="beta"):
        post_filter(noisy, noisy, -0.1)


def test_a_filtered_model_removes_more_noise_and_keeps_its_latency():
    rng = np.random.default_rng(0)
    x = (0.1 * speechlike(2.0, seed=4)).astype(np.float32)
    x += 0.03 * rng.standard_normal(len(x)).astype(np.float32)
    plain_proc = load_processor("baseline", backend="torch")
    proc = load_processor("baseline@pf0.05", backend="torch")
    assert proc.name == "baseline@pf0.05" and proc.post_filter == 0.05
    assert proc.latency_samples == plain_proc.latency_samples
    plain, filtered = enhance_array(plain_proc, x, 16000), enhance_array(proc, x, 16000)
    assert np.sum(filtered**2) < np.sum(plain**2)
    assert np.corrcoef(plain, filtered)[0, 1] > 0.9  # the same speech, a little less noise
    # the streaming path applies it frame by frame: same output from a fresh state
    np.testing.assert_allclose(enhance_array(proc, x, 16000), filtered, atol=1e-6)
    # and '@lim' composes after it
    lim = load_processor("baseline@pf0.05@lim12", backend="torch")
    assert lim.name == "baseline@pf0.05@lim12"


def test_bad_post_filters_are_clear_errors_and_reports_tell_them_apart():
    for spec in ("baseline@pf", "baseline@pf-1", "baseline@pfx", "baseline@pf20"):
        with pytest.raises(UserError, match="beta"):
            load_processor(spec, backend="torch")
    for spec in ("bypass@pf0.02", "rnnoise@pf0.02", "baseline@lim12@pf0.02"):
        with pytest.raises(UserError, match="follows a model"):
            load_processor(spec, backend="torch")
    a = load_processor("baseline@pf0.02", backend="torch")
    b = load_processor("baseline@pf0.05", backend="torch")
    plain = load_processor("baseline", backend="torch")
    digests = [processor_digest(s, p) for s, p in (("a", a), ("b", b), ("c", plain))]
    assert len(set(digests)) == 3 and all(d.startswith("weights:") for d in digests)
    assert digests[0] == digests[2] + "@pf0.02"
