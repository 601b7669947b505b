"""The STFT of Hushlab: one definition, used offline (batched torch, differentiable) and streaming.

Geometry (PAPER.md): 16 kHz, a 400-sample (25 ms) square-root periodic Tukey window (alpha 0.4),
320-sample (20 ms) hop, FFT size 512 -> 257 bins. Framing is causal, without centre padding:
frame t covers samples [t * hop, t * hop + win), and a signal of N samples has
floor((N - win) / hop) + 1 frames - the same count as Wav2Vec2's convolutional front end.

The squared window overlap-adds to exactly 1 at this hop, so analysis followed by synthesis with
the same window is perfect reconstruction wherever frames fully overlap (every sample but the first
and last ``win - hop``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class StftGeometry:
    """STFT geometry; every consumer reads it from here (or from a model) instead of literals."""

    sample_rate: int = 16000  # Hz
    win: int = 400  # samples
    hop: int = 320  # samples
    n_fft: int = 512
    tukey_alpha: float = 0.4

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def overlap(self) -> int:
        """Samples shared by consecutive frames (win - hop)."""
        return self.win - self.hop

    def n_frames(self, n_samples: int) -> int:
        """Number of causal frames of a signal of ``n_samples`` samples (0 if shorter than win)."""
        if n_samples < self.win:
            return 0
        return (n_samples - self.win) // self.hop + 1

    def n_samples(self, n_frames: int) -> int:
        """Signal length (samples) covered by ``n_frames`` frames."""
        return 0 if n_frames <= 0 else (n_frames - 1) * self.hop + self.win


DEFAULT_GEOMETRY = StftGeometry()


def sqrt_tukey_window(length: int, alpha: float) -> np.ndarray:
    """Square root of a periodic Tukey window (``sym=False``), float64, shape [length].

    The periodic Tukey window is the symmetric one of length+1 without its last sample; its square
    root, used for both analysis and synthesis, makes the squared window sum to one at hop
    ``length * (1 - alpha / 2)``.
    """
    n = length + 1
    x = np.arange(n) / (n - 1)
    w = np.ones(n)
    edge = alpha / 2
    lo = x < edge
    hi = x > 1 - edge
    w[lo] = 0.5 * (1 + np.cos(np.pi * (2 * x[lo] / alpha - 1)))
    w[hi] = 0.5 * (1 + np.cos(np.pi * (2 * x[hi] / alpha - 2 / alpha + 1)))
    return np.sqrt(w[:length])


def window(geom: StftGeometry = DEFAULT_GEOMETRY) -> np.ndarray:
    """The analysis = synthesis window of ``geom`` (float64, [win])."""
    return sqrt_tukey_window(geom.win, geom.tukey_alpha)


def _torch_window(geom: StftGeometry, device, dtype) -> torch.Tensor:
    return torch.as_tensor(window(geom), device=device, dtype=dtype)


# -- offline (torch, batched, differentiable) -------------------------------------------------


def stft(x: torch.Tensor, geom: StftGeometry = DEFAULT_GEOMETRY) -> torch.Tensor:
    """Causal STFT of ``x`` [..., N] samples -> complex [..., T, F] with T = geom.n_frames(N)."""
    if x.shape[-1] < geom.win:
        raise ValueError(f"signal of {x.shape[-1]} samples is shorter than one window ({geom.win})")
    frames = x.unfold(-1, geom.win, geom.hop)  # [..., T, win]
    return frames_to_spectrum(frames, geom)


def frames_to_spectrum(frames: torch.Tensor, geom: StftGeometry = DEFAULT_GEOMETRY) -> torch.Tensor:
    """Windowed rFFT of time frames [..., win] -> complex [..., F]: the one analysis step."""
    w = _torch_window(geom, frames.device, frames.dtype)
    return torch.fft.rfft(frames * w, n=geom.n_fft)


def spectrum_to_frames(spec: torch.Tensor, geom: StftGeometry = DEFAULT_GEOMETRY) -> torch.Tensor:
    """Inverse rFFT + synthesis window: complex [..., F] -> windowed time frames [..., win]."""
    frames = torch.fft.irfft(spec, n=geom.n_fft)[..., : geom.win]
    return frames * _torch_window(geom, frames.device, frames.dtype)


def istft(spec: torch.Tensor, geom: StftGeometry = DEFAULT_GEOMETRY) -> torch.Tensor:
    """Overlap-add synthesis: complex [..., T, F] -> [..., (T - 1) * hop + win] samples.

    Exact inverse of :func:`stft` on samples covered by two frames (the interior); the first and
    last ``win - hop`` samples carry a single window taper.
    """
    frames = spectrum_to_frames(spec, geom)  # [..., T, win]
    lead = frames.shape[:-2]
    t = frames.shape[-2]
    n = geom.n_samples(t)
    flat = frames.reshape(-1, t, geom.win).transpose(1, 2)  # [B, win, T]
    out = torch.nn.functional.fold(
        flat, output_size=(1, n), kernel_size=(1, geom.win), stride=(1, geom.hop)
    )  # [B, 1, 1, n]
    return out.reshape(*lead, n)


def to_ri(spec: torch.Tensor) -> torch.Tensor:
    """Complex [B, T, F] -> real/imag channels [B, 2, T, F] (the GCRN's input layout)."""
    return torch.stack((spec.real, spec.imag), dim=1)


def from_ri(ri: torch.Tensor) -> torch.Tensor:
    """Real/imag channels [B, 2, T, F] -> complex [B, T, F]."""
    return torch.complex(ri[:, 0], ri[:, 1])


# -- streaming (numpy, one hop at a time) ------------------------------------------------------


class StreamingStft:
    """One hop of samples in, one spectrum frame out.

    Holds the last ``win`` samples (initially zeros). Fed the hops of a signal x, frame k equals
    the offline STFT frame k of ``concat(zeros(win - hop), x)``: the stream's frames lag the
    samples by ``win - hop``.
    """

    def __init__(self, geom: StftGeometry = DEFAULT_GEOMETRY):
        self.geom = geom
        self._win = window(geom).astype(np.float32)
        self._buf = np.zeros(geom.win, dtype=np.float32)
        self._padded = np.zeros(geom.n_fft, dtype=np.float32)

    def reset(self) -> None:
        self._buf[:] = 0.0

    def push(self, hop: np.ndarray) -> np.ndarray:
        """hop: float32 [hop] samples -> complex64 [F] spectrum of the current window."""
        g = self.geom
        self._buf[: g.overlap] = self._buf[g.hop :]
        self._buf[g.overlap :] = hop
        np.multiply(self._buf, self._win, out=self._padded[: g.win])
        return np.fft.rfft(self._padded).astype(np.complex64)


class StreamingIstft:
    """One spectrum frame in, one hop of finished samples out (overlap-add with a carry)."""

    def __init__(self, geom: StftGeometry = DEFAULT_GEOMETRY):
        self.geom = geom
        self._win = window(geom).astype(np.float32)
        self._carry = np.zeros(geom.overlap, dtype=np.float32)

    def reset(self) -> None:
        self._carry[:] = 0.0

    def push(self, spec: np.ndarray) -> np.ndarray:
        """spec: complex [F] -> float32 [hop] samples completed by this frame."""
        g = self.geom
        frame = np.fft.irfft(spec, n=g.n_fft)[: g.win].astype(np.float32) * self._win
        out = frame[: g.hop].copy()
        out[: g.overlap] += self._carry
        self._carry[:] = frame[g.hop :]
        return out
