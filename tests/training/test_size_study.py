"""The model-size study's sizes and cost count, and the README's results table builder."""

import json

import pytest

from tests.conftest import load_script


def test_sizes_shrink_in_parameters_and_mac_per_second():
    from training.size_study import SIZES, _model, macs_per_second

    cost = [(_model(s)[0].inference_parameters(), macs_per_second(_model(s)[0])) for s in SIZES]
    assert cost == sorted(cost, reverse=True)  # L > M > S > XS in both
    assert 3.5e6 < cost[0][0] < 3.9e6  # L is the shipped size
    for s in SIZES:  # every size keeps the streaming contract of the recipe's model
        model, mc = _model(s)
        assert mc["df_taps"] == 4 and mc["lookahead"] == 1 and model.latency_samples == 400


def test_macs_count_a_linear_layer_per_frame():
    import torch

    from training.size_study import macs_per_second

    class One(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(257, 10)
            self.config = type("C", (), {"sample_rate": 16000, "hop": 320, "n_fft": 512})

        def forward(self, x):  # [B, 2, T, F]
            return self.lin(x)

    assert macs_per_second(One()) == pytest.approx(2 * 50 * 10 * 257)


def test_results_table_joins_a_report_and_a_bench(tmp_path):
    mod = load_script("results_table")
    stat = {
        "pesq": {"mean": 1.234, "ci95": 0.05},
        "stoi": {"mean": 0.7, "ci95": 0.02},
        "si_sdr": {"mean": 3.21, "ci95": 0.4},
    }
    report = {
        "meta": {
            "processors": ["noisy", "baseline", "rnnoise"],
            "split": "real-test",
            "pairs": 100,
            "backends": {"baseline": "onnx-int8"},
        },
        "summary": {p: {"-5": stat, "+5": stat} for p in ("noisy", "baseline", "rnnoise")},
    }
    bench = {
        "processors": [
            {"name": "baseline", "backend": "onnx", "rtf": 0.02, "latency_ms": 45},
            {"name": "baseline", "backend": "onnx-int8", "rtf": 0.015, "latency_ms": 45},
            {"name": "rnnoise", "backend": "native", "rtf": 0.03, "latency_ms": 30},
        ],
        "machine": {"cpu": "x"},
    }
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "summary.json").write_text(json.dumps(report))
    rows = mod.table(report, bench).splitlines()
    assert rows[0].startswith("| processor | latency (ms) | RTF | PESQ-WB at -5 / +5 dB")
    assert (
        rows[2]
        == "| noisy | - | - | 1.23±0.05 / 1.23±0.05 | 0.70±0.02 / 0.70±0.02 | 3.2±0.4 / 3.2±0.4 |"
    )
    assert rows[3].startswith("| baseline | 45 | 0.015 |")  # the backend it was scored on
    assert rows[4].startswith("| rnnoise | 30 | 0.030 |")
