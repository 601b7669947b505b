"""scripts/by_noise.py: paired differences against a reference, grouped by noise kind."""

import csv
import json

from tests.conftest import load_script


def test_groups_paired_differences_by_noise_kind(tmp_path, capsys):
    mod = load_script("by_noise")
    corpus, report = tmp_path / "corpus", tmp_path / "report"
    (corpus / "mixtures").mkdir(parents=True)
    report.mkdir()
    noises = {
        "a": "noise/x/voices_1.flac",
        "b": "noise/x/voices_2.flac",
        "c": "noise/y/music_3.flac",
    }
    mixes = [{"id": i, "noise": n} for i, n in noises.items()]
    (corpus / "mixtures" / "real-test.json").write_text(json.dumps({"mixtures": mixes}))
    (report / "summary.json").write_text(json.dumps({"meta": {"split": "real-test"}}))
    rows = []
    for i, (base, model) in {"a": (1.0, 3.0), "b": (2.0, 2.0), "c": (5.0, 4.0)}.items():
        rows.append({"processor": "baseline", "id": i, "pesq": 1.5, "stoi": 0.5, "si_sdr": base})
        rows.append({"processor": "m", "id": i, "pesq": 1.5, "stoi": "", "si_sdr": model})
    with open(report / "scores.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["processor", "id", "pesq", "stoi", "si_sdr"])
        w.writeheader()
        w.writerows(rows)
    assert mod.main([str(report), "--models", "m", "--corpus", str(corpus)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2] == "| voices | 2 | m | +0.000 | - | +1.00 |"  # the larger group first
    assert out[3] == "| music | 1 | m | +0.000 | - | -1.00 |"
