"""``hushlab corpus build``: build the bundled training corpus (resumable, seeded)."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = sub.add_parser("build", help="build (or resume building) the corpus")
    b.add_argument("--out", default="", help="corpus folder (default: ~/.cache/hushlab/corpus)")
    b.add_argument("--hours", type=float, default=6.0, help="hours of clean speech (default 6)")
    b.add_argument(
        "--noise-hours", type=float, default=0.0, help="hours of noise (default: max(1, hours / 4))"
    )
    b.add_argument("--seed", type=int, default=1234)
    b.add_argument("--workers", type=int, default=0, help="processes (default: CPU count)")
    b.add_argument("--no-piper", action="store_true", help="skip the Piper neural voice")
    b.add_argument("--no-espeak", action="store_true", help="skip espeak-ng voices")
    b.add_argument("--no-asterisk", action="store_true", help="skip the recorded prompts")
    b.add_argument("--no-real-noise", action="store_true", help="synthetic noise only")
    s = sub.add_parser("summary", help="print the summary of a built corpus")
    s.add_argument("--out", default="")
    c = sub.add_parser(
        "subset",
        help="copy a portable slice (train speech/noise, validation files; never test)",
    )
    c.add_argument("dest", help="new, empty corpus folder")
    c.add_argument("--out", default="", help="source corpus (default: ~/.cache/hushlab/corpus)")
    c.add_argument("--speech-hours", type=float, default=0.5)
    c.add_argument("--noise-hours", type=float, default=0.15)
    c.add_argument("--valid-pairs", type=int, default=40)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument(
        "--max-file-seconds", type=float, default=0.0, help="cut longer training files (0: keep)"
    )
    c.add_argument(
        "--bits",
        type=int,
        default=16,
        help="keep this many significant bits of training files: smaller FLACs (9: about 2.7x)",
    )


def run(args) -> int:
    import os

    from training.corpus import CorpusConfig, build, default_corpus_dir, summary_markdown

    if args.action == "summary":
        root = args.out or default_corpus_dir()
        path = os.path.join(root, "summary.json")
        if not os.path.exists(path):
            from dsp.errors import UserError

            raise UserError(f"no built corpus at {root}")
        print(summary_markdown(json.load(open(path))))
        return 0
    if args.action == "subset":
        from training.corpus import subset

        summary = subset(
            args.out or default_corpus_dir(),
            args.dest,
            args.speech_hours,
            args.noise_hours,
            valid_pairs=args.valid_pairs,
            seed=args.seed,
            max_file_seconds=args.max_file_seconds,
            bits=args.bits,
        )
        print(summary_markdown(summary))
        print(f"corpus subset: {args.dest}")
        return 0
    cfg = CorpusConfig(
        out=args.out,
        hours=args.hours,
        noise_hours=args.noise_hours,
        seed=args.seed,
        use_piper=not args.no_piper,
        use_espeak=not args.no_espeak,
        use_asterisk=not args.no_asterisk,
        use_real_noise=not args.no_real_noise,
    )
    if args.workers:
        cfg.workers = args.workers
    root = build(cfg)
    print((root / "summary.md").read_text())
    print(f"corpus: {root}")
    return 0
