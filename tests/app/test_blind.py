import csv
import json

import pytest

from app.blind import BlindTest


def test_labels_are_shuffled_and_recorded(tmp_path):
    bt = BlindTest(["baseline", "bypass"], "ab", tmp_path / "r.csv", seed=1)
    seen = set()
    for k in range(20):
        seen.add(tuple(sorted(bt.trial.mapping.items())))
        bt.vote("A", loudness_matched=k >= 10)
    assert len(seen) == 2  # both assignments occur: labels carry no information
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert len(rows) == 20
    for r in rows:
        assert r["chosen_processor"] == json.loads(r["assignment"])["A"]
    assert [r["loudness_matched"] for r in rows] == ["0"] * 10 + ["1"] * 10
    s = bt.summary()
    assert sum(s["counts"].values()) == 20 and 0 <= s["p_value"] <= 1


def test_consistent_preference_is_significant():
    bt = BlindTest(["good", "bad"], "ab", seed=2)
    for _ in range(12):
        label = next(k for k, v in bt.trial.mapping.items() if bt.names[v] == "good")
        bt.vote(label)
    s = bt.summary()
    assert s["counts"] == {"good": 12, "bad": 0} and s["p_value"] < 0.001


def test_abx_scores_correct_identifications():
    bt = BlindTest(["x", "y"], "abx", seed=3)
    assert bt.labels == ["A", "B", "X"]
    for _ in range(10):
        assert bt.processor_for("X") == bt.processor_for(bt.trial.x_is)
        bt.vote(bt.trial.x_is)
    s = bt.summary()
    assert s["correct"] == 10 and s["p_value"] < 0.002


def test_bad_setups_are_refused():
    with pytest.raises(ValueError):
        BlindTest(["only one"], "ab")
    with pytest.raises(ValueError):
        BlindTest(["a", "b", "c"], "abx")
    bt = BlindTest(["a", "b"], "ab")
    with pytest.raises(ValueError):
        bt.vote("C")


def test_three_way_preference_does_not_select_before_testing():
    """Counts 6/4/2 of 12 are common by chance; testing the top one against 1/3 after
    picking it gave p 0.23; over all three counts it is 0.37."""
    bt = BlindTest(["a", "b", "c"], "ab", seed=4)
    want = ["a"] * 6 + ["b"] * 4 + ["c"] * 2
    for name in want:
        label = next(k for k, v in bt.trial.mapping.items() if bt.names[v] == name)
        bt.vote(label)
    s = bt.summary()
    assert s["counts"] == {"a": 6, "b": 4, "c": 2}
    assert s["p_value"] == pytest.approx(0.3679, abs=1e-3)
    # a real preference still shows
    bt2 = BlindTest(["a", "b", "c"], "ab", seed=5)
    for _ in range(15):
        label = next(k for k, v in bt2.trial.mapping.items() if bt2.names[v] == "a")
        bt2.vote(label)
    assert bt2.summary()["p_value"] < 0.001
