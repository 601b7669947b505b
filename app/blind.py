"""Blind listening tests: hidden, randomised labels per trial; A/B preference or ABX.

No Qt here: the GUI drives a :class:`BlindTest` and shows what it returns. Results are appended
to a CSV file as each vote is cast (nothing is lost if the app is closed mid-test).
"""

from __future__ import annotations

import csv
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

LABELS = "ABCD"


def append_csv(path: Path | None, rows: list[dict]) -> None:
    """Append result rows to a CSV (header when the file is new), as soon as they exist: nothing
    is lost if the app is closed mid-test. No path: keep them in memory only."""
    if not path or not rows:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        if new:
            w.writeheader()
        w.writerows(rows)


@dataclass
class Trial:
    number: int
    mapping: dict[str, int]  # label -> processor index (into BlindTest.names)
    x_is: str = ""  # ABX: which label X hides
    started: float = field(default_factory=time.time)


class BlindTest:
    def __init__(
        self, names: list[str], mode: str = "ab", csv_path: str | Path = "", seed: int | None = None
    ):
        if mode not in ("ab", "abx"):
            raise ValueError("mode must be 'ab' (preference) or 'abx'")
        if not 2 <= len(names) <= 4:
            raise ValueError("a blind test needs 2 to 4 processors")
        if mode == "abx" and len(names) != 2:
            raise ValueError("ABX compares exactly two processors")
        self.names = list(names)
        self.mode = mode
        self.rng = random.Random(seed)
        self.csv_path = Path(csv_path) if csv_path else None
        self.results: list[dict] = []
        self.trial: Trial | None = None
        self.next_trial()

    @property
    def labels(self) -> list[str]:
        """Labels the listener can switch between in the current trial."""
        base = list(LABELS[: len(self.names)])
        return base + ["X"] if self.mode == "abx" else base

    def next_trial(self) -> Trial:
        order = list(range(len(self.names)))
        self.rng.shuffle(order)
        mapping = {LABELS[i]: order[i] for i in range(len(order))}
        t = Trial(number=len(self.results) + 1, mapping=mapping)
        if self.mode == "abx":
            t.x_is = self.rng.choice(["A", "B"])
            mapping["X"] = mapping[t.x_is]
        self.trial = t
        return t

    def processor_for(self, label: str) -> int:
        """Index of the hidden processor behind ``label`` in this trial."""
        return self.trial.mapping[label]

    def vote(self, label: str, loudness_matched: bool = False) -> dict:
        """Record the listener's answer: the preferred label (ab) or what X is (abx), and
        whether the stimuli played at one loudness (a condition the results depend on)."""
        t = self.trial
        valid = list(LABELS[: len(self.names)])
        if label not in valid:
            raise ValueError(f"vote for one of {valid}")
        row = {
            "trial": t.number,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "mode": self.mode,
            "response_s": round(time.time() - t.started, 2),
            "choice": label,
            "assignment": json.dumps({k: self.names[v] for k, v in t.mapping.items()}),
            "loudness_matched": int(loudness_matched),
        }
        if self.mode == "ab":
            row["chosen_processor"] = self.names[t.mapping[label]]
            row["correct"] = ""
        else:
            row["chosen_processor"] = ""
            row["correct"] = int(label == t.x_is)
        self.results.append(row)
        append_csv(self.csv_path, [row])
        self.next_trial()
        return row

    def summary(self) -> dict:
        """Preference counts (ab) or correct identifications (abx), with a p-value: binomial for
        two processors and for ABX, a chi-square goodness-of-fit over all counts for three or
        four (testing the most-chosen one against 1/k after picking it would overstate it)."""
        from scipy.stats import binomtest

        n = len(self.results)
        if self.mode == "ab":
            counts = {name: 0 for name in self.names}
            for r in self.results:
                counts[r["chosen_processor"]] += 1
            if not n:
                p = float("nan")
            elif len(self.names) == 2:  # two-sided test of p = 1/2
                p = binomtest(max(counts.values()), n, 0.5).pvalue
            else:  # no processor picked first: do all the counts depart from uniform?
                from scipy.stats import chisquare

                p = float(chisquare(list(counts.values())).pvalue)
            return {"mode": "ab", "trials": n, "counts": counts, "p_value": p}
        k = sum(int(r["correct"]) for r in self.results)
        p = binomtest(k, n, 0.5, alternative="greater").pvalue if n else float("nan")
        return {"mode": "abx", "trials": n, "correct": k, "p_value": p}
