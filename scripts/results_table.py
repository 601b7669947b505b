"""The README's results table from one ``hushlab eval`` report and one ``hushlab bench --json``.

    python scripts/results_table.py runs/eval-real-test runs/bench.json

One row per processor of the report (the input first): PESQ-WB, STOI and SI-SDR at each input SNR
as ``mean ±95 % CI``, and, from the bench, the algorithmic latency and the real-time factor of
the backend a processor runs on by default (the report's own backend for a model).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

METRICS = (("pesq", "PESQ-WB", 2), ("stoi", "STOI", 2), ("si_sdr", "SI-SDR (dB)", 1))


def _cell(summary: dict, snrs: list[str], key: str, prec: int) -> str:
    parts = []
    for snr in snrs:
        v = summary.get(snr, {}).get(key)
        parts.append("-" if v is None else f"{v['mean']:.{prec}f}±{v['ci95']:.{prec}f}")
    return " / ".join(parts)


def table(report: dict, bench: dict) -> str:
    meta, summary = report["meta"], report["summary"]
    snrs = sorted({s for p in summary.values() for s in p}, key=float)
    timing = {}
    for r in bench["processors"]:
        timing.setdefault(r["name"], {})[r["backend"]] = r
    head = " | ".join(f"{label} at {' / '.join(snrs)} dB" for _, label, _ in METRICS)
    lines = [
        f"| processor | latency (ms) | RTF | {head} |",
        "|---|---|---|" + "---|" * len(METRICS),
    ]
    for proc in meta["processors"]:
        if proc not in summary:
            continue
        t = timing.get(proc, {})
        backend = meta.get("backends", {}).get(proc)
        r = t.get(backend) if backend else next(iter(t.values()), None)
        lat = f"{r['latency_ms']:.0f}" if r else "-"
        rtf = f"{r['rtf']:.3f}" if r else "-"
        cells = " | ".join(_cell(summary[proc], snrs, k, p) for k, _, p in METRICS)
        lines.append(f"| {proc} | {lat} | {rtf} | {cells} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("report", help="a hushlab eval report folder")
    p.add_argument("bench", help="the JSON of hushlab bench --json")
    a = p.parse_args(argv)
    report = json.loads((Path(a.report) / "summary.json").read_text())
    bench = json.loads(Path(a.bench).read_text())
    print(table(report, bench))
    print()
    print(
        f"{report['meta']['split']}: {report['meta']['pairs']} pairs per SNR; RTF on one thread,"
        f" {bench['machine'].get('cpu', 'this CPU')}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
