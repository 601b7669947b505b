"""``hushlab train-teacher``: pre-train the compact Wav2Vec2 teacher, or compute the
normalisation statistics of any teacher.

    hushlab train-teacher --config training/configs/teacher.toml [KEY=VALUE ...]
    hushlab train-teacher --stats-only --teacher facebook/wav2vec2-base
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="training/configs/teacher.toml", help="TOML config")
    p.add_argument("--out", default=None, help="run folder (overrides the config)")
    p.add_argument(
        "--stats-only",
        action="store_true",
        help="only compute per-layer normalisation statistics of --teacher over the corpus",
    )
    p.add_argument(
        "--teacher", default=None, help="with --stats-only: a folder, shipped name or hub id"
    )
    p.add_argument("--clips", type=int, default=400, help="with --stats-only: training clips")
    p.add_argument("--corpus", default="", help="corpus folder (default: the bundled corpus)")
    p.add_argument(
        "--causal",
        action="store_true",
        help="pre-train a streaming teacher (causal attention; what live fusion needs)",
    )
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")


def run(args) -> int:
    if args.stats_only:
        from models.teacher import Teacher
        from training.teacher import corpus_stats

        res = corpus_stats(Teacher(args.teacher), args.corpus, args.clips)
        print(f"statistics over {res['frames']} frames: {res['path']}")
        return 0
    from training.teacher import TeacherConfig, plot_history, train_teacher

    cfg = TeacherConfig.from_toml(args.config, args.overrides)
    if args.out:
        cfg.out = args.out
    if args.corpus:
        cfg.corpus = args.corpus
    if args.causal:
        cfg.causal = True
    dest = train_teacher(cfg)
    from pathlib import Path

    png = plot_history(Path(cfg.out), Path(cfg.out) / "pretraining.png")
    print(f"teacher: {dest}\ntraining curves: {png}")
    return 0
