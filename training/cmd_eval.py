"""``hushlab eval``: score processors on the stored test mixtures (PESQ, STOI, eSTOI, SI-SDR,
optionally DNSMOS), per input SNR, with 95 % confidence intervals; Markdown, CSV and JSON out."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "processors",
        nargs="*",
        default=["noisy", "baseline"],
        help="noisy, bypass, rnnoise, deepfilternet3, shipped model names or "
        "checkpoint paths (default: noisy baseline)",
    )
    p.add_argument("--peers", action="store_true", help="add every installed peer")
    p.add_argument("--corpus", default="", help="corpus folder (default: the bundled corpus)")
    p.add_argument("--clean-dir", default="", help="use a folder of clean speech instead")
    p.add_argument("--noise-dir", default="", help="... with a folder of noise")
    p.add_argument(
        "--split",
        default="test",
        choices=["test", "valid", "real-test", "real-valid", "real-voices"],
        help="test (default), valid, or the real-recordings splits real-test / real-valid /"
        " real-voices (real-valid's speakers under interfering talkers)",
    )
    p.add_argument(
        "-n",
        "--mixtures",
        type=int,
        default=500,
        help="speech/noise pairs, each scored at every SNR (default 500)",
    )
    p.add_argument("--snrs", default="-5,0,5", help="input SNRs in dB (default -5,0,5)")
    p.add_argument("--limit", type=int, default=0, help="score only the first N pairs")
    p.add_argument("--dnsmos", action="store_true", help="also DNSMOS (needs the metrics extra)")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx", "onnx-int8"])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--paired",
        default="",
        metavar="PROCESSOR",
        help="also the paired difference of every processor against this one, with 95 %% "
        "paired-bootstrap intervals (paired.md)",
    )
    p.add_argument("--out", default="runs/eval", help="report folder (default runs/eval)")
    p.add_argument(
        "--reuse",
        action="append",
        default=[],
        metavar="REPORT",
        help="take the scores of processors that an earlier report folder scored on the same "
        "mixtures (models only if their weights are unchanged); repeatable",
    )


def _command(args) -> str:
    """The command line that makes this report again (a model card quotes it)."""
    import shlex

    parts = ["hushlab", "eval", *args.processors]
    for flag, value, default in (
        ("--peers", args.peers, False),
        ("--corpus", args.corpus, None),
        ("--clean-dir", args.clean_dir, None),
        ("--noise-dir", args.noise_dir, None),
        ("--split", args.split, None),
        ("-n", args.mixtures, None),
        ("--snrs", args.snrs, "-5,0,5"),
        ("--limit", args.limit, None),
        ("--dnsmos", args.dnsmos, False),
        ("--backend", args.backend, "auto"),
        ("--paired", args.paired, None),
        ("--out", args.out, None),
    ):
        if value in (default, None, "", 0):
            continue
        if value is True:
            parts.append(flag)
        elif flag == "--snrs":  # "-5,0,5" would read as an option of its own
            parts.append(f"--snrs={value}")
        else:
            parts += [flag, str(value)]
    return shlex.join(parts)


def run(args) -> int:
    from dsp.errors import UserError
    from models.onnx_step import int8_reduce_range
    from models.processor import available_peers, load_processor
    from training.data import DataConfig, load_or_make_mixtures
    from training.evaluate import (
        evaluate,
        markdown_table,
        mixtures_digest,
        processor_digest,
        reusable_rows,
        write_reports,
    )

    specs = list(dict.fromkeys(args.processors + (available_peers() if args.peers else [])))
    if args.paired and args.paired not in specs:
        raise UserError(f"--paired {args.paired}: not among the processors to score")
    # fail fast, before any audio is rendered; the digests (and the backends the models run on)
    # let later runs reuse these scores
    digests, backends = {}, {}
    for s in specs:
        proc = None if s == "noisy" else load_processor(s, backend=args.backend)
        digests[s] = processor_digest(s, proc)
        if digests[s].startswith("weights:"):  # a model (limited or not), not the input or a peer
            backends[s] = proc.backend
    try:
        snrs = tuple(float(s) for s in args.snrs.split(","))
    except ValueError:
        raise UserError(f"--snrs must be numbers separated by commas, got '{args.snrs}'") from None
    cfg = DataConfig(corpus=args.corpus, clean_dir=args.clean_dir, noise_dir=args.noise_dir)
    mixes, root = load_or_make_mixtures(cfg, args.split, args.mixtures, snrs)
    if args.limit:
        keep = {m["id"].split("_")[0] for m in mixes[: args.limit * len(snrs)]}
        mixes = [m for m in mixes if m["id"].split("_")[0] in keep]
    t0 = time.time()
    meta = {
        "processors": specs,
        "split": args.split,
        "pairs": len(mixes) // len(snrs),
        "snrs": list(snrs),
        "corpus": str(root),
        "mixtures": mixtures_digest(mixes),
        "digests": digests,
        "backends": backends,
    }
    meta["command"] = _command(args)
    if "onnx-int8" in backends.values():
        meta["int8_weight_bits"] = 7 if int8_reduce_range() else 8
    rows, todo = reusable_rows(args.reuse, specs, mixes, meta, args.dnsmos)
    if args.reuse:
        print(f"reused: {', '.join(s for s in specs if s not in todo) or 'nothing'}")
    if todo:
        rows += evaluate(
            todo, mixes, root, backend=args.backend, workers=args.workers, dnsmos=args.dnsmos
        )
    meta["scored"] = todo
    meta["reused_from"] = list(args.reuse)
    meta["seconds"] = round(time.time() - t0, 1)
    summary = write_reports(rows, Path(args.out), specs, meta, paired=args.paired or None)
    print(markdown_table(summary, specs))
    if args.paired:
        print((Path(args.out) / "paired.md").read_text())
    print(f"reports: {args.out}/summary.md, scores.csv, summary.json")
    return 0
