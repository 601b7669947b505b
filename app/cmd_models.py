"""``hushlab models``: the processors Hushlab can run here, with their geometry and card figures."""

from __future__ import annotations

import argparse
import json

import numpy as np


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx", "onnx-int8"])


def _params(path) -> int:
    """Parameters stored in a safetensors file (from its header; nothing is loaded)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        return sum(int(np.prod(f.get_slice(k).get_shape())) for k in f.keys())


def listed_names() -> tuple[list[str], list[str]]:
    """(processors, teachers): every name the listing below shows, in its order."""
    from models.checkpoint import shipped_models
    from models.processor import PEERS
    from models.teacher import shipped_teachers

    return [*shipped_models(), "bypass", *PEERS], list(shipped_teachers())


def run(args) -> int:
    from dsp.stft import DEFAULT_GEOMETRY
    from models.checkpoint import read_metadata, shipped_models
    from models.gcrn import GCRNConfig
    from models.processor import PEERS, Bypass, ProcessorUnavailable
    from models.teacher import shipped_teachers

    print("| name | kind | rate (Hz) | hop | latency (ms) | params | validation |")
    print("|---|---|---|---|---|---|---|")
    for name, path in shipped_models().items():
        meta = read_metadata(path)
        cfg = meta["config"]
        m = meta.get("metrics", {})
        val = f"PESQ {m['valid_pesq']:.2f}, SI-SDR {m['valid_si_sdr']:.1f} dB" if m else "-"
        g = GCRNConfig.from_dict(cfg)
        lat = 1000 * (g.win + g.lookahead * g.hop) / g.sample_rate
        print(
            f"| {name} | shipped GCRN | {g.sample_rate} | {g.hop} | "
            f"{lat:.0f} | {_params(path) / 1e6:.2f} M | {val} |"
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
    g = DEFAULT_GEOMETRY  # a teacher's frames are the STFT's (models/teacher.py checks it)
    for name, folder in shipped_teachers().items():
        cfg = json.loads((folder / "config.json").read_text())
        kind = "teacher, streaming" if cfg.get("hushlab_causal") else "teacher"
        print(
            f"| {name} | {kind} (Wav2Vec2, {cfg['num_hidden_layers']} x {cfg['hidden_size']}) |"
            f" {g.sample_rate} | {g.hop} | - | {_params(folder / 'model.safetensors') / 1e6:.2f} M"
            " | - |"
        )
    print()
    print("Teachers embed speech for kd, pretrain and fusion (fusion runs one live);")
    print("'hushlab analyze --teacher NAME' looks at their embeddings.")
    print("Also: a checkpoint path; NAME@limN limits any processor's suppression to N dB;")
    print("MODEL@pfBETA adds the post-filter to a GCRN (before any @lim), e.g. baseline@pf0.02.")
    return 0
