"""The ``hushlab`` command: one entry point, subcommands.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and ``run(args)``;
modules are imported only when their subcommand runs, so ``hushlab --help`` is instant.
"""

from __future__ import annotations

import argparse
import faulthandler
import importlib
import importlib.util
import logging
import sys

from dsp.errors import UserError

# name -> (module, one-line help). Order is the order shown by --help.
COMMANDS: dict[str, tuple[str, str]] = {}


def _register(name: str, module: str, help_text: str) -> None:
    COMMANDS[name] = (module, help_text)


_register("app", "app.cmd_app", "the Qt desktop app: live spectrograms and A/B switching")
_register("stream", "app.cmd_stream", "headless real-time engine: file/mic in, file/speaker out")
_register("enhance", "app.cmd_enhance", "enhance audio files or folders offline")
_register("corpus", "training.cmd_corpus", "build, summarise or slice the bundled training corpus")
_register("train", "training.cmd_train", "train a model from a TOML config")
_register("eval", "training.cmd_eval", "score processors on the test mixtures (PESQ/STOI/SI-SDR)")
_register(
    "compare",
    "training.compare",
    "paired differences from eval reports: pooled, per report, by noise",
)
_register("analyze", "training.cmd_analyze", "Wav2Vec2 embedding analysis (noisy vs clean)")
_register("train-teacher", "training.cmd_teacher", "pre-train a compact Wav2Vec2 teacher")
_register("bench", "app.cmd_bench", "per-hop cost, real-time factor and latency vs peers")
_register("models", "app.cmd_models", "list the processors Hushlab can run")
_register("check-model", "app.cmd_check_model", "check a processor against its streaming contract")


def _available() -> dict[str, tuple[str, str]]:
    """Only subcommands whose module exists are offered."""
    out = {}
    for name, (mod, help_text) in COMMANDS.items():
        if importlib.util.find_spec(mod) is not None:
            out[name] = (mod, help_text)
    return out


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    parser = argparse.ArgumentParser(
        prog="hushlab",
        description="Hushlab: live listening tests of on-device speech enhancement.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    avail = _available()
    for name, (mod, help_text) in avail.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(mod).add_arguments(p)
    return parser, avail


def _print_stacks_on_crash() -> None:
    """A crash in native code (Qt, ONNX Runtime, PortAudio) prints every thread's Python stack
    to stderr, where there is a real one (not when a test captures it in memory)."""
    try:
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return
    faulthandler.enable()


def main(argv: list[str] | None = None) -> int:
    parser, avail = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.command:
        parser.print_help()
        return 2
    _print_stacks_on_crash()
    module = importlib.import_module(avail[args.command][0])
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except UserError as exc:
        print(f"hushlab {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
