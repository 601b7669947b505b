"""One interface for everything the engine can play: GCRNs, bypass, RNNoise, DeepFilterNet3.

A processor declares its geometry - ``sample_rate`` (Hz), ``hop`` (samples per step),
``latency_samples`` (how far its output stream trails its input stream) - and runs
``step(block [hop] float32, state) -> (out [hop] float32, state)``. ``init_state()`` returns a
fresh, independent state, so one processor can serve several streams and an A/B switch is just two
(processor, state) pairs.

The interface and bypass live in ``models/stream_base.py``, the ONNX step in
``models/onnx_step.py``, the peers in ``models/peers.py``; here: the GCRN processor (with a
fusion model's streaming teacher), loading by name, and offline enhancement through the
streaming path.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dsp.errors import UserError
from dsp.postfilter import post_filter
from dsp.stft import StreamingIstft, StreamingStft
from models.onnx_step import (  # noqa: F401  (re-exported)
    _has_onnxruntime,
    _ort_session,
    export_onnx,
    export_onnx_int8,
    int8_passed,
    onnx_cache_dir,
    onnx_initial_state,
    weights_digest,
)
from models.peers import (  # noqa: F401  (re-exported)
    PEERS,
    DeepFilterNet3Processor,
    RNNoiseProcessor,
    available_peers,
)
from models.stream_base import (  # noqa: F401
    AttenuationLimit,
    Bypass,
    Processor,
    ProcessorUnavailable,
)

log = logging.getLogger(__name__)
BACKENDS = ("torch", "onnx", "onnx-int8")


@dataclass
class _StreamState:
    stft: StreamingStft
    istft: StreamingIstft
    model: object  # GCRNState (torch) or list[np.ndarray] (onnx)
    scratch: np.ndarray  # [1, 2, 1, F]: the frame fed to the step (F from the model's geometry)
    teacher: object = None  # CausalState of a fusion model's streaming teacher


class GCRNProcessor(Processor):
    """A GCRN over audio hops: streaming STFT -> model step -> streaming iSTFT.

    backend ``torch`` is the reference (PyTorch, oneDNN off for single frames); ``onnx`` runs an
    ONNX Runtime export of the same step (built from the weights and cached on first use);
    ``auto`` picks onnx when onnxruntime is importable.

    A fusion model runs with its streaming teacher (``models/causal_teacher.py``): each hop
    goes to the teacher's step and to the STFT, and the teacher's normalised embedding of the
    frame enters the GCRN step. On the ONNX backends the teacher's step is an ONNX graph too
    (``models/teacher_step.py``, fp32) and the GCRN graph takes the embedding as an input. Both
    frames end at the same sample, so the latency is the GCRN's. The teacher is found from the
    checkpoint's record (its folder or shipped name) and must have the recorded digest.
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
        self.post_filter = 0.0  # beta of dsp.postfilter (0: off); '@pfBETA' in a spec sets it
        if backend == "auto":
            backend = "onnx" if _has_onnxruntime() else "torch"
        if backend not in BACKENDS:
            raise UserError(f"unknown backend '{backend}' (use auto, {', '.join(BACKENDS)})")
        self.backend = backend
        self._session = None
        if backend in ("onnx", "onnx-int8"):
            quantised = backend == "onnx-int8"
            path = (export_onnx_int8 if quantised else export_onnx)(model, cache_dir)
            self._session = _ort_session(path, threads)
            if quantised:  # what a hop reads: the int8 graph (and an fp32 teacher)
                self.megabytes = path.stat().st_size / 1e6
                if self.teacher is not None:
                    self.megabytes += sum(p.numel() for p in self.teacher.model.parameters()) * 4e-6
            self._in_names = [i.name for i in self._session.get_inputs()]
            self._out_names = [o.name for o in self._session.get_outputs()]
        self._teacher_session = None
        if self._session is not None and self.teacher is not None:
            from models.teacher_step import export_teacher_step

            tpath = export_teacher_step(
                self.teacher, Path(cache_dir) if cache_dir else onnx_cache_dir()
            )
            self._teacher_session = _ort_session(tpath, threads)
            self._teacher_in = [i.name for i in self._teacher_session.get_inputs()]

    def init_state(self) -> _StreamState:
        if self.backend != "torch":
            st = onnx_initial_state(self.model)
        else:
            st = self.model.init_state(1)
        return _StreamState(
            StreamingStft(self.geom),
            StreamingIstft(self.geom),
            st,
            np.zeros((1, 2, 1, self.geom.n_bins), np.float32),
            self._teacher_state(),
        )

    def _teacher_state(self):
        if self.teacher is None:
            return None
        if self._teacher_session is not None:
            from models.teacher_step import teacher_initial_state

            return teacher_initial_state(self.teacher)
        return self.teacher.model.init_state(1)

    def step_spectrum(
        self, spec: np.ndarray, state: _StreamState, ssl: torch.Tensor | None = None
    ) -> np.ndarray:
        """One complex frame [F] -> enhanced complex frame [F] (updates state.model); ``ssl``
        [1, 1, D] is a fusion model's teacher embedding of the same frame."""
        x = state.scratch
        x[0, 0, 0] = spec.real
        x[0, 1, 0] = spec.imag
        if self.backend != "torch":
            inputs = [x, *state.model] if ssl is None else [x, np.asarray(ssl), *state.model]
            feed = dict(zip(self._in_names, inputs, strict=True))
            outs = self._session.run(self._out_names, feed)
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
        if self._teacher_session is not None:
            feed = dict(zip(self._teacher_in, [block[None], *state.teacher], strict=True))
            ssl, *state.teacher = self._teacher_session.run(None, feed)  # [1, 1, D]
        elif self.teacher is not None:
            t = self.teacher
            with torch.no_grad():
                hidden, state.teacher = t.model.step(torch.from_numpy(block)[None], state.teacher)
            ssl = t.normalise(hidden[t.layer], t.layer)[:, None]  # [1, 1, D]
        y = self.step_spectrum(spec, state, ssl)
        if self.post_filter:
            y = post_filter(spec, y, self.post_filter)
        return state.istft.push(y), state


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
    try:
        teacher = Teacher(spec or rec.get("teacher"), layer=rec.get("layer"))
    except UserError as exc:
        raise UserError(
            f"{name}: needs its teacher '{rec.get('teacher')}' (digest {rec['digest'][:16]}),"
            f" which cannot be loaded here: {exc}"
        ) from None
    if not teacher.matches(rec["digest"]):
        raise UserError(f"{name}: trained with another teacher: {teacher.mismatch(rec)}")
    if not teacher.causal:
        raise UserError(
            f"{name}: its teacher '{teacher.name}' is not causal, so it cannot stream; train"
            " fusion with a teacher from 'hushlab train-teacher --causal'"
        )
    return teacher


