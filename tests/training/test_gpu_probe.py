"""scripts/gpu_probe.py: training-step throughput by batch size and precision."""

import importlib.util
from pathlib import Path


def test_probe_prints_a_row_per_batch_and_precision(capsys):
    spec = importlib.util.spec_from_file_location(
        "gpu_probe", Path(__file__).parents[2] / "scripts" / "gpu_probe.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--batches", "1,2", "--steps", "1", "--seconds", "0.5"]) == 0
    rows = [
        r for r in capsys.readouterr().out.splitlines() if r.startswith("| ") and "|---" not in r
    ]
    assert rows[0].startswith("| batch |")
    body = [r.split("|")[1:-1] for r in rows[1:]]
    assert [(b.strip(), p.strip()) for b, p, *_ in body] == [
        ("1", "fp32"),
        ("1", "bf16"),
        ("2", "fp32"),
        ("2", "bf16"),
    ]
    for _, _, sps, hours in body:
        assert float(sps) > 0 and float(hours) > 0
