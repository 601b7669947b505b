"""`hushlab compare`: paired differences read from eval reports - pooled over reports, one block
per report, or by noise kind - with clear errors for what a report lacks."""

import csv
import json

import pytest

from app.cli import main as hushlab

FIELDS = ["processor", "id", "snr", "pesq", "stoi", "estoi", "si_sdr"]


def write_report(folder, split, diffs, noise_of=None):
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
                        "si_sdr": 1.0 + (2 * d if proc == "m" else 0.0),
                    }
                )
    (folder / "summary.json").write_text(json.dumps({"meta": {"split": split}}))
    return folder


def _rows(out):
    return [[c.strip() for c in r.strip("|").split("|")] for r in out.splitlines() if r[:2] == "| "]


def test_pools_the_pairs_of_every_report(tmp_path, capsys):
    a = write_report(tmp_path / "a", "real-valid", [0.01, 0.03])
    b = write_report(tmp_path / "b", "real-voices", [0.02, 0.02, 0.02])
    assert hushlab(["compare", str(a), str(b), "--models", "m"]) == 0
    head, row = _rows(capsys.readouterr().out)
    assert head[:3] == ["SNR", "model", "pairs"]
    assert row[:3] == ["-5", "m", "5"]  # 2 + 3 pairs, the third processor left out
    assert row[3].startswith("+0.020* [")  # every difference > 0: the interval excludes 0
    assert row[4].startswith("+0.000 [")


def test_one_block_per_report(tmp_path, capsys):
    a = write_report(tmp_path / "a", "real-valid", [0.01, 0.03])
    b = write_report(tmp_path / "b", "real-voices", [0.02, 0.02, 0.02])
    assert hushlab(["compare", str(a), str(b), "--models", "m", "--per-report"]) == 0
    rows = _rows(capsys.readouterr().out)[1:]
    assert [r[:4] for r in rows] == [["a", "-5", "m", "2"], ["b", "-5", "m", "3"]]


def test_groups_differences_by_noise_kind(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    (corpus / "mixtures").mkdir(parents=True)
    report = write_report(tmp_path / "r", "real-test", [0.5, 0.0, -0.5])
    noises = ["noise/x/voices_1.flac", "noise/x/voices_2.flac", "noise/y/music_3.flac"]
    mixes = [{"id": f"real-test{i:04d}_snr-5", "noise": n} for i, n in enumerate(noises)]
    (corpus / "mixtures" / "real-test.json").write_text(json.dumps({"mixtures": mixes}))
    args = ["compare", str(report), "--models", "m", "--by", "noise", "--corpus", str(corpus)]
    assert hushlab(args) == 0
    rows = _rows(capsys.readouterr().out)[1:]
    assert rows[0] == ["voices", "2", "m", "+0.250", "+0.000", "+0.000", "+0.50"]  # larger first
    assert rows[1] == ["music", "1", "m", "-0.500", "+0.000", "+0.000", "-1.00"]


def test_a_missing_reference_model_or_report_is_a_clear_error(tmp_path, capsys):
    a = write_report(tmp_path / "a", "real-valid", [0.01, 0.03])
    assert hushlab(["compare", str(a), "--reference", "nope", "--models", "m"]) != 0
    assert "reference 'nope'" in capsys.readouterr().err
    assert hushlab(["compare", str(a), "--models", "absent"]) != 0
    assert "'absent'" in capsys.readouterr().err
    assert hushlab(["compare", str(tmp_path / "none"), "--models", "m"]) != 0
    assert "not a hushlab eval report" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        hushlab(["compare", str(a)])  # --models is required: argparse says so
