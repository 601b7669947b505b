#!/usr/bin/env python3
"""Where a processor gains or loses against a reference: paired differences by noise kind.

    python scripts/by_noise.py runs/eval-real-test-shipped --reference baseline \
        --models kd,pretrain,fusion,rnnoise [--corpus ~/.cache/hushlab/corpus]

Reads a ``hushlab eval`` report (scores.csv, and summary.json for its split) and the corpus's
stored mixture list of that split, groups the mixtures by the kind of their noise file (the
part of its name before the first '_': 'voices', 'effects', 'music', ...) and prints, per kind
and model, the mean difference from the reference on the same mixtures (all SNRs together).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

METRICS = (("pesq", "PESQ-WB", 3), ("stoi", "STOI", 3), ("si_sdr", "SI-SDR (dB)", 2))


def noise_kind(path: str) -> str:
    return Path(path).name.split("_")[0]


def table(report: Path, corpus: Path, reference: str, models: list[str]) -> str:
    meta = json.loads((report / "summary.json").read_text())["meta"]
    mixes = json.loads((corpus / "mixtures" / f"{meta['split']}.json").read_text())["mixtures"]
    kind = {m["id"]: noise_kind(m["noise"]) for m in mixes}
    scores: dict[str, dict[str, dict]] = defaultdict(dict)
    with open(report / "scores.csv", newline="") as f:
        for r in csv.DictReader(f):
            scores[r["processor"]][r["id"]] = r
    if reference not in scores:
        raise SystemExit(f"{report}: no scores of '{reference}'")
    ids = sorted(scores[reference])
    kinds = sorted({kind[i] for i in ids}, key=lambda k: -sum(kind[i] == k for i in ids))
    lines = [
        "| noise | mixtures | model | " + " | ".join(m[1] for m in METRICS) + " |",
        "|" + "---|" * (3 + len(METRICS)),
    ]
    for k in kinds:
        sel = [i for i in ids if kind[i] == k]
        for model in models:
            if model not in scores:
                raise SystemExit(f"{report}: no scores of '{model}'")
            cells = []
            for key, _, digits in METRICS:
                d = [
                    float(scores[model][i][key]) - float(scores[reference][i][key])
                    for i in sel
                    if scores[model][i].get(key) not in ("", None)
                    and scores[reference][i].get(key) not in ("", None)
                ]
                cells.append(f"{sum(d) / len(d):+.{digits}f}" if d else "-")
            lines.append(f"| {k} | {len(sel)} | {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("report", type=Path)
    p.add_argument("--reference", default="baseline")
    p.add_argument("--models", required=True, help="comma-separated processor names")
    p.add_argument("--corpus", type=Path, default=Path("~/.cache/hushlab/corpus").expanduser())
    a = p.parse_args(argv)
    print(table(a.report, a.corpus, a.reference, a.models.split(",")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
