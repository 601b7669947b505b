"""Time the exported GCRN step against the export of an earlier revision, in one run.

    python scripts/compare_exports.py [REV] [MODEL]

REV (default ``1cfc453~1``, the last revision that exported ``GCRN.step`` as traced) is read
from git history: its ``models/onnx_step.py`` exports the same weights the old way. Both graphs,
fp32 and int8, run alternately on one thread, 7 x 1,000 steps each; the best round is printed
in ms per step of the ONNX Runtime call, with the node counts.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    import onnx

    from models import onnx_step as new
    from models.processor import load_processor

    warnings.filterwarnings("ignore")
    rev = sys.argv[1] if len(sys.argv) > 1 else "1cfc453~1"
    spec_name = sys.argv[2] if len(sys.argv) > 2 else "baseline"
    src = subprocess.run(
        ["git", "show", f"{rev}:models/onnx_step.py"], cwd=ROOT, capture_output=True, text=True
    )
    if src.returncode:
        print(f"cannot read models/onnx_step.py at {rev}: {src.stderr.strip()}", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp())
    (tmp / "old_onnx_step.py").write_text(src.stdout)
    spec = importlib.util.spec_from_file_location("old_onnx_step", tmp / "old_onnx_step.py")
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    p = load_processor(spec_name, backend="torch")
    d_old, d_new = tmp / "old", tmp / "new"
    graphs = {
        "previous fp32": old.export_onnx(p.model, d_old),
        "previous int8": old.export_onnx_int8(p.model, d_old),
        "one-frame fp32": new.export_onnx(p.model, d_new),
        "one-frame int8": new.export_onnx_int8(p.model, d_new),
    }
    sessions = {k: new._ort_session(v, 1) for k, v in graphs.items()}

    def state(k):
        if k.startswith("previous"):
            return [t.numpy().copy() for t in p.model.init_state(1).tensors()]
        return new.onnx_initial_state(p.model)

    x = (np.random.default_rng(0).standard_normal((1, 2, 1, 257)) * 0.1).astype(np.float32)
    best = dict.fromkeys(sessions, float("inf"))
    for _ in range(7):
        for k, s in sessions.items():
            names = [i.name for i in s.get_inputs()]
            outs = [o.name for o in s.get_outputs()]
            st = state(k)
            t = time.perf_counter()
            for _ in range(1000):
                o = s.run(outs, dict(zip(names, [x, *st], strict=True)))
                st = o[1:]
            best[k] = min(best[k], time.perf_counter() - t)
    for k, v in best.items():
        nodes = len(onnx.load(str(graphs[k])).graph.node)
        print(f"{k}: {v:.3f} ms per step ({nodes} nodes as exported)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
