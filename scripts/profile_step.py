"""Where the time of a GCRN's streaming step goes, on one thread.

    python scripts/profile_step.py [MODEL]

Splits the whole per-hop path (as ``hushlab bench`` times it) into the streaming STFT and
iSTFT, the ONNX Runtime call and the Python glue, then profiles the ONNX graph by operator type
(ONNX Runtime's own profiler, whose per-node overhead inflates the totals; compare shares),
counts the graph's nodes as exported and as ONNX Runtime runs it after its optimisations, and
estimates the floor: the bytes of weights a hop reads divided by the rate at which one thread
streams weights through a matrix-vector product of the same size on this machine.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    import onnx
    import onnxruntime as ort
    import torch

    from models.onnx_step import export_onnx, export_onnx_int8
    from models.processor import load_processor

    torch.set_num_threads(1)
    spec = sys.argv[1] if len(sys.argv) > 1 else "baseline"
    p = load_processor(spec)
    n = 1500
    x = (np.random.default_rng(0).standard_normal(p.hop * n) * 0.05).astype(np.float32)
    hops = [x[i * p.hop : (i + 1) * p.hop] for i in range(n)]

    def per_hop(fn) -> float:
        t = time.perf_counter()
        for h in hops:
            fn(h)
        return (time.perf_counter() - t) / n * 1000

    st = p.init_state()
    whole = per_hop(lambda h: p.step(h, st))
    st2 = p.init_state()
    dsp = per_hop(lambda h: st2.istft.push(st2.stft.push(h)))
    st3 = p.init_state()

    def run(_h):
        outs = p._session.run(
            p._out_names, dict(zip(p._in_names, [st3.scratch, *st3.model], strict=True))
        )
        st3.model = outs[1:]

    onnx_ms = per_hop(run)
    print(
        f"{spec} ({p.backend}), per {1000 * p.hop / p.sample_rate:.0f} ms hop: whole path "
        f"{whole:.3f} ms = STFT+iSTFT {dsp:.3f} + ONNX Runtime {onnx_ms:.3f} + glue "
        f"{whole - dsp - onnx_ms:.3f}"
    )
    path = export_onnx_int8(p.model) if p.backend == "onnx-int8" else export_onnx(p.model)
    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(tmp, "prof")
        so.optimized_model_filepath = os.path.join(tmp, "optimised.onnx")
        so.log_severity_level = 3
        s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        names = [i.name for i in s.get_inputs()]
        st4 = p.init_state()
        for _ in range(300):
            outs = s.run(None, dict(zip(names, [st4.scratch, *st4.model], strict=True)))
            st4.model = outs[1:]
        events = json.load(open(s.end_profiling()))
        by_op, nodes = defaultdict(float), 0
        for e in events:
            if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                by_op[e["args"]["op_name"]] += e["dur"] / 300
        total = sum(by_op.values())
        top = sorted(by_op.items(), key=lambda kv: -kv[1])[:8]
        print(
            "share of the profiled step by operator: "
            + ", ".join(f"{k} {100 * v / total:.0f} %" for k, v in top)
        )
        nodes = len(onnx.load(str(path)).graph.node)
        opt = len(onnx.load(so.optimized_model_filepath).graph.node)
        print(f"graph: {nodes} nodes as exported, {opt} after ONNX Runtime's optimisations")
    weight_bytes = sum(
        np.prod(t.dims) * (1 if t.data_type in (2, 3) else 4)  # (u)int8 or float
        for t in onnx.load(str(path)).graph.initializer
    )
    print(
        f"weights read per hop: {weight_bytes / 1e6:.2f} MB; one thread streams weights at"
        f" {gbps(weight_bytes):.1f} GB/s (matrix-vector product of that size), so the floor is"
        f" {weight_bytes / gbps(weight_bytes) / 1e6:.3f} ms per hop"
        f" (RTF {weight_bytes / gbps(weight_bytes) / 1e6 / (1000 * p.hop / p.sample_rate):.4f})"
    )
    return 0


def gbps(nbytes: int, reps: int = 300) -> float:
    """GB/s at which one thread reads a float32 matrix of ``nbytes`` in matrix-vector products
    (the weights of a batch-1 step are read once per call, like this matrix)."""
    import torch

    cols = 448
    a = torch.randn(max(1, int(nbytes) // (4 * cols)), cols)
    v = torch.randn(cols)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            a.mv(v)
        best = min(best, (time.perf_counter() - t) / reps)
    return a.numel() * 4 / best / 1e9


if __name__ == "__main__":
    raise SystemExit(main())
