"""The ONNX export cache: a failed export leaves no file behind, and the int8 export leaves the
process's logging as it was (only the quantiser's own advice is held back)."""

import logging

import pytest
import torch


class Broken(torch.nn.Module):
    def forward(self, x):
        raise RuntimeError("cannot trace this")


def test_a_failed_export_leaves_no_temp_file(tmp_path):
    from models.onnx_step import export_cached

    target = tmp_path / "cache" / "broken.onnx"
    with pytest.raises(RuntimeError, match="cannot trace"):
        export_cached(Broken(), (torch.zeros(1, 3),), target, ["x"], ["y"])
    assert list((tmp_path / "cache").iterdir()) == []


def test_int8_export_leaves_the_root_logger_alone(tmp_path, monkeypatch):
    import onnxruntime.quantization as q

    from models.gcrn import GCRN, GCRNConfig
    from models.onnx_step import export_onnx_int8

    root = logging.getLogger()
    seen = {}

    def fake_quantize(src, dst, **kw):
        seen["level"] = root.level
        mine = logging.LogRecord("root", logging.WARNING, __file__, 1, "ours", None, None)
        theirs = logging.LogRecord("root", logging.WARNING, q.__file__, 1, "advice", None, None)
        seen["ours"], seen["theirs"] = root.filter(mine), root.filter(theirs)
        raise RuntimeError("quantiser failed")

    monkeypatch.setattr(q, "quantize_dynamic", fake_quantize)
    before = root.level
    model = GCRN(GCRNConfig(channels=(4, 4, 8, 8, 16))).eval()
    with pytest.raises(RuntimeError, match="quantiser failed"):
        export_onnx_int8(model, tmp_path)
    assert seen == {"level": before, "ours": True, "theirs": False}
    assert root.level == before and not root.filters
    assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []


def test_a_broken_onnx_runtime_is_said_not_silent(monkeypatch, caplog):
    import builtins

    import models.onnx_step as o

    real = builtins.__import__

    def broken(name, *a, **k):
        if name == "onnxruntime":
            raise ImportError("libonnxruntime.so.1: cannot open shared object file")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", broken)
    monkeypatch.setattr(o, "_ORT_BROKEN", None)
    with caplog.at_level(logging.WARNING, logger="models.onnx_step"):
        assert o._has_onnxruntime() is False
        assert o._has_onnxruntime() is False  # said once
    said = [r.getMessage() for r in caplog.records if "does not load" in r.getMessage()]
    assert len(said) == 1 and "cannot open shared object" in said[0]

    def absent(name, *a, **k):
        if name == "onnxruntime":
            raise ModuleNotFoundError("No module named 'onnxruntime'", name="onnxruntime")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", absent)
    caplog.clear()
    assert o._has_onnxruntime() is False and not caplog.records  # not installed: quiet
