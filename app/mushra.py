"""MUSHRA-style listening tests (the shape of ITU-R BS.1534): several hidden stimuli rated at
once on 0-100 scales - the processors under test, a hidden copy of the clean reference and the
noisy input as anchor - with the open reference always available.

No Qt here: the GUI plays the stimulus behind a label and passes the ratings in. Each trial's
ratings are appended to a CSV with the hidden assignment as soon as they are given; the summary
gives each stimulus's mean and 95 % confidence interval, and post-screening flags listeners who
rated the hidden reference below 90 in more than 15 % of their trials.
"""

from __future__ import annotations

import csv
import json
import math
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from app.blind import append_csv

REFERENCE = "reference"  # the hidden clean reference
ANCHOR = "anchor"  # the noisy input
SCREEN_BELOW = 90.0
SCREEN_SHARE = 0.15


@dataclass
class MushraTrial:
    number: int
    item: str  # which mixture is playing
    order: list[str]  # label k (1-based) plays stimulus order[k - 1]
    started: float = field(default_factory=time.time)


class MushraTest:
    def __init__(
        self,
        processors: list[str],
        listener: str = "listener",
        csv_path: str | Path = "",
        seed: int | None = None,
    ):
        if not 1 <= len(processors) <= 6:
            raise ValueError("a MUSHRA test rates 1 to 6 processors (plus reference and anchor)")
        if len(set(processors)) != len(processors) or {REFERENCE, ANCHOR} & set(processors):
            raise ValueError("processor names must be distinct and not 'reference' or 'anchor'")
        self.stimuli = [*processors, REFERENCE, ANCHOR]
        self.listener = listener
        self.rng = random.Random(seed)
        self.csv_path = Path(csv_path) if csv_path else None
        self.results: list[dict] = []
        self.trial: MushraTrial | None = None

    @property
    def labels(self) -> list[str]:
        return [str(k + 1) for k in range(len(self.stimuli))]

    def start_trial(self, item: str) -> MushraTrial:
        order = list(self.stimuli)
        self.rng.shuffle(order)
        self.trial = MushraTrial(len({r["trial"] for r in self.results}) + 1, item, order)
        return self.trial

    def stimulus_for(self, label: str) -> str:
        """The hidden stimulus behind ``label`` ('1', '2', ...) in this trial."""
        return self.trial.order[int(label) - 1]

    def rate(self, ratings: dict[str, float], loudness_matched: bool = False) -> list[dict]:
        """The listener's 0-100 rating for every label of the trial, and whether the stimuli
        played at one loudness; returns the CSV rows."""
        t = self.trial
        if t is None:
            raise ValueError("no trial is running")
        if set(ratings) != set(self.labels):
            raise ValueError(f"rate every stimulus: labels {', '.join(self.labels)}")
        if any(not 0 <= float(v) <= 100 for v in ratings.values()):
            raise ValueError("ratings go from 0 to 100")
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        assignment = json.dumps({lab: self.stimulus_for(lab) for lab in self.labels})
        rows = []
        for lab in self.labels:
            rows.append(
                {
                    "listener": self.listener,
                    "trial": t.number,
                    "item": t.item,
                    "timestamp": stamp,
                    "response_s": round(time.time() - t.started, 2),
                    "label": lab,
                    "stimulus": self.stimulus_for(lab),
                    "rating": float(ratings[lab]),
                    "assignment": assignment,
                    "loudness_matched": int(loudness_matched),
                }
            )
        self.results += rows
        append_csv(self.csv_path, rows)
        self.trial = None
        return rows

    def summary(self) -> dict:
        return summarise(self.results)


def summarise(rows: list[dict]) -> dict:
    """Per stimulus: mean rating and 95 % CI (t interval over all ratings); per listener: the
    share of trials with the hidden reference below 90, and whether that flags them."""
    from scipy.stats import t as student

    by = defaultdict(list)
    for r in rows:
        by[r["stimulus"]].append(float(r["rating"]))
    stimuli = {}
    for name, vals in by.items():
        n = len(vals)
        mean = sum(vals) / n
        if n > 1:
            sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
            ci = float(student.ppf(0.975, n - 1) * sd / math.sqrt(n))
        else:
            ci = float("nan")
        stimuli[name] = {"mean": mean, "ci95": ci, "n": n}
    listeners = {}
    ref = defaultdict(list)
    for r in rows:
        if r["stimulus"] == REFERENCE:
            ref[r["listener"]].append(float(r["rating"]) < SCREEN_BELOW)
    for who, low in ref.items():
        share = sum(low) / len(low)
        listeners[who] = {
            "trials": len(low),
            "reference_below_90": share,
            "flagged": share > SCREEN_SHARE,
        }
    return {"stimuli": stimuli, "listeners": listeners}


def summarise_csv(path: str | Path) -> dict:
    with open(path, newline="") as f:
        return summarise(list(csv.DictReader(f)))
