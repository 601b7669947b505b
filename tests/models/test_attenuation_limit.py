"""AttenuationLimit ('@limN'): a processor's suppression limited to N dB, sample-aligned."""

import numpy as np
import pytest

from dsp.errors import UserError
from models.processor import AttenuationLimit, enhance_array, load_processor
from models.stream_base import Processor
from tests.conftest import speechlike
from training.evaluate import processor_digest


class _Silencer(Processor):
    """Removes everything, with a latency: the worst over-suppression there is."""

    name = "silencer"
    latency_samples = 80

    def init_state(self):
        return None

    def step(self, block, state):
        return np.zeros_like(block), state


def test_a_processor_that_removes_everything_leaves_the_input_n_db_down():
    x = speechlike(1.0, seed=3).astype(np.float32)
    lim = AttenuationLimit(_Silencer(), 12.0)
    assert (lim.hop, lim.latency_samples, lim.name) == (320, 80, "silencer@lim12")
    y = lim.process(np.concatenate([x, np.zeros(80, np.float32)]))[80:]
    np.testing.assert_allclose(y, 10 ** (-12 / 20) * x, atol=1e-6)  # aligned, 12 dB down


def test_limited_model_is_the_mix_of_its_output_and_the_aligned_input():
    x = (0.1 * speechlike(1.5, seed=4)).astype(np.float32)
    x += 0.02 * np.random.default_rng(0).standard_normal(len(x)).astype(np.float32)
    plain = enhance_array(load_processor("baseline", backend="torch"), x, 16000)
    limited_proc = load_processor("baseline@lim6", backend="torch")
    assert limited_proc.name == "baseline@lim6"
    assert limited_proc.describe()["attenuation_limit_db"] == 6.0
    limited = enhance_array(limited_proc, x, 16000)
    g = 10 ** (-6 / 20)
    np.testing.assert_allclose(limited, (1 - g) * plain + g * x, atol=1e-5)
    # the state is per stream: a second stream from a fresh state gives the same output
    np.testing.assert_allclose(enhance_array(limited_proc, x, 16000), limited, atol=1e-6)


def test_bad_limits_are_clear_errors_and_reports_tell_limits_apart():
    for spec in ("baseline@lim0", "baseline@lim1.2.3", "baseline@lim200"):
        with pytest.raises(UserError, match="lim|dB"):
            load_processor(spec, backend="torch")
    a = load_processor("baseline@lim6", backend="torch")
    b = load_processor("baseline@lim12", backend="torch")
    plain = load_processor("baseline", backend="torch")
    digests = {processor_digest(s, p) for s, p in (("a", a), ("b", b), ("c", plain))}
    assert len(digests) == 3
    assert processor_digest("baseline@lim6", a) == processor_digest("baseline", plain) + "@lim6"
