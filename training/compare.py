"""``hushlab compare REPORT... --models A,B [--reference R]``: paired differences read from
``hushlab eval`` reports, without scoring anything again.

- default: each model minus the reference on the mixtures both scored, every report's mixtures
  pooled (more pairs, a narrower interval; mixture ids carry their split, so reports of
  different splits never share a pair), per SNR, with the 95 % paired bootstrap of
  ``training.evaluate`` (* = the interval excludes 0);
- ``--per-report``: one block of rows per report (a split column) instead of pooling;
- ``--by noise``: the mean differences per kind of noise file ('voices', 'music', ...; all SNRs
  together), from the corpus's stored mixture list of each report's split.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

from dsp.errors import UserError

METRICS = (
    ("pesq", "PESQ-WB", 3),
    ("stoi", "STOI", 3),
    ("estoi", "eSTOI", 3),
    ("si_sdr", "SI-SDR (dB)", 2),
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("reports", nargs="+", type=Path, help="hushlab eval report folders")
    p.add_argument("--models", required=True, help="comma-separated processor names")
    p.add_argument("--reference", default="baseline", help="what the models are compared with")
    p.add_argument("--snr", action="append", help="only this SNR, as reports name it (-5, +0)")
    p.add_argument("--per-report", action="store_true", help="a block per report, not pooled")
    p.add_argument("--by", choices=["noise"], help="group the mixtures (by noise kind)")
    p.add_argument("--corpus", type=Path, default=None, help="corpus of the reports (--by)")


def cell(d: dict, digits: int) -> str:
    star = "*" if d["lo"] > 0 or d["hi"] < 0 else ""
    return f"{d['mean']:+.{digits}f}{star} [{d['lo']:+.{digits}f}, {d['hi']:+.{digits}f}]"


def load_rows(reports: list[Path], keep: set[str]) -> list[dict]:
    """The scores.csv rows of the processors in ``keep``, every report together."""
    rows, seen = [], set()
    for folder in reports:
        path = folder / "scores.csv"
        if not path.exists():
            raise UserError(f"{folder}: not a hushlab eval report (no scores.csv)")
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                if r["processor"] not in keep:
                    continue
                key = (r["processor"], r["id"])
                if key in seen:
                    raise UserError(f"{folder}: mixture {r['id']} of {r['processor']} twice")
                seen.add(key)
                row = {k: (None if v == "" else v) for k, v in r.items()}
                row["snr"] = float(r["snr"])
                rows.append(row)
    return rows


def paired_table(
    reports: list[Path],
    reference: str,
    models: list[str],
    snrs: list[str] | None = None,
    label: str | None = None,
) -> list[str]:
    from training.evaluate import paired_differences

    rows = load_rows(reports, {reference, *models})
    if not any(r["processor"] == reference for r in rows):
        raise UserError(
            f"no scores of the reference '{reference}' in {', '.join(map(str, reports))}"
        )
    diffs = paired_differences(rows, reference)
    for m in models:
        if m not in diffs:
            raise UserError(f"no paired scores of '{m}' against '{reference}'")
    lines = []
    for snr in sorted({s for m in models for s in diffs[m]}, key=float):
        if snrs and snr not in snrs:
            continue
        for m in models:
            d = diffs[m][snr]
            cells = " | ".join(cell(d[k], n) if k in d else "-" for k, _, n in METRICS)
            lead = f"{label} | " if label else ""
            lines.append(f"| {lead}{snr} | {m} | {d['pesq']['n']} | {cells} |")
    return lines


def noise_kind(path: str) -> str:
    return Path(path).name.split("_")[0]


def by_noise_table(
    reports: list[Path], corpus: Path, reference: str, models: list[str]
) -> list[str]:
    kind = {}
    for folder in reports:
        meta = json.loads((folder / "summary.json").read_text())["meta"]
        stored = corpus / "mixtures" / f"{meta['split']}.json"
        if not stored.exists():
            raise UserError(f"{stored}: no stored mixtures of '{meta['split']}' (--corpus?)")
        kind.update(
            {m["id"]: noise_kind(m["noise"]) for m in json.loads(stored.read_text())["mixtures"]}
        )
    scores: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in load_rows(reports, {reference, *models}):
        scores[r["processor"]][r["id"]] = r
    if reference not in scores:
        raise UserError(f"no scores of the reference '{reference}'")
    ids = sorted(scores[reference])
    kinds = sorted({kind[i] for i in ids}, key=lambda k: -sum(kind[i] == k for i in ids))
    lines = []
    for k in kinds:
        sel = [i for i in ids if kind[i] == k]
        for model in models:
            if model not in scores:
                raise UserError(f"no scores of '{model}'")
            cells = []
            for key, _, digits in METRICS:
                d = [
                    float(scores[model][i][key]) - float(scores[reference][i][key])
                    for i in sel
                    if i in scores[model]
                    and scores[model][i].get(key) is not None
                    and scores[reference][i].get(key) is not None
                ]
                cells.append(f"{sum(d) / len(d):+.{digits}f}" if d else "-")
            lines.append(f"| {k} | {len(sel)} | {model} | " + " | ".join(cells) + " |")
    return lines


def run(args) -> int:
    models = [m for m in args.models.split(",") if m]
    heads = " | ".join(m[1] for m in METRICS)
    if args.by == "noise":
        from training.corpus import default_corpus_dir

        corpus = args.corpus or default_corpus_dir()
        print(f"| noise | mixtures | model | {heads} |")
        print("|" + "---|" * (3 + len(METRICS)))
        print("\n".join(by_noise_table(args.reports, corpus, args.reference, models)))
        print(f"\nmean difference from {args.reference}, every SNR together")
        return 0
    if args.per_report:
        print(f"| report | SNR | model | pairs | {heads} |")
        print("|" + "---|" * (4 + len(METRICS)))
        for r in args.reports:
            print("\n".join(paired_table([r], args.reference, models, args.snr, label=r.name)))
    else:
        print(f"| SNR | model | pairs | {heads} |")
        print("|" + "---|" * (3 + len(METRICS)))
        print("\n".join(paired_table(args.reports, args.reference, models, args.snr)))
    print(f"\nmean difference from {args.reference} [95 % paired-bootstrap CI]; * excludes 0")
    return 0
