"""The GCRN streaming step as an ONNX Runtime graph: export of the one-frame step of
``models/step_graph.py`` (state tensors as explicit inputs and outputs, opset 17, cached by a
digest of config and weights), its int8 variant, and a one-thread session."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np
import torch

# config keys added after models were shipped, at the value that computes what those models
# compute: left out of the digest, so the digests of earlier models (their int8 checks, the
# eval reports that name them) stay what they were
DIGEST_NEUTRAL = {"lookahead": 0}


log = logging.getLogger(__name__)


def weights_digest(model) -> str:
    """A digest of a model's config and weights (the ONNX cache key; eval reports keep it)."""
    h = hashlib.sha1()
    cfg = {k: v for k, v in model.config.to_dict().items() if DIGEST_NEUTRAL.get(k, ...) != v}
    h.update(repr(cfg).encode())
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


@functools.cache  # the installed versions do not change within a process
def toolchain_tag() -> str:
    """Eight hex digits naming the exporter and runtime versions (torch, onnx, onnxruntime): a
    cached graph is reused only by the versions that made it."""
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for dist in ("torch", "onnx", "onnxruntime"):
        try:
            parts.append(f"{dist}={version(dist)}")
        except PackageNotFoundError:
            parts.append(f"{dist}=-")
    return hashlib.sha1(";".join(parts).encode()).hexdigest()[:8]


def onnx_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hushlab" / "onnx"


_EXPORT_LOCK = threading.Lock()


def onnx_initial_state(model) -> list[np.ndarray]:
    """The exported step's state inputs for a new stream (zeros, in the graph's layout)."""
    from models.step_graph import LeanStep

    return [t.numpy().copy() for t in LeanStep.state_shapes_of(model)]


def export_cached(module, args: tuple, path: Path, names_in, names_out) -> Path:
    """Export ``module`` at ``args`` to ``path`` (ONNX opset 17) unless it exists: under one
    lock, through a temp file of its own (two processes exporting on a cold cache never share
    one), renamed into place when complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _EXPORT_LOCK:
        if path.exists():
            return path
        fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp.onnx", dir=path.parent)
        os.close(fd)
        try:
            with torch.no_grad(), warnings.catch_warnings():
                # the exporter's advice on LSTM batch sizes and traced shape checks: the steps
                # are exported for batch 1 with their states as inputs, as the advice asks
                warnings.filterwarnings("ignore", message=".*batch_size other than 1.*")
                warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
                torch.onnx.export(
                    module,
                    args,
                    tmp,
                    input_names=list(names_in),
                    output_names=list(names_out),
                    opset_version=17,
                    dynamo=False,
                )
            os.replace(tmp, path)
        finally:  # a failed export leaves nothing behind
            Path(tmp).unlink(missing_ok=True)
    return path


class _QuantiserQuiet(logging.Filter):
    """Drops the records ONNX Runtime's quantiser logs on the root logger (its advice), and
    nothing else: the process's own logging goes on at its own level meanwhile."""

    def filter(self, record: logging.LogRecord) -> bool:
        return f"onnxruntime{os.sep}quantization" not in record.pathname


