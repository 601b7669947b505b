"""``hushlab train --config training/configs/<name>.toml [KEY=VALUE ...]``"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="TOML training config")
    p.add_argument("--out", default=None, help="output folder (overrides the config)")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides, for example steps=1000 data.snr_min=-10",
    )


def run(args) -> int:
    from training.train import TrainConfig, train

    cfg = TrainConfig.from_toml(args.config, args.overrides)
    if args.out:
        cfg.out = args.out
    out = train(cfg)
    print(f"trained: {out}")
    return 0
