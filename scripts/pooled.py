#!/usr/bin/env python3
"""Paired differences over several reports' mixtures pooled: more pairs, a narrower interval.

    python scripts/pooled.py runs/eval-real-valid-r15 runs/eval-real-voices-r15 \
        --reference baseline --models runs/baseline-df4-cont/best.safetensors,... [--snr -5]

Reads each ``hushlab eval`` report's scores.csv, keeps the rows of the reference and the models,
and prints per SNR and model the mean difference from the reference over every report's
mixtures together, with the 95 % paired-bootstrap interval of ``training.evaluate`` (* = the
interval excludes 0). Mixture ids carry their split's name, so reports of different splits
never share a pair.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.ssl_table import METRICS, cell  # noqa: E402
from training.evaluate import paired_differences  # noqa: E402


def load(reports: list[Path], keep: set[str]) -> list[dict]:
    rows, seen = [], set()
    for folder in reports:
        with open(folder / "scores.csv", newline="") as f:
            for r in csv.DictReader(f):
                if r["processor"] not in keep:
                    continue
                key = (r["processor"], r["id"])
                if key in seen:
                    raise SystemExit(f"{folder}: mixture {r['id']} of {r['processor']} twice")
                seen.add(key)
                row = {k: (None if v == "" else v) for k, v in r.items()}
                row["snr"] = float(r["snr"])
                rows.append(row)
    return rows


def table(reports: list[Path], reference: str, models: list[str], snrs: list[str] | None) -> str:
    rows = load(reports, {reference, *models})
    if not any(r["processor"] == reference for r in rows):
        where = ", ".join(map(str, reports))
        raise SystemExit(f"no scores of the reference '{reference}' in {where}")
    diffs = paired_differences(rows, reference)
    lines = [
        "| SNR | model | pairs | " + " | ".join(m[1] for m in METRICS) + " |",
        "|" + "---|" * (3 + len(METRICS)),
    ]
    for m in models:
        if m not in diffs:
            raise SystemExit(f"no paired scores of '{m}'")
    for snr in sorted({s for m in models for s in diffs[m]}, key=float):
        if snrs and snr not in snrs:
            continue
        for m in models:
            d = diffs[m][snr]
            cells = " | ".join(cell(d[k], n) for k, _, n in METRICS)
            lines.append(f"| {snr} | {m} | {d['pesq']['n']} | {cells} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("reports", nargs="+", type=Path, help="hushlab eval report folders")
    p.add_argument("--reference", default="baseline")
    p.add_argument("--models", required=True, help="comma-separated processor names")
    p.add_argument("--snr", action="append", help="only this SNR, as reports name it (-5, +0, +5)")
    a = p.parse_args(argv)
    print(table(a.reports, a.reference, a.models.split(","), a.snr))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
