import numpy as np
import pytest
import soundfile as sf

from dsp.audio_io import AudioError, find_audio_files, load_audio, save_audio
from dsp.mixing import mix_at_snr, snr_db


def test_load_stereo_resamples_to_mono(tmp_path):
    sr = 44100
    x = np.stack([np.ones(sr) * 0.5, np.zeros(sr)], axis=1).astype(np.float32)
    sf.write(tmp_path / "s.wav", x, sr)
    y, rate = load_audio(tmp_path / "s.wav", 16000)
    assert rate == 16000 and y.ndim == 1 and abs(len(y) - 16000) <= 1
    assert abs(np.median(y) - 0.25) < 1e-3


def test_bad_inputs_give_clear_errors(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        load_audio(tmp_path / "missing.wav")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage")
    with pytest.raises(AudioError, match="corrupt.wav: cannot read"):
        load_audio(tmp_path / "corrupt.wav")
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="empty"):
        load_audio(tmp_path / "empty.wav")
    sf.write(tmp_path / "nan.wav", np.array([0.1, np.nan, 0.2], np.float32), 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(tmp_path / "nan.wav")
    sf.write(tmp_path / "silent.wav", np.zeros(100, np.float32), 16000)
    with pytest.raises(AudioError, match="silence"):
        load_audio(tmp_path / "silent.wav", allow_silent=False)


def test_save_roundtrip_and_find(tmp_path):
    x = (np.sin(np.arange(1600) / 10) * 0.5).astype(np.float32)
    save_audio(tmp_path / "a" / "b.wav", x, 16000)
    save_audio(tmp_path / "c.flac", x, 16000)
    y, _ = load_audio(tmp_path / "a" / "b.wav")
    assert np.max(np.abs(y - x)) < 1e-4
    assert [p.name for p in find_audio_files(tmp_path)] == ["b.wav", "c.flac"]
    with pytest.raises(AudioError, match="unsupported"):
        save_audio(tmp_path / "x.mp4", x, 16000)


@pytest.mark.parametrize("snr", [-5.0, 0.0, 5.0, 17.3])
@pytest.mark.parametrize("level", [None, -25.0, -5.0])
def test_mix_snr_exact(snr, level):
    rng = np.random.default_rng(3)
    clean = rng.standard_normal(16000).astype(np.float32) * 0.1
    noise = rng.standard_normal(16000).astype(np.float32) * 0.7
    noisy, c, n = mix_at_snr(clean, noise, snr, level_dbfs=level)
    assert abs(snr_db(c, n) - snr) < 0.01
    assert np.max(np.abs(noisy)) <= 0.99 + 1e-6
    assert np.allclose(noisy, c + n, atol=1e-6)
    # same gain on the reference
    g = np.dot(c, clean) / np.dot(clean, clean)
    assert np.allclose(c, clean * g, atol=1e-5)


def test_mix_rejects_silence():
    with pytest.raises(ValueError, match="silent"):
        mix_at_snr(np.zeros(100), np.ones(100), 0.0)
