"""The int8 streaming step: a quarter of the weight bytes, the same enhancement."""

import numpy as np
import pytest

from dsp.audio_io import load_audio
from dsp.errors import UserError
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


def test_auto_backend_takes_int8_only_for_a_model_that_passed_the_check(tmp_path, monkeypatch):
    import json

    import torch

    import models.checkpoint as ck
    from models.gcrn import GCRN, GCRNConfig
    from models.onnx_step import weights_digest
    from training import int8_check

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    shipped = tmp_path / "shipped"
    torch.manual_seed(0)
    model = GCRN(GCRNConfig(channels=(4, 4, 8, 8, 16)))
    ck.save_checkpoint(shipped / "small" / "model.safetensors", model)
    monkeypatch.setattr(ck, "SHIPPED_DIR", shipped)
    assert load_processor("small").backend == "onnx"  # no check yet
    digest = "weights:" + weights_digest(model)

    def report(folder, pesq, sisdr, **extra):
        summ = {
            "small": {
                snr: {"pesq": {"mean": pesq}, "si_sdr": {"mean": sisdr}} for snr in ("-5", "+5")
            }
        }
        meta = {"mixtures": "m", "digests": {"small": digest}, "split": "valid", "pairs": 40}
        meta.update(extra)
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "summary.json").write_text(json.dumps({"meta": meta, "summary": summ}))
        return str(tmp_path / folder)

    fp32 = report("fp32", 1.50, 5.00)
    unshipped = tmp_path / "unshipped"  # a check run before shipping writes nothing: an error
    unshipped.mkdir()
    summ = json.loads((tmp_path / "fp32" / "summary.json").read_text())
    summ["summary"] = {"runs/other.safetensors": summ["summary"]["small"]}
    summ["meta"]["digests"] = {"runs/other.safetensors": "weights:0000"}
    (unshipped / "summary.json").write_text(json.dumps(summ))
    with pytest.raises(UserError, match="ship it first"):
        int8_check.main(["--fp32", str(unshipped), "--int8", str(unshipped)])
    assert int8_check.main(["--fp32", fp32, "--int8", report("bad", 1.47, 5.0)]) == 0
    assert load_processor("small").backend == "onnx"  # PESQ 0.03 down: it fails
    # an "int8" report that scored the fp32 step is refused, not taken for a pass
    fp32_again = report("fp32-again", 1.50, 5.00, backends={"small": "onnx"})
    with pytest.raises(UserError, match="--backend onnx"):
        int8_check.main(["--fp32", fp32, "--int8", fp32_again])
    good = report("good", 1.49, 4.9, backends={"small": "onnx-int8"}, int8_weight_bits=7)
    assert int8_check.main(["--fp32", fp32, "--int8", good]) == 0
    assert load_processor("small").backend == "onnx-int8"
    assert json.loads((shipped / "small" / "int8_check.json").read_text())["weight_bits"] == 7
    assert load_processor("small", backend="onnx").backend == "onnx"  # asked for: obeyed
    ck.save_checkpoint(shipped / "small" / "model.safetensors", GCRN(model.config))  # retrained
    assert load_processor("small").backend == "onnx"  # the check was for other weights


def test_weights_take_seven_bits_only_on_x86_without_vnni(monkeypatch):
    import platform

    from models.onnx_step import int8_reduce_range

    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    avx2 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
    vnni = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 avx512f avx512_vnni\n"
    assert int8_reduce_range(avx2) is True
    assert int8_reduce_range(vnni) is False
    assert int8_reduce_range("flags\t: avx2 avx_vnni\n") is False
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert int8_reduce_range(avx2) is False


def test_every_shipped_model_passed_the_int8_check_for_its_own_weights():
    """backend="auto" streams int8 only for weights that passed the check: a model shipped
    without the check rerun would silently stream fp32 (kd, pretrain and fusion once did)."""
    from models.checkpoint import load_checkpoint, shipped_models
    from models.onnx_step import int8_passed, weights_digest

    shipped = shipped_models()
    assert {"baseline", "kd", "pretrain", "fusion"} <= set(shipped)
    for name, path in shipped.items():
        model, _ = load_checkpoint(path)
        assert int8_passed(path, "weights:" + weights_digest(model)), name
