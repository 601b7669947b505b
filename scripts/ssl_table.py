"""The README's comparison of the SSL-informed models: paired differences against the baseline.

    python scripts/ssl_table.py real-valid=runs/eval-real-valid-all \
        real-test=runs/eval-real-test-all test=runs/eval-test-all [--models kd,pretrain,fusion]

A model may be given as LABEL=NAME for reports that scored it under another name (its
checkpoint path before it was shipped): ``fusion=runs/fusion-real/best.safetensors``.

Reads the ``paired`` block of each ``hushlab eval --paired baseline`` report (summary.json) and
prints one Markdown table: per split, SNR and model, the mean difference from the baseline on
the same mixtures with its 95 % paired-bootstrap interval (* = the interval excludes 0).
``--reference R`` reads reports paired against R instead (``--paired R``): a baseline that is
no longer the shipped one, by its file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

METRICS = (
    ("pesq", "PESQ-WB", 3),
    ("stoi", "STOI", 3),
    ("estoi", "eSTOI", 3),
    ("si_sdr", "SI-SDR (dB)", 2),
)


def cell(d: dict, digits: int) -> str:
    star = "*" if d["lo"] > 0 or d["hi"] < 0 else ""
    return f"{d['mean']:+.{digits}f}{star} [{d['lo']:+.{digits}f}, {d['hi']:+.{digits}f}]"


def table(reports: list[tuple[str, Path]], models: list[str], reference: str = "baseline") -> str:
    head = "| split | SNR | model | " + " | ".join(m[1] for m in METRICS) + " |"
    lines = [head, "|" + "---|" * (3 + len(METRICS))]
    for split, folder in reports:
        s = json.loads((folder / "summary.json").read_text())
        paired = s.get("paired") or {}
        if paired.get("reference") != reference:
            raise SystemExit(f"{folder}: not scored with --paired {reference}")
        diffs = paired["differences"]
        for snr in s["meta"]["snrs"]:
            key = f"{snr:+.0f}"  # as reports name SNRs: -5, +0, +5
            for spec in models:
                label, _, alias = spec.partition("=")
                name = label if label in diffs else alias
                if name not in diffs:
                    raise SystemExit(f"{folder}: no paired scores of {label}")
                cells = " | ".join(cell(diffs[name][key][k], n) for k, _, n in METRICS)
                lines.append(f"| {split} | {key} | {label} | {cells} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("reports", nargs="+", help="SPLIT=REPORT_FOLDER")
    p.add_argument("--models", default="kd,pretrain,fusion")
    p.add_argument(
        "--reference",
        default="baseline",
        help="the processor the reports were paired against (their --paired)",
    )
    a = p.parse_args(argv)
    reports = []
    for r in a.reports:
        split, _, folder = r.partition("=")
        reports.append((split, Path(folder)))
    print(table(reports, [m for m in a.models.split(",") if m], a.reference))
    return 0


if __name__ == "__main__":
    sys.exit(main())
