"""scripts/ssl_table.py: the README's paired-difference table, read from eval reports."""

import json
from pathlib import Path

import pytest

from tests.conftest import load_script


def _module():
    return load_script("ssl_table")


def _report(folder: Path, reference="baseline"):
    d = {"mean": 0.012, "lo": 0.002, "hi": 0.02, "n": 40}
    z = {"mean": -0.1, "lo": -0.3, "hi": 0.1, "n": 40}
    per_snr = {k: {"pesq": d, "stoi": z, "estoi": d, "si_sdr": z} for k in ("-5", "+0", "+5")}
    folder.mkdir()
    (folder / "summary.json").write_text(
        json.dumps(
            {
                "meta": {"snrs": [-5.0, 0.0, 5.0]},
                "paired": {"reference": reference, "differences": {"kd": per_snr}},
            }
        )
    )
    return folder


def test_table_marks_intervals_that_exclude_zero(tmp_path):
    out = _module().table([("real-test", _report(tmp_path / "r"))], ["kd"])
    rows = out.splitlines()
    assert len(rows) == 2 + 3 and rows[3].startswith("| real-test | +0 | kd |")
    assert "+0.012* [+0.002, +0.020]" in rows[2] and "-0.10 [-0.30, +0.10]" in rows[2]


def test_table_refuses_a_report_without_the_baseline_pairing(tmp_path):
    mod = _module()
    with pytest.raises(SystemExit, match="--paired baseline"):
        mod.table([("test", _report(tmp_path / "r", reference="noisy"))], ["kd"])
    with pytest.raises(SystemExit, match="no paired scores of fusion"):
        mod.table([("test", _report(tmp_path / "s"))], ["fusion"])


def test_a_model_scored_under_its_checkpoint_path_gets_its_label(tmp_path):
    out = _module().table([("real-valid", _report(tmp_path / "r"))], ["distilled=kd"])
    assert "| real-valid | -5 | distilled |" in out


def test_reports_paired_against_another_reference(tmp_path):
    mod = _module()
    ref = "runs/baseline-comparison.safetensors"
    report = _report(tmp_path / "r", reference=ref)
    out = mod.table([("real-valid", report)], ["kd"], reference=ref)
    assert len(out.splitlines()) == 5
    with pytest.raises(SystemExit, match="--paired baseline"):
        mod.table([("real-valid", report)], ["kd"])
