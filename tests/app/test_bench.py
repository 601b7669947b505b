"""`hushlab bench`: rows for every model and backend asked for; a distilled model costs what
its baseline costs (the head is not part of the step)."""

import json

import torch

from app.cli import main
from models.checkpoint import save_checkpoint
from models.gcrn import GCRN, GCRNConfig


def test_bench_rows_for_models_and_backends(tmp_path, capsys):
    torch.manual_seed(0)
    base = save_checkpoint(
        tmp_path / "base.safetensors", GCRN(GCRNConfig(channels=(8,) * 4 + (16,)))
    )
    kd_cfg = GCRNConfig(channels=(8,) * 4 + (16,), ssl_dim=32, distill_head=True)
    kd = save_checkpoint(tmp_path / "kd.safetensors", GCRN(kd_cfg))
    out = tmp_path / "bench.json"
    args = ["bench", "--model", f"{base},{kd}", "--seconds", "1", "--backends", "torch,onnx-int8"]
    assert main(args + ["--no-peers", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["processors"]
    got = {(r["name"], r["backend"]) for r in rows}
    assert got == {(n, b) for n in ("base", "kd") for b in ("torch", "onnx-int8")}
    params = {r["name"]: r["params"] for r in rows}
    assert params["kd"] == params["base"]  # the distillation head is dropped at inference
    assert all(r["rtf"] > 0 for r in rows)
    assert "| kd | onnx-int8 |" in capsys.readouterr().out
