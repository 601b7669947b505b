"""``hushlab models``: the processors Hushlab can run here, with their geometry and card figures."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx", "onnx-int8"])


def run(args) -> int:
    from models.checkpoint import read_metadata, shipped_models
    from models.processor import PEERS, Bypass, ProcessorUnavailable

    print("| name | kind | rate (Hz) | hop | latency (ms) | params | validation |")
    print("|---|---|---|---|---|---|---|")
    for name, path in shipped_models().items():
        meta = read_metadata(path)
        cfg = meta["config"]
        m = meta.get("metrics", {})
        val = f"PESQ {m['valid_pesq']:.2f}, SI-SDR {m['valid_si_sdr']:.1f} dB" if m else "-"
        lat = 1000 * cfg.get("win", 400) / cfg.get("sample_rate", 16000)
        print(
            f"| {name} | shipped GCRN | {cfg.get('sample_rate')} | {cfg.get('hop')} | "
            f"{lat:.0f} | - | {val} |"
        )
    b = Bypass()
    print(f"| bypass | dry signal | {b.sample_rate} | {b.hop} | delayed to match | 0 | - |")
    for name, cls in PEERS.items():
        try:
            p = cls()
            print(
                f"| {name} | peer | {p.sample_rate} | {p.hop} | "
                f"{p.algorithmic_latency_ms:.0f} | {p.params / 1e6:.2f} M | - |"
            )
        except ProcessorUnavailable as exc:
            print(f"| {name} | peer (not installed) | - | - | - | - | {exc} |")
    print()
    print("Also: a checkpoint path; NAME@limN limits any processor's suppression to N dB;")
    print("MODEL@pfBETA adds the post-filter to a GCRN (before any @lim), e.g. baseline@pf0.02.")
    return 0
