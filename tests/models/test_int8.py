"""The int8 streaming step: a quarter of the weight bytes, the same enhancement."""

import numpy as np

from dsp.audio_io import load_audio
from dsp.metrics import si_sdr
from dsp.mixing import fit_length, mix_at_snr
from models.onnx_step import export_onnx, export_onnx_int8
from models.processor import enhance_array, load_processor


def test_int8_step_matches_fp32_on_speech(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    clean, _ = load_audio("app/assets/demo_clean.flac", 16000)
    noise, _ = load_audio("app/assets/demo_noise.flac", 16000)
    noisy, clean, _ = mix_at_snr(clean[: 16000 * 6], fit_length(noise, 16000 * 6), 0.0, -26.0)
    fp32 = load_processor("baseline", backend="onnx")
    int8 = load_processor("baseline", backend="onnx-int8")
    assert int8.backend == "onnx-int8"
    a, b = enhance_array(fp32, noisy, 16000), enhance_array(int8, noisy, 16000)
    assert si_sdr(a, b) > 30  # the two outputs agree to 30 dB
    assert abs(si_sdr(clean, a) - si_sdr(clean, b)) < 0.2
    size = export_onnx_int8(fp32.model).stat().st_size
    assert size < 0.4 * export_onnx(fp32.model).stat().st_size
    assert int8.megabytes < 0.4 * fp32.megabytes
    assert np.all(np.isfinite(b))
