"""scripts/pooled.py: paired differences over several reports' mixtures together."""

import csv

import pytest

from tests.conftest import load_script

FIELDS = ["processor", "id", "snr", "pesq", "stoi", "estoi", "si_sdr"]


def write_report(folder, split, diffs):
    folder.mkdir()
    with open(folder / "scores.csv", "w", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        for i, d in enumerate(diffs):
            for proc, pesq in (("baseline", 1.2), ("m", 1.2 + d), ("other", 9.0)):
                w.writerow(
                    {
                        "processor": proc,
                        "id": f"{split}{i:04d}_snr-5",
                        "snr": -5.0,
                        "pesq": pesq,
                        "stoi": 0.5,
                        "estoi": "" if proc == "m" and i == 0 else 0.4,
                        "si_sdr": 1.0,
                    }
                )


def test_pools_the_pairs_of_every_report(tmp_path, capsys):
    mod = load_script("pooled")
    a, b = tmp_path / "a", tmp_path / "b"
    write_report(a, "real-valid", [0.01, 0.03])
    write_report(b, "real-voices", [0.02, 0.02, 0.02])
    assert mod.main([str(a), str(b), "--models", "m"]) == 0
    row = capsys.readouterr().out.splitlines()[2]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:3] == ["-5", "m", "5"]  # 2 + 3 pairs, the third processor left out
    assert cells[3].startswith("+0.020* [")  # every difference > 0: the interval excludes 0
    assert cells[4].startswith("+0.000 [")


def test_a_missing_reference_or_model_is_a_clear_error(tmp_path):
    mod = load_script("pooled")
    a = tmp_path / "a"
    write_report(a, "real-valid", [0.01, 0.03])
    with pytest.raises(SystemExit, match="reference 'nope'"):
        mod.main([str(a), "--reference", "nope", "--models", "m"])
    with pytest.raises(SystemExit, match="'absent'"):
        mod.main([str(a), "--models", "absent"])
