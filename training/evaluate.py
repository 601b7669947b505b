"""Scoring processors on the stored test mixtures, the way the paper does (PESQ, STOI, SI-SDR at
-5 dB, plus 0 and +5 dB), through each processor's streaming path, latency compensated.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from dsp.errors import UserError
from dsp.metrics import score

log = logging.getLogger(__name__)

METRIC_KEYS = (
    "pesq",
    "stoi",
    "estoi",
    "si_sdr",
    "onset_db",
    "dnsmos_ovrl",
    "dnsmos_sig",
    "dnsmos_bak",
)
LABELS = {
    "pesq": "PESQ-WB",
    "stoi": "STOI",
    "estoi": "eSTOI",
    "si_sdr": "SI-SDR (dB)",
    "onset_db": "onsets (dB)",
    "dnsmos_ovrl": "DNSMOS OVRL",
    "dnsmos_sig": "DNSMOS SIG",
    "dnsmos_bak": "DNSMOS BAK",
}

_WORKER = {}


def _init_worker(specs, backend, root, metrics):
    import torch

    from models.processor import load_processor

    torch.set_num_threads(1)
    _WORKER["procs"] = {
        s: (None if s == "noisy" else load_processor(s, backend=backend)) for s in specs
    }
    _WORKER["root"] = root
    _WORKER["metrics"] = metrics


def _score_one(mix: dict) -> list[dict]:
    from models.processor import enhance_array
    from training import CORPUS_RATE
    from training.data import render_mixture

    noisy, clean = render_mixture(mix, _WORKER["root"])
    rows = []
    for name, proc in _WORKER["procs"].items():
        est = noisy if proc is None else enhance_array(proc, noisy, CORPUS_RATE)
        res = score(clean, est, CORPUS_RATE, delay=0, max_lag=32, metrics=_WORKER["metrics"])
        row = {"processor": name, "id": mix["id"], "snr": mix["snr"], **res.values}
        if res.reasons:
            row["reasons"] = "; ".join(f"{k}: {v}" for k, v in res.reasons.items())
        rows.append(row)
    return rows


def evaluate(
    specs: list[str],
    mixes: list[dict],
    root,
    backend: str = "auto",
    workers: int = 1,
    dnsmos: bool = False,
    progress: bool = True,
) -> list[dict]:
    """Per-mixture rows for every processor spec ('noisy' = the unprocessed input)."""
    from dsp.progress import progress as tqdm

    metrics = ("pesq", "stoi", "estoi", "si_sdr", "onset") + (("dnsmos",) if dnsmos else ())
    rows: list[dict] = []
    init = (specs, backend, str(root) if root else None, metrics)
    if workers <= 1:
        _init_worker(*init)
        it = map(_score_one, mixes)
        for r in tqdm(
            it, total=len(mixes), desc="eval", unit="mix", disable=not progress, dynamic_ncols=True
        ):
            rows += r
    else:
        with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=init) as ex:
            for r in tqdm(
                ex.map(_score_one, mixes, chunksize=4),
                total=len(mixes),
                desc="eval",
                unit="mix",
                disable=not progress,
                dynamic_ncols=True,
            ):
                rows += r
    return rows


def processor_digest(spec: str, proc=None) -> str:
    """What a report remembers of a processor: a model's config-and-weights digest (a model
    retrained at the same path is a different processor), else its name."""
    from models.processor import AttenuationLimit, weights_digest

    if isinstance(proc, AttenuationLimit):
        return f"{processor_digest(spec.rsplit('@lim', 1)[0], proc.inner)}@lim{proc.limit_db:g}"
    model = getattr(proc, "model", None)
    if model is not None:  # the same weights behind a post-filter are another processor
        beta = getattr(proc, "post_filter", 0.0)
        return "weights:" + weights_digest(model) + (f"@pf{beta:g}" if beta else "")
    front = getattr(proc, "resampler", "soxr")
    return spec if "@" in spec or front == "soxr" else f"{spec}@{front}"  # the front end too


# Reports made before backends were recorded: every table the project scored with them used
# ``--backend onnx`` (fp32), so their model scores are reused for fp32 ONNX runs only.
LEGACY_BACKEND = "onnx"


def _same_backend(old_meta: dict, src: str, meta: dict, spec: str) -> bool:
    """Whether an older report scored ``src`` on the backend (and int8 width) this run gives
    ``spec``; scores of one backend are never reused for another."""
    want = meta.get("backends", {}).get(spec)
    if want is None:
        return True
    had = old_meta["backends"].get(src) if "backends" in old_meta else LEGACY_BACKEND
    if want == "onnx-int8":  # 7- and 8-bit weights (see int8_reduce_range) are different models
        return had == want and old_meta.get("int8_weight_bits") == meta.get("int8_weight_bits")
    return had == want


def mixtures_digest(mixes: list[dict]) -> str:
    return hashlib.sha256(json.dumps(mixes, sort_keys=True).encode()).hexdigest()[:16]


def _float_or_none(v: str):
    return None if v in ("", None) else float(v)


def reusable_rows(
    reports: list, specs: list[str], mixes: list[dict], meta: dict, dnsmos: bool
) -> tuple[list[dict], list[str]]:
    """Rows of ``specs`` taken from earlier report folders that scored the same processors
    (same name and, for checkpoints, the same weights - also under another name: a checkpoint
    path before it was shipped) on the same mixtures with the metrics asked for now; returns
    them and the specs still to score."""
    need = {m["id"] for m in mixes}
    rows: list[dict] = []
    done: set[str] = set()
    for folder in map(Path, reports):
        try:
            old_meta = json.loads((folder / "summary.json").read_text())["meta"]
            with open(folder / "scores.csv", newline="") as f:
                old = list(csv.DictReader(f))
        except (OSError, ValueError, KeyError) as exc:
            raise UserError(f"{folder}: not a hushlab eval report ({exc})") from None
        if "mixtures" in old_meta:
            same = old_meta["mixtures"] == meta["mixtures"]
        else:  # reports before mixture digests: the stored mixture list of the same corpus
            same = all(old_meta.get(k) == meta[k] for k in ("split", "snrs", "corpus"))
        if not same:
            raise UserError(f"{folder}: scored other mixtures than this run; cannot reuse it")
        old_digests = old_meta.get("digests", {})
        for spec in specs:
            if spec in done:
                continue
            digest = meta["digests"][spec]
            src = spec if old_digests.get(spec, spec) == digest else None
            if src is None and digest.startswith("weights:"):
                src = next((k for k, d in old_digests.items() if d == digest), None)
            if src is None:
                log.info("%s: not in %s or another file (%s); scoring it", spec, folder, digest)
                continue
            if not _same_backend(old_meta, src, meta, spec):
                log.info("%s: scored on another backend in %s; scoring it", spec, folder)
                continue
            got = {r["id"]: r for r in old if r["processor"] == src and r["id"] in need}
            if len(got) < len(need) or (
                dnsmos and any(r.get("dnsmos_ovrl") in ("", None) for r in got.values())
            ):
                continue
            keys = [k for k in METRIC_KEYS if dnsmos or not k.startswith("dnsmos")]
            for m in mixes:
                r = got[m["id"]]
                row = {"processor": spec, "id": r["id"], "snr": float(r["snr"])}
                row |= {k: _float_or_none(r.get(k)) for k in keys}
                if r.get("reasons"):
                    row["reasons"] = r["reasons"]
                rows.append(row)
            done.add(spec)
            alias = f" (scored there as {src})" if src != spec else ""
            log.info("%s: %d scores reused from %s%s", spec, len(got), folder, alias)
    return rows, [s for s in specs if s not in done]


def summarise(rows: list[dict]) -> dict:
    """processor -> snr -> metric -> {mean, ci95, n}."""
    groups = defaultdict(lambda: defaultdict(list))
    for r in rows:
        for k in METRIC_KEYS:
            v = r.get(k)
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                groups[(r["processor"], r["snr"])][k].append(float(v))
    out: dict = {}
    for (proc, snr), d in groups.items():
        for k, vals in d.items():
            a = np.asarray(vals)
            ci = 1.96 * a.std(ddof=1) / np.sqrt(len(a)) if len(a) > 1 else float("nan")
            out.setdefault(proc, {}).setdefault(f"{snr:+.0f}", {})[k] = {
                "mean": float(a.mean()),
                "ci95": float(ci),
                "n": int(len(a)),
            }
    return out


def paired_differences(rows: list[dict], reference: str, n_boot: int = 2000, seed: int = 0) -> dict:
    """processor -> snr -> metric -> {mean, lo, hi, n}: the mean of (processor - reference) over
    the mixtures both scored, with a 95 % paired-bootstrap interval (mixtures resampled, the
    same draw for both, so what they share - the mixture's difficulty - cancels)."""
    by = defaultdict(dict)
    for r in rows:
        by[(r["processor"], r["snr"])][r["id"]] = r
    rng = np.random.default_rng(seed)
    out: dict = {}
    for (proc, snr), got in sorted(by.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        if proc == reference or (reference, snr) not in by:
            continue
        ref = by[(reference, snr)]
        for k in METRIC_KEYS:
            pairs = [
                (float(got[i][k]), float(ref[i][k]))
                for i in sorted(set(got) & set(ref))
                if got[i].get(k) is not None
                and ref[i].get(k) is not None
                and not math.isnan(float(got[i][k]))
                and not math.isnan(float(ref[i][k]))
            ]
            if len(pairs) < 2:
                continue
            d = np.array([a - b for a, b in pairs])
            boots = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
            lo, hi = np.percentile(boots, [2.5, 97.5])
            out.setdefault(proc, {}).setdefault(f"{snr:+.0f}", {})[k] = {
                "mean": float(d.mean()),
                "lo": float(lo),
                "hi": float(hi),
                "n": len(d),
            }
    return out


def paired_markdown(diffs: dict, reference: str, order: list[str]) -> str:
    """One table per SNR: each processor minus ``reference``, mean [95 % CI]; a difference
    whose interval excludes 0 is marked with *."""
    snrs = sorted({s for p in diffs.values() for s in p}, key=float)
    metrics = [k for k in METRIC_KEYS if any(k in diffs[p][s] for p in diffs for s in diffs[p])]
    lines = []
    for snr in snrs:
        lines += [
            f"**Paired difference against {reference}, input SNR {snr} dB** (mean [95 % "
            "paired-bootstrap CI]; * = the interval excludes 0)",
            "",
            "| processor | " + " | ".join(LABELS[m] for m in metrics) + " |",
            "|---|" + "---|" * len(metrics),
        ]
        for p in order:
            if p not in diffs or snr not in diffs[p]:
                continue
            cells = []
            for m in metrics:
                v = diffs[p][snr].get(m)
                if v is None:
                    cells.append("-")
                    continue
                prec = 2 if m in ("si_sdr", "onset_db") else 3
                star = "*" if v["lo"] > 0 or v["hi"] < 0 else ""
                cells.append(
                    f"{v['mean']:+.{prec}f}{star} [{v['lo']:+.{prec}f}, {v['hi']:+.{prec}f}]"
                )
            lines.append(f"| {p} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def markdown_table(summary: dict, order: list[str]) -> str:
    snrs = sorted({s for p in summary.values() for s in p}, key=float)
    metrics = [
        k for k in METRIC_KEYS if any(k in summary[p][s] for p in summary for s in summary[p])
    ]
    lines = []
    for snr in snrs:
        n = max(
            (
                summary[p][snr][m]["n"]
                for p in summary
                if snr in summary[p]
                for m in summary[p][snr]
            ),
            default=0,
        )
        lines += [
            f"**Input SNR {snr} dB** ({n} mixtures; mean ± 95 % CI)",
            "",
            "| processor | " + " | ".join(LABELS[m] for m in metrics) + " |",
            "|---|" + "---|" * len(metrics),
        ]
        for p in order:
            if p not in summary or snr not in summary[p]:
                continue
            cells = []
            for m in metrics:
                v = summary[p][snr].get(m)
                if v is None:
                    cells.append("-")
                else:
                    prec = 2 if m in ("si_sdr", "onset_db") else 3
                    cells.append(f"{v['mean']:.{prec}f} ± {v['ci95']:.{prec}f}")
            lines.append(f"| {p} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def write_reports(
    rows: list[dict], out: Path, order: list[str], meta: dict, paired: str | None = None
) -> dict:
    """scores.csv, summary.json and summary.md; with ``paired`` (a processor's name) also the
    paired differences of every other processor against it (paired.md, in summary.json)."""
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(rows)
    extra = {}
    if paired:
        diffs = paired_differences(rows, paired)
        extra["paired"] = {"reference": paired, "differences": diffs}
        (out / "paired.md").write_text(paired_markdown(diffs, paired, order))
    keys = ["processor", "id", "snr", *METRIC_KEYS, "reasons"]
    with open(out / "scores.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    (out / "summary.json").write_text(
        json.dumps({"meta": meta, "summary": summary, **extra}, indent=2)
    )
    (out / "summary.md").write_text(markdown_table(summary, order))
    return summary
