"""``hushlab check-model SPEC``: does a processor keep the streaming contract it declares?

Runs the processor (a shipped name, a checkpoint, a peer, bypass) through its streaming path on a
speech-like test signal and checks, in plain words:

- output: the same length as the input, finite, at a sane level (not silent, not louder);
- latency: the delay measured by cross-correlation against the declared ``latency_samples``;
- causality: changing the input after a point leaves every output sample before it unchanged;
- independent streams: two streams stepped in turn give what each gives alone;
- streaming == offline (a GCRN on the torch backend): the step against the whole-signal forward;
- speed: the real-time factor on one thread (below 1 to stream live).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="shipped name, checkpoint path, peer or bypass")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx", "onnx-int8"])
    p.add_argument("--seconds", type=float, default=4.0, help="test signal length")


@dataclass
class Check:
    name: str
    ok: bool | None  # None: not applicable
    detail: str


def _signal(rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    from app.cmd_bench import speechlike

    x = speechlike(seconds, rate, seed=seed)
    x = x + 0.003 * np.random.default_rng(seed).standard_normal(len(x))
    return (0.3 * x / (np.max(np.abs(x)) + 1e-9)).astype(np.float32)


def _rms(x) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def _lag(x: np.ndarray, y: np.ndarray, max_lag: int) -> tuple[int, float]:
    """The delay of ``y`` behind ``x`` (0..max_lag samples) and its normalised correlation."""
    best, corr = 0, -1.0
    for d in range(max_lag + 1):
        a, b = x[: len(x) - d], y[d:]
        c = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))
        if c > corr:
            best, corr = d, c
    return best, corr


def run_checks(proc, seconds: float = 4.0) -> list[Check]:
    rate, hop, lat = proc.sample_rate, proc.hop, proc.latency_samples
    x = _signal(rate, seconds)
    out: list[Check] = []
    t0 = time.perf_counter()
    y = np.asarray(proc.process(x))
    elapsed = time.perf_counter() - t0
    finite = bool(np.all(np.isfinite(y)))
    out.append(
        Check(
            "output",
            len(y) == len(x) and finite,
            f"{len(y)} samples for {len(x)} in at {rate} Hz" + ("" if finite else "; NaN or inf"),
        )
    )
    ratio_db = 20 * np.log10(_rms(y) / _rms(x)) if finite else float("nan")
    out.append(
        Check(
            "level",
            finite and -40.0 < ratio_db < 6.0,
            f"output {ratio_db:+.1f} dB against the input (speech must neither vanish nor grow)",
        )
    )
    measured, corr = _lag(x, y, lat + 2 * hop + 400) if finite else (-1, 0.0)
    out.append(
        Check(
            "latency",
            abs(measured - lat) <= 2 if corr > 0.5 else None,
            f"declared {lat} samples ({1000 * lat / rate:.1f} ms), measured {measured}"
            f" (correlation {corr:.2f}"
            + (")" if corr > 0.5 else "; too little of the input survives to measure it)"),
        )
    )
    cut = (len(x) // 2) // hop * hop
    x2 = x.copy()
    x2[cut:] = 0.3 * np.random.default_rng(1).standard_normal(len(x) - cut).astype(np.float32)
    y2 = np.asarray(proc.process(x2))
    leak = float(np.max(np.abs(y2[:cut] - y[:cut])))
    out.append(
        Check(
            "causality",
            leak <= 1e-6,
            f"changing the input from {cut} samples on moved earlier output by at most {leak:.2g}",
        )
    )
    other = _signal(rate, seconds, seed=7)
    sa, sb = proc.init_state(), proc.init_state()
    ya, yb = [], []
    for i in range(0, len(x) // hop * hop, hop):
        a, sa = proc.step(x[i : i + hop], sa)
        b, sb = proc.step(other[i : i + hop], sb)
        ya.append(a)
        yb.append(b)
    n = len(ya) * hop
    alone = np.asarray(proc.process(other))[:n]
    mix = max(
        float(np.max(np.abs(np.concatenate(ya) - y[:n]))),
        float(np.max(np.abs(np.concatenate(yb) - alone))),
    )
    out.append(
        Check("independent streams", mix <= 1e-6, f"interleaved vs alone: {mix:.2g} at most")
    )
    out.append(_offline_check(proc, x, y))
    rtf = elapsed / seconds
    out.append(
        Check(
            "speed",
            rtf < 1.0,
            f"RTF {rtf:.3f} on one thread ({1000 * rtf * hop / rate:.2f}"
            f" ms per {1000 * hop / rate:.0f} ms hop)",
        )
    )
    return out


def _offline_check(proc, x, y) -> Check:
    from models.processor import GCRNProcessor

    if not isinstance(proc, GCRNProcessor) or proc.backend != "torch":
        return Check("streaming == offline", None, "only for a GCRN on --backend torch")
    import torch

    from dsp.stft import istft, stft

    m, g = proc.model, proc.model.config.geometry
    # the stream's first frame ends one hop in: win - hop zeros in front (a look-ahead's delay
    # is in the frames themselves, the model's output frame t being clean frame t - lookahead)
    xp = torch.from_numpy(np.concatenate([np.zeros(g.win - g.hop, np.float32), x]))
    spec = stft(xp, g)
    with torch.no_grad():
        est = m(torch.stack([spec.real, spec.imag])[None])[0]
    off = istft(torch.complex(est[0], est[1]), g).numpy()
    n = min(len(off), len(y)) - g.win
    diff = float(np.max(np.abs(off[:n] - y[:n])))
    return Check("streaming == offline", diff <= 1e-4, f"largest difference {diff:.2g}")


def report(spec: str, proc, checks: list[Check]) -> str:
    lines = [
        f"{spec}: {proc.name} ({proc.backend}), {proc.sample_rate} Hz, hop {proc.hop},"
        f" declared latency {proc.latency_samples} samples"
    ]
    for c in checks:
        mark = "n/a " if c.ok is None else ("PASS" if c.ok else "FAIL")
        lines.append(f"  {mark}  {c.name}: {c.detail}")
    failed = [c.name for c in checks if c.ok is False]
    lines.append(
        "verdict: keeps its streaming contract"
        if not failed
        else f"verdict: breaks its contract ({', '.join(failed)})"
    )
    return "\n".join(lines)


def run(args) -> int:
    import torch

    from models.processor import load_processor

    torch.set_num_threads(1)
    proc = load_processor(args.spec, backend=args.backend)
    checks = run_checks(proc, args.seconds)
    print(report(args.spec, proc, checks))
    return 0 if all(c.ok is not False for c in checks) else 1
