"""``hushlab bench``: per-hop cost, real-time factor and latency of every processor, one thread.

Each processor runs its full per-hop path (for the GCRN: streaming STFT, model step, iSTFT and the
Python glue) over the same audio at its own rate, hop by hop, timed with perf_counter.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default="baseline",
        help="GCRNs to time: shipped names or paths, comma separated (e.g. baseline,kd)",
    )
    p.add_argument("--seconds", type=float, default=30.0, help="audio length (default 30 s)")
    p.add_argument("--backends", default="torch,onnx,onnx-int8", help="GCRN backends to time")
    p.add_argument("--no-peers", action="store_true", help="skip the peers")
    p.add_argument(
        "--input", default="", help="an audio file to time on (default: a speech-like test signal)"
    )
    p.add_argument("--json", default="", metavar="PATH", help="also write the results as JSON")


def speechlike(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    """A voiced, syllable-rate modulated harmonic signal plus noise (deterministic)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 130 + 50 * np.sin(2 * np.pi * 0.3 * t) + 20 * np.sin(2 * np.pi * 1.7 * t)
    ph = 2 * np.pi * np.cumsum(f0) / sr
    voiced = sum(np.sin(k * ph) / k for k in range(1, 40))
    env = np.clip(np.sin(2 * np.pi * 4 * t) + 0.3, 0, None)
    x = 0.05 * voiced * env + 0.01 * rng.standard_normal(len(t))
    return x.astype(np.float32)


def time_processor(proc, x: np.ndarray) -> dict:
    state = proc.init_state()
    hop = proc.hop
    n = len(x) // hop
    # warm-up (first calls allocate, JIT, fault pages in)
    for i in range(min(20, n)):
        _, state = proc.step(x[i * hop : (i + 1) * hop], state)
    state = proc.init_state()
    times = np.empty(n)
    for i in range(n):
        blk = x[i * hop : (i + 1) * hop]
        t0 = time.perf_counter()
        _, state = proc.step(blk, state)
        times[i] = time.perf_counter() - t0
    hop_ms = 1000 * hop / proc.sample_rate
    return {
        "name": proc.name,
        "backend": proc.backend,
        "rtf": float(times.sum() / (n * hop / proc.sample_rate)),
        "ms_per_hop_p50": float(np.percentile(times, 50) * 1000),
        "ms_per_hop_p99": float(np.percentile(times, 99) * 1000),
        "hop_ms": hop_ms,
        "params": int(proc.params),
        "megabytes": round(float(proc.megabytes), 2),
        "latency_ms": round(proc.algorithmic_latency_ms, 2),
    }


def machine() -> dict:
    import torch

    cpu = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads_used": 1,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }


def run(args) -> int:
    from pathlib import Path

    import torch

    from dsp.audio_io import load_audio
    from dsp.errors import UserError
    from dsp.resample import resample
    from models.checkpoint import load_checkpoint
    from models.processor import PEERS, GCRNProcessor, ProcessorUnavailable

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.input:
        x16, _ = load_audio(args.input, 16000)
    else:
        x16 = speechlike(args.seconds, 16000)
    results = []
    for spec in [m.strip() for m in args.model.split(",") if m.strip()]:
        model, meta = load_checkpoint(spec)
        name = Path(spec).stem if spec.endswith(".safetensors") else spec
        for be in [b.strip() for b in args.backends.split(",") if b.strip()]:
            try:
                proc = GCRNProcessor(model, name=name, backend=be, meta=meta)
            except UserError as exc:  # e.g. a fusion model on an ONNX backend
                print(f"{name} ({be}): skipped ({exc})")
                continue
            results.append(time_processor(proc, x16))
    if not args.no_peers:
        for name, cls in PEERS.items():
            try:
                proc = cls()
            except ProcessorUnavailable as exc:
                print(f"{name}: skipped ({exc})")
                continue
            results.append(time_processor(proc, resample(x16, 16000, proc.sample_rate)))
    print(f"{len(x16) / 16000:.0f} s of audio, one thread, {machine()['cpu']}")
    print(
        "| processor | backend | RTF | ms/hop p50 | ms/hop p99 | hop (ms) | params | MB "
        "| latency (ms) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['name']} | {r['backend']} | {r['rtf']:.4f} | {r['ms_per_hop_p50']:.3f} | "
            f"{r['ms_per_hop_p99']:.3f} | {r['hop_ms']:.0f} | {r['params'] / 1e6:.2f} M | "
            f"{r['megabytes']:.1f} | {r['latency_ms']:.0f} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"processors": results, "machine": machine(), "audio_seconds": len(x16) / 16000},
                f,
                indent=2,
            )
    return 0
