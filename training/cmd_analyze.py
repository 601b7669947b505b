"""``hushlab analyze``: the paper's embedding analysis (noisy vs clean Wav2Vec2 embeddings)."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--teacher", default=None, help="folder, shipped name or hub id (default: shipped teacher)"
    )
    p.add_argument("--layer", type=int, default=None, help="layer of the tables (default: last)")
    p.add_argument("--corpus", default="", help="corpus folder (default: the bundled corpus)")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"])
    p.add_argument("-n", "--utterances", type=int, default=24)
    p.add_argument("--snrs", default="-5,0,5,10", help="input SNRs in dB")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/analysis", help="folder for the table and plots")


def run(args) -> int:
    from dsp.errors import UserError
    from models.teacher import Teacher
    from training.analyze import AnalysisConfig, analyze

    try:
        snrs = [float(x) for x in args.snrs.split(",") if x.strip()]
    except ValueError:
        raise UserError(
            f"--snrs: expected numbers separated by commas, got '{args.snrs}'"
        ) from None
    cfg = AnalysisConfig(
        teacher=args.teacher,
        corpus=args.corpus,
        split=args.split,
        utterances=args.utterances,
        snrs=snrs,
        seed=args.seed,
        out=args.out,
    )
    teacher = Teacher(args.teacher, layer=args.layer)
    analyze(cfg, teacher)
    print((__import__("pathlib").Path(args.out) / "analysis.md").read_text())
    print(f"plots: {args.out}/analysis.png, {args.out}/timeline.png")
    return 0