def load_processor(
    spec: str,
    backend: str = "auto",
    bypass_like: Processor | None = None,
) -> Processor:
    """'bypass', 'rnnoise', 'deepfilternet3', a shipped model name, or a checkpoint path;
    '@limN' after any of them limits its suppression to N dB (:class:`AttenuationLimit`);
    '@pfBETA' after a model adds the post-filter of :mod:`dsp.postfilter` (before any '@lim')."""
    limited = re.fullmatch(r"(.+)@lim([0-9.]+)", spec)
    if limited:
        try:
            limit = float(limited[2])
        except ValueError:
            raise UserError(f"{spec}: '@lim' takes a number of dB, e.g. @lim12") from None
        return AttenuationLimit(load_processor(limited[1], backend, bypass_like), limit)
    filtered = re.fullmatch(r"(.+)@pf([^@]*)", spec)
    if filtered:
        return _with_post_filter(load_processor(filtered[1], backend), filtered[2], spec)
    if spec == "bypass":
        if bypass_like is not None:
            return Bypass(bypass_like.sample_rate, bypass_like.hop, bypass_like.latency_samples)
        return Bypass()
    base, _, front = spec.partition("@")  # 'deepfilternet3@polyphase': another front end
    if base in PEERS:
        proc = PEERS[base]()
        if front:
            from dsp.resample import METHODS

            if front not in METHODS:
                raise UserError(f"{spec}: unknown front end '{front}' (use {', '.join(METHODS)})")
            proc.resampler = front
            proc.name = spec
        return proc
    from models.checkpoint import load_checkpoint

    model, meta = load_checkpoint(spec)
    if backend == "auto" and _has_onnxruntime():
        from models.checkpoint import resolve_model_path

        # int8 weights when this model passed the accuracy check (training/int8_check.py)
        if int8_passed(resolve_model_path(spec), "weights:" + weights_digest(model)):
            backend = "onnx-int8"
    name = spec if "/" not in spec and not spec.endswith(".safetensors") else Path(spec).stem
    return GCRNProcessor(model, name=name, backend=backend, meta=meta)


def _with_post_filter(proc: Processor, beta: str, spec: str) -> Processor:
    try:
        b = float(beta)
    except ValueError:
        b = -1.0
    if not 0 <= b <= 10:
        raise UserError(f"{spec}: '@pf' takes the post-filter's beta, 0 to 10, e.g. @pf0.02")
    if not isinstance(proc, GCRNProcessor):
        raise UserError(
            f"{spec}: the post-filter works on a model's own spectra, so it follows a model"
            " (a shipped name or a checkpoint), before any '@lim'"
        )
    proc.post_filter = b
    proc.name = f"{proc.name}@pf{b:g}"
    return proc


def enhance_array(proc: Processor, x: np.ndarray, sr: int) -> np.ndarray:
    """Run a whole mono signal at rate ``sr`` through ``proc``'s streaming path and return the
    result at ``sr``, same length, time-aligned with the input (latency compensated)."""
    from dsp.resample import resample

    x = np.asarray(x, np.float32)
    if x.ndim != 1:
        raise ValueError(f"enhance_array takes mono audio, got shape {x.shape}")
    method = getattr(proc, "resampler", "soxr")  # the front end that serves the processor
    xr = resample(x, sr, proc.sample_rate, method=method)
    n = len(xr)
    y = proc.process(np.concatenate([xr, np.zeros(proc.latency_samples + proc.hop, np.float32)]))
    y = y[proc.latency_samples : proc.latency_samples + n]
    y = resample(y, proc.sample_rate, sr, method=method)
    if len(y) < len(x):
        y = np.concatenate([y, np.zeros(len(x) - len(y), np.float32)])
    return y[: len(x)]
