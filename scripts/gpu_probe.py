#!/usr/bin/env python3
"""How fast the GCRN trains on this machine, by batch size and precision: a probe to size a
time-boxed GPU run before spending the box on it.

    python scripts/gpu_probe.py [--batches 32,64,128,256] [--steps 20] [--seconds 4] [--corpus DIR]

Runs the baseline's training step (``BaselineHook.compute_loss``: STFT, forward, enhancement
loss, backward, AdamW) on random audio - the cost does not depend on the data - and prints
steps/s and hours of audio per minute for each batch size, in fp32 (TF32 matmuls, as
``hushlab train`` runs on CUDA) and with bf16 autocast. The data loader is not part of it;
``--corpus`` times it apart: how long one CPU core takes to mix one training example (the
baseline-real recipe's mixing), so that the loader's cores can be sized to the step rate.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.registry import build_model  # noqa: E402
from training.losses import BaselineHook  # noqa: E402


def probe(batch: int, steps: int, seconds: float, device, bf16: bool) -> float:
    torch.manual_seed(0)
    model = build_model("gcrn", {"compress": 0.3}).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    hook = BaselineHook(w_under=1.0)
    n = int(seconds * 16000)
    clean = 0.1 * torch.randn(batch, n, device=device)
    noisy = clean + 0.1 * torch.randn(batch, n, device=device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss, _ = hook.compute_loss(model, (noisy, clean))
        opt.zero_grad(set_to_none=True)
        loss.float().backward()
        opt.step()

    for _ in range(3):  # warm-up: cuDNN plans, allocator
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - t)


def loader_ms(corpus: str, seconds: float, n: int = 64) -> float:
    """Milliseconds one core takes to mix one training example from ``corpus``."""
    from training.data import DataConfig, TrainMixtures

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = DataConfig(corpus=corpus, seconds=seconds, real_speech_share=0.6)
        ds = TrainMixtures(cfg, n + 1, seed=0)
        ds[0]  # file index, caches
        t = time.perf_counter()
        for i in range(1, n + 1):
            ds[i]
        return (time.perf_counter() - t) / n * 1000
    finally:
        torch.set_num_threads(threads)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", default="32,64,128,256")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--corpus", default="", help="also time the data loader on this corpus")
    a = p.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        print(torch.cuda.get_device_name(), "torch", torch.__version__)
    else:
        print("CPU", torch.__version__, torch.get_num_threads(), "threads")
    print("| batch | precision | steps/s | audio h per min |")
    print("|---|---|---|---|")
    for b in (int(x) for x in a.batches.split(",")):
        for bf16 in (False, True):
            try:
                sps = probe(b, a.steps, a.seconds, device, bf16)
            except Exception as exc:  # e.g. out of memory, or no bf16 kernel for an op
                print(f"| {b} | {'bf16' if bf16 else 'fp32'} | failed: {type(exc).__name__} | |")
                continue
            hours = sps * 60 * b * a.seconds / 3600
            print(f"| {b} | {'bf16' if bf16 else 'fp32'} | {sps:.2f} | {hours:.3g} |", flush=True)
    if a.corpus:
        ms = loader_ms(a.corpus, a.seconds)
        print(f"loader: {ms:.1f} ms per {a.seconds:g} s training example on one core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
