import numpy as np
import pytest

from dsp.resample import StreamResampler, change_speed, resample


@pytest.mark.parametrize(
    "sr_in,sr_out",
    [
        (48000, 16000),
        (44100, 16000),
        (16000, 48000),
        (16000, 44100),
        (22050, 16000),
        (16000, 16000),
    ],
)
def test_stream_is_block_size_invariant(sr_in, sr_out):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(sr_in).astype(np.float32) * 0.1
    outs = []
    for sizes in ([len(x)], [256] * (len(x) // 256 + 1), list(rng.integers(1, 2000, 200))):
        rs = StreamResampler(sr_in, sr_out)
        pos, parts = 0, []
        for s in sizes:
            if pos >= len(x):
                break
            parts.append(rs.process(x[pos : pos + s]))
            pos += s
        if pos < len(x):
            parts.append(rs.process(x[pos:]))
        parts.append(rs.process(np.zeros(0, np.float32), last=True))
        outs.append(np.concatenate(parts))
    for o in outs[1:]:
        assert len(o) == len(outs[0])
        assert np.max(np.abs(o - outs[0])) < 1e-6


def test_resample_preserves_a_tone():
    sr = 48000
    t = np.arange(sr) / sr
    x = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    y = resample(x, sr, 16000)
    assert abs(len(y) - 16000) <= 1
    spec = np.abs(np.fft.rfft(y[2000:-2000] * np.hanning(len(y) - 4000)))
    peak_hz = np.argmax(spec) * 16000 / (len(y) - 4000)
    assert abs(peak_hz - 1000) < 5


def test_polyphase_resampling_keeps_a_tone_and_its_timing():
    import numpy as np

    from dsp.metrics import estimate_lag
    from dsp.resample import resample

    t = np.arange(16000) / 16000
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    x[8000] += 0.5  # a click to time
    y = resample(x, 16000, 48000, method="polyphase")
    assert len(y) == 48000
    z = resample(y, 48000, 16000, method="polyphase")
    assert estimate_lag(x, z, 50) == 0 and np.max(np.abs(z[100:-100] - x[100:-100])) < 0.05
    import pytest

    with pytest.raises(ValueError, match="unknown resampling"):
        resample(x, 16000, 48000, method="magic")


def test_change_speed_moves_pitch_and_length():
    sr = 16000
    x = np.sin(2 * np.pi * 200 * np.arange(sr) / sr).astype(np.float32)
    y = change_speed(x, 1.1)
    assert abs(len(y) - sr / 1.1) <= 2
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    f_peak = np.argmax(spec) * sr / len(y)
    assert f_peak == pytest.approx(220, abs=3)
    assert change_speed(x, 1.0) is not x and np.array_equal(change_speed(x, 1.0), x)
