"""scripts/decide.py: round fifteen's decision rule applied to eval reports."""

import csv
import json

import numpy as np

from tests.conftest import load_script

FIELDS = ["processor", "id", "snr", "pesq", "stoi", "estoi", "si_sdr"]


def write_report(folder, split, models, n=12, seed=0):
    """models: name -> {metric: offset from the reference} (a number, or a dict snr -> number)."""
    folder.mkdir()
    rng = np.random.default_rng(seed)
    with open(folder / "scores.csv", "w", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        for snr in (-5.0, 0.0, 5.0):
            for i in range(n):
                base = {"pesq": 1.3, "stoi": 0.6, "estoi": 0.4, "si_sdr": 4.0}
                noise = {k: rng.normal(0, 0.002) for k in base}
                mid = f"{split}{i:04d}_snr{snr:+.0f}"
                w.writerow({"processor": "baseline", "id": mid, "snr": snr, **base})
                for name, off in models.items():
                    row = {}
                    for k, v in base.items():
                        o = off.get(k, 0.0)
                        o = o.get(snr, 0.0) if isinstance(o, dict) else o
                        row[k] = v + o + noise[k]
                    w.writerow({"processor": name, "id": mid, "snr": snr, **row})
    (folder / "summary.json").write_text(json.dumps({"meta": {"split": split}}))
    return folder


def write_corpus(root, split, n=12):
    (root / "mixtures").mkdir(parents=True)
    mixes = [
        {
            "id": f"{split}{i:04d}_snr{snr:+.0f}",
            "noise": f"noise/{split}/{'music' if i % 3 == 0 else 'wind'}_{i}.flac",
        }
        for snr in (-5.0, 0.0, 5.0)
        for i in range(n)
    ]
    (root / "mixtures" / f"{split}.json").write_text(json.dumps({"mixtures": mixes}))
    return root


def reports(tmp_path, models_real, models_valid):
    return (
        write_report(tmp_path / "rv", "real-valid", models_real, seed=1),
        write_report(tmp_path / "vo", "real-voices", models_real, seed=2),
        write_report(tmp_path / "va", "valid", models_valid, seed=3),
        write_corpus(tmp_path / "corpus", "valid"),
    )


def test_the_larger_pooled_gain_among_qualifiers_is_chosen(tmp_path):
    mod = load_script("decide")
    good, better = {"pesq": 0.02}, {"pesq": 0.03}
    rv, vo, va, corpus = reports(tmp_path, {"a": good, "b": better}, {"a": {}, "b": {}})
    chosen, lines = mod.decide(rv, vo, va, ["a", "b"], corpus=corpus)
    assert chosen == "b"
    assert lines[-1].startswith("Verdict: ship b (pooled -5 dB PESQ-WB +0.030")
    assert sum(line == "- **qualifies**" for line in lines) == 2


def test_each_clause_of_the_rule_can_fail_a_candidate(tmp_path):
    mod = load_script("decide")
    real = {
        "stoi_low": {"pesq": 0.02, "stoi": -0.02},
        "sisdr_low": {"pesq": 0.02, "si_sdr": -0.5},
        "loses_at_5": {"pesq": {-5.0: 0.02, 0.0: 0.0, 5.0: -0.02}},
        "not_higher": {"pesq": {-5.0: -0.005}},
        "valid_loss": {"pesq": 0.02},
    }
    valid = {k: {} for k in real} | {"valid_loss": {"pesq": {5.0: -0.03}}}
    rv, vo, va, corpus = reports(tmp_path, real, valid)
    chosen, lines = mod.decide(rv, vo, va, list(real), corpus=corpus)
    assert chosen is None and lines[-1] == "Verdict: none qualifies; nothing is shipped"
    text = "\n".join(lines)
    assert "2. real-valid -5 dB STOI -0.020 < -0.01" in text
    assert "2. real-voices +5 dB SI-SDR -0.50 < -0.3" in text
    assert "1. real-valid +5 dB PESQ-WB significantly lower" in text
    assert "3. -5 dB PESQ-WB not higher on both real splits" in text
    assert "4. valid +5 dB PESQ-WB significantly lower" in text
    # the music guard: all SNRs of valid's music mixtures together (-0.01 mean over 3 SNRs)
    assert "5. valid music PESQ-WB -0.010" not in text  # -0.03 / 3 = -0.01 >= -0.02


def test_music_guard(tmp_path):
    mod = load_script("decide")
    rv, vo, va, corpus = reports(tmp_path, {"m": {"pesq": 0.02}}, {"m": {"pesq": -0.025}})
    chosen, lines = mod.decide(rv, vo, va, ["m"], corpus=corpus)
    assert chosen is None
    assert any(line.startswith("  - 5. valid music PESQ-WB -0.025") for line in lines)
    assert any(line.startswith("  - 4. valid -5 dB PESQ-WB significantly lower") for line in lines)


def test_a_folder_that_is_no_report_is_a_clear_error(tmp_path, capsys):
    mod = load_script("decide")
    rv, vo, va, corpus = reports(tmp_path, {"m": {}}, {"m": {}})
    empty = tmp_path / "empty"
    empty.mkdir()
    args = ["--real-valid", str(rv), "--real-voices", str(empty), "--valid", str(va)]
    assert mod.main([*args, "--models", "m", "--corpus", str(corpus)]) == 2
    assert "is not a hushlab eval report" in capsys.readouterr().err
