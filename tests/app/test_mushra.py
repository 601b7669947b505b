"""MUSHRA test logic: hidden, shuffled stimuli with reference and anchor, CSV with the
assignment, per-stimulus means with CIs, and the post-screening rule."""

import csv
import json

import pytest

from app.mushra import ANCHOR, REFERENCE, MushraTest, summarise_csv


def _rate_truthfully(test, quality):
    """A listener who rates each hidden stimulus by its true quality."""
    return {lab: quality[test.stimulus_for(lab)] for lab in test.labels}


def test_trials_hide_and_shuffle_and_write_every_rating(tmp_path):
    path = tmp_path / "mushra.csv"
    t = MushraTest(["baseline", "kd"], listener="ann", csv_path=path, seed=0)
    assert t.labels == ["1", "2", "3", "4"]
    quality = {"baseline": 60, "kd": 62, REFERENCE: 100, ANCHOR: 20}
    orders = set()
    for item in ("mix1", "mix2", "mix3", "mix4", "mix5"):
        trial = t.start_trial(item)
        orders.add(tuple(trial.order))
        t.rate(_rate_truthfully(t, quality), loudness_matched=True)
    assert len(orders) > 1  # the labels carry no information
    rows = list(csv.DictReader(open(path)))
    assert len(rows) == 5 * 4
    assert {r["loudness_matched"] for r in rows} == {"1"}
    for r in rows:
        assert json.loads(r["assignment"])[r["label"]] == r["stimulus"]
        assert float(r["rating"]) == quality[r["stimulus"]]
    s = summarise_csv(path)["stimuli"]
    assert s[REFERENCE]["mean"] == 100 and s[ANCHOR]["mean"] == 20 and s["kd"]["n"] == 5


def test_post_screening_flags_a_listener_who_misses_the_reference(tmp_path):
    path = tmp_path / "m.csv"
    good = {"a": 50, REFERENCE: 95, ANCHOR: 10}
    for who, misses in (("careful", 0), ("careless", 2)):
        t = MushraTest(["a"], listener=who, csv_path=path, seed=1)
        for k in range(10):
            t.start_trial(f"mix{k}")
            q = dict(good)
            if k < misses:
                q[REFERENCE] = 70  # rated the hidden reference below 90: 2 of 10 = 20 %
            t.rate(_rate_truthfully(t, q))
    listeners = summarise_csv(path)["listeners"]
    assert not listeners["careful"]["flagged"]
    assert listeners["careless"]["flagged"] and listeners["careless"]["reference_below_90"] == 0.2


def test_bad_ratings_are_refused():
    t = MushraTest(["a", "b"], seed=2)
    t.start_trial("x")
    with pytest.raises(ValueError, match="rate every stimulus"):
        t.rate({"1": 50})
    with pytest.raises(ValueError, match="0 to 100"):
        t.rate({lab: 120 for lab in t.labels})
    with pytest.raises(ValueError, match="distinct"):
        MushraTest(["a", "a"])