def export_onnx(model, cache_dir=None) -> Path:
    """Export the one-frame step (``models/step_graph.LeanStep``) to ONNX (opset 17), cached by
    a digest of config and weights."""
    from models.step_graph import LeanStep

    cache = Path(cache_dir) if cache_dir else onnx_cache_dir()
    path = cache / f"gcrn-lean-{weights_digest(model)}-{toolchain_tag()}.onnx"
    if path.exists():
        return path
    was_training = model.training
    wrapper = LeanStep(model)
    model.train(was_training)
    st = wrapper.init_state()
    frame = torch.zeros(1, 2, 1, model.config.n_fft // 2 + 1)
    extra = [torch.zeros(1, 1, model.config.ssl_dim)] if wrapper.fusion else []
    names_in = ["frame"] + ["ssl"] * bool(extra) + [f"s{i}" for i in range(len(st))]
    names_out = ["out"] + [f"s{i}_out" for i in range(len(st))]
    return export_cached(wrapper, (frame, *extra, *st), path, names_in, names_out)


def int8_reduce_range(cpuinfo: str | None = None) -> bool:
    """Whether to quantise weights to 7 bits. ONNX Runtime's int8 kernels on x86 CPUs without
    VNNI (AVX2 alone) multiply u8 activations by s8 weights with an instruction that saturates
    pairs of products at 16 bits; 7-bit weights stay clear of it (measured on the demo mixture
    with the shipped baseline on an AVX2-only CPU: int8 agrees with fp32 to 38.8 dB instead of
    28.1). With VNNI (or off x86) the full 8 bits are kept. ``cpuinfo``: the text of
    /proc/cpuinfo (read when not given; where there is none, 8 bits off x86 and 7 on it)."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return False
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return True
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
            break
    return not flags & {"avx512_vnni", "avx_vnni", "amx_int8"}


def export_onnx_int8(model, cache_dir=None) -> Path:
    """The fp32 step with its weights quantised to int8 (ONNX Runtime dynamic quantisation of
    the LSTM, MatMul and Gemm weights, per output channel; activations stay float and are
    quantised per call; 7-bit weights on CPUs without VNNI, see ``int8_reduce_range``). At batch
    1 the step is bound by reading weights: int8 reads a quarter of the bytes. Cached beside the
    fp32 graph."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32 = export_onnx(model, cache_dir)
    reduce_range = int8_reduce_range()
    path = fp32.with_name(fp32.stem + ("-int8r.onnx" if reduce_range else "-int8.onnx"))
    with _EXPORT_LOCK:
        if path.exists():
            return path
        fd, tmp_name = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp.onnx", dir=path.parent)
        os.close(fd)
        root, quiet = logging.getLogger(), _QuantiserQuiet()
        root.addFilter(quiet)
        try:
            quantize_dynamic(
                str(fp32),
                tmp_name,
                op_types_to_quantize=["MatMul", "Gemm", "LSTM"],
                per_channel=True,
                weight_type=QuantType.QInt8,
                reduce_range=reduce_range,
            )
            os.replace(tmp_name, path)
        finally:
            root.removeFilter(quiet)
            Path(tmp_name).unlink(missing_ok=True)
    return path


INT8_CHECK_FILE = "int8_check.json"  # written by training/int8_check.py beside a model


def int8_passed(checkpoint, digest: str) -> bool:
    """Whether the model at ``checkpoint``, with these weights (``weights:<digest>``), passed
    the int8 accuracy check on the validation split."""
    import json

    path = Path(checkpoint).parent / INT8_CHECK_FILE
    if not path.exists():
        return False
    try:
        res = json.loads(path.read_text())
    except ValueError:
        return False
    return bool(res.get("passed")) and res.get("digest") == digest


def _has_onnxruntime() -> bool:
    """Whether ONNX Runtime can be used. Not installed: False, quietly (PyTorch serves). Installed
    but broken (a library that does not load): False, with a warning that names the error, once
    - a silent fall-back would make every model several times slower without a word."""
    global _ORT_BROKEN
    try:
        import onnxruntime  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name == "onnxruntime":
            return False
        why = exc
    except Exception as exc:  # e.g. ImportError: libonnxruntime.so: cannot open shared object
        why = exc
    else:
        return True
    if _ORT_BROKEN is None:
        _ORT_BROKEN = f"{type(why).__name__}: {why}"
        log.warning(
            "ONNX Runtime is installed but does not load (%s); models run on PyTorch, several"
            " times slower. Reinstall it: .venv/bin/pip install -r requirements.lock",
            _ORT_BROKEN,
        )
    return False


_ORT_BROKEN: str | None = None


def _ort_session(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
