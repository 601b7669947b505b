"""The enhancement loss shared by every variant, and the per-variant loss hooks.

Enhancement loss (one for all variants, PAPER.md): MSE between power-law compressed (c = 0.3)
complex spectra plus MSE between compressed magnitudes. An optional negative SI-SDR term on the
resynthesised waveform (weight ``w_sisdr``) is off by default: measured at initialisation, its
gradient was 50 times that of the spectral terms at a weight of 0.005, and a run with it still
had a validation SI-SDR of -45 dB after 250 steps. SSL variants add their own term on top, with
a weight recorded in the checkpoint's training config.
"""

from __future__ import annotations

import functools
import math

import torch

from dsp.stft import StftGeometry, istft, stft


def compress_ri(ri: torch.Tensor, c: float = 0.3, eps: float = 1e-8) -> torch.Tensor:
    """[B, 2, T, F] -> same, with magnitudes raised to ``c`` (phase kept)."""
    mag2 = ri[:, 0] ** 2 + ri[:, 1] ** 2
    return ri * ((mag2 + eps) ** ((c - 1) / 2)).unsqueeze(1)


def neg_si_sdr_each(est: torch.Tensor, ref: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """-SI-SDR (dB) of every item [B]; est, ref [B, N]."""
    est = est - est.mean(-1, keepdim=True)
    ref = ref - ref.mean(-1, keepdim=True)
    a = (est * ref).sum(-1, keepdim=True) / ((ref**2).sum(-1, keepdim=True) + eps)
    target = a * ref
    noise = est - target
    ratio = (target**2).sum(-1) / ((noise**2).sum(-1) + eps)
    return -10 * torch.log10(ratio + eps)


def neg_si_sdr(est: torch.Tensor, ref: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean over the batch of -SI-SDR (dB); est, ref [B, N]."""
    return neg_si_sdr_each(est, ref, eps).mean()


def snr_ramp_weights(
    noisy: torch.Tensor, clean: torch.Tensor, lo_db: float, hi_db: float
) -> torch.Tensor:
    """Per-mixture weights [B] of the SI-SDR term from each mixture's input SNR (dB, clean
    against noisy - clean; waveforms [B, N]): 0 at or below ``lo_db``, 1 at or above ``hi_db``,
    linear between. The look-ahead rounds (docs/baseline-history.md, rounds twenty to
    twenty-three) gained -5 dB PESQ-WB without the term and lost +5 dB SI-SDR; with it, the
    reverse: this asks for the waveform where the input is clean enough to keep it."""
    if not hi_db > lo_db:
        raise ValueError(f"the SI-SDR term's SNR ramp needs lo < hi (dB), not {lo_db}, {hi_db}")
    p_clean = (clean.double() ** 2).sum(-1)
    p_noise = ((noisy.double() - clean.double()) ** 2).sum(-1)
    snr = 10 * torch.log10((p_clean + 1e-12) / (p_noise + 1e-12))
    return ((snr - lo_db) / (hi_db - lo_db)).clamp(0.0, 1.0).to(noisy.dtype)


def spectra(noisy: torch.Tensor, clean: torch.Tensor, geom: StftGeometry):
    """Waveforms [B, N] -> real/imag spectra [B, 2, T, F] of both."""
    ns, cs = stft(noisy, geom), stft(clean, geom)
    return torch.stack([ns.real, ns.imag], 1), torch.stack([cs.real, cs.imag], 1)


def target_of(model, clean: torch.Tensor) -> torch.Tensor:
    """The clean waveforms [B, N] (or [N]) a model is trained to output: ``clean`` itself, or,
    for a model that looks ahead (``config.lookahead`` frames), ``clean`` delayed by as many hops
    (zeros first, the same length): its output frame t estimates clean frame t - lookahead."""
    cfg = getattr(_unwrap(model), "config", None)
    d = getattr(cfg, "lookahead", 0) * getattr(cfg, "hop", 0)
    if not d:
        return clean
    pad = torch.zeros(*clean.shape[:-1], d, dtype=clean.dtype, device=clean.device)
    return torch.cat([pad, clean[..., : clean.shape[-1] - d]], dim=-1)


def mr_stft_loss(
    est: torch.Tensor, ref: torch.Tensor, resolutions=((256, 64), (512, 128), (1024, 256))
) -> torch.Tensor:
    """Multi-resolution STFT loss on waveforms [B, N] (Yamamoto et al. 2020): per resolution,
    spectral convergence plus the mean absolute difference of log magnitudes; mean over
    resolutions. Short frames see onsets, long ones harmonics - the two things a model that blurs
    speech in bursts of noise gets wrong."""
    total = est.new_zeros(())
    for n_fft, hop in resolutions:
        win = torch.hann_window(n_fft, device=est.device, dtype=est.dtype)
        mag_est, mag_ref = (
            torch.stft(x, n_fft, hop, window=win, return_complex=True).abs() for x in (est, ref)
        )
        sc = torch.linalg.norm(mag_ref - mag_est, dim=(-2, -1)) / (
            torch.linalg.norm(mag_ref, dim=(-2, -1)) + 1e-7
        )
        lm = torch.mean(
            torch.abs(torch.log(mag_est + 1e-5) - torch.log(mag_ref + 1e-5)), dim=(-2, -1)
        )
        total = total + torch.mean(sc + lm)
    return total / len(resolutions)


def _bark_bands(n_fft: int, sr: int, n_bands: int = 49, f_lo: float = 100.0):
    """[F, B] 0/1 matrix summing FFT bins into ``n_bands`` bands equally wide on the Bark scale
    (Traunmueller's formula) from ``f_lo`` to Nyquist, empty bands dropped, and the bands' centre
    frequencies and widths in Bark."""
    f = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * sr / n_fft
    z = 13 * torch.atan(0.00076 * f) + 3.5 * torch.atan((f / 7500) ** 2)
    z_lo = 13 * math.atan(0.00076 * f_lo) + 3.5 * math.atan((f_lo / 7500) ** 2)
    edges = torch.linspace(z_lo, float(z[-1]) + 1e-6, n_bands + 1, dtype=torch.float64)
    idx = torch.bucketize(z, edges) - 1  # -1: below f_lo
    keep = idx >= 0
    m = torch.zeros(len(f), n_bands, dtype=torch.float64)
    m[keep.nonzero().squeeze(1), idx[keep]] = 1.0
    used = m.sum(0) > 0
    m = m[:, used]
    centre = (m * f[:, None]).sum(0) / m.sum(0)
    width = (edges[1:] - edges[:-1])[used]
    return m, centre, width


@functools.lru_cache(maxsize=8)
def _perceptual_tables(n_fft: int, sr: int, device: torch.device):
    """Bark matrix, hearing threshold per band, band weights and speech-band mask, made once per
    geometry and device (not copied to the device at every step)."""
    m, centre, width = _bark_bands(n_fft, sr)
    # absolute threshold of hearing (Terhardt), dB SPL, against a speech band at 70 dB SPL
    k = centre / 1000
    ath = 3.64 * k**-0.8 - 6.5 * torch.exp(-0.6 * (k - 3.3) ** 2) + 1e-3 * k**4
    p0 = 10 ** ((ath - 70) / 10)
    f = torch.arange(n_fft // 2 + 1) * sr / n_fft
    passband = (f >= 300) & (f <= 3400)
    tables = (m, p0, width / width.sum(), passband)
    return tuple(t.to(device=device, dtype=torch.float32) for t in tables)


def perceptual_loss(
    est: torch.Tensor, ref: torch.Tensor, sr: int = 16000, n_fft: int = 512
) -> torch.Tensor:
    """A differentiable loudness-disturbance loss modelled on PESQ (ITU-T P.862), on waveforms
    [B, N]; 0 on a match, in units of PESQ's MOS drop up to scale. Like PESQ it normalises each
    signal's level (speech band 300-3400 Hz), sums 32 ms power spectra (16 ms hop) into Bark
    bands, scales each frame of the estimate towards the reference's frame power (within
    3e-4 to 5, so slow gain changes cost little), maps both to loudness (Zwicker's law, exponent
    0.23, over the threshold of hearing), ignores loudness differences within a dead zone of a
    quarter of the smaller loudness, and charges a symmetric disturbance (band-width-weighted
    RMS) and an asymmetric one that counts only what the estimate *adds* (more than 3x the
    reference's power, factor capped at 12) - the residual noise and artefacts that PESQ
    punishes most at low input SNR. Frames are pooled as in PESQ (L6 over 20-frame stretches,
    then L2) and the two disturbances weighted 0.1 and 0.0309 as in its MOS mapping.
    Simplified against P.862: no time alignment (the model is aligned), no per-band transfer
    compensation, no smoothing of the frame gains (tests/training/test_train.py checks that it
    orders noisy estimates as PESQ does)."""
    m, p0, w, passband = _perceptual_tables(n_fft, sr, est.device)
    win = torch.hann_window(n_fft, device=est.device, dtype=est.dtype)

    def bark_power(x):
        p = torch.stft(x, n_fft, n_fft // 2, window=win, return_complex=True).abs() ** 2
        level = (p * passband[:, None]).sum(1).mean(-1)  # [B]: speech-band power per frame
        p = p / (level[:, None, None] + 1e-10)
        return torch.einsum("bft,fk->btk", p, m)  # [B, T, K]

    pe, pr = bark_power(est), bark_power(ref)
    off = 1e-2  # about 20 dB under a speech frame: quiet frames keep their own level
    gain = ((pe.sum(-1) + off) / (pr.sum(-1) + off)).clamp(3e-4, 5.0)
    pe = pe / gain[..., None]
    gamma = 0.23

    def loudness(p):
        return (p0 / 0.5) ** gamma * torch.relu((0.5 + 0.5 * p / p0) ** gamma - 1)

    le, lr_ = loudness(pe), loudness(pr)
    d = le - lr_
    d = torch.sign(d) * torch.relu(d.abs() - 0.25 * torch.minimum(le, lr_))
    d_sym = torch.sqrt((w * d**2).sum(-1) + 1e-10)  # [B, T]
    c = 1e-2  # about 10 dB under a speech band: what is added to near-silence counts in full
    a = ((pe + c) / (pr + c)) ** 1.2
    a = torch.where(a < 3, torch.zeros_like(a), a.clamp(max=12.0))
    d_asym = (w * d.abs() * a).sum(-1)
    frame = 0.1 * d_sym + 0.0309 * d_asym  # [B, T]
    t = max(20, frame.shape[-1] // 20 * 20)
    frame = torch.nn.functional.pad(frame, (0, max(0, t - frame.shape[-1])))[:, :t]
    split = (frame.reshape(frame.shape[0], -1, 20) ** 6).mean(-1).clamp_min(1e-30) ** (1 / 6)
    return torch.sqrt((split**2).mean(-1) + 1e-12).mean()


LOSS_WEIGHTS = ("w_sisdr", "w_under", "w_mrstft", "w_pesq")
# the SI-SDR term's input-SNR ramp (dB; off while lo == hi): training configs pass them to the
# hooks with the weights
SISDR_RAMP = ("sisdr_snr_lo", "sisdr_snr_hi")


def enhancement_loss(
    est_ri: torch.Tensor,
    clean_ri: torch.Tensor,
    clean_wav: torch.Tensor,
    geom: StftGeometry,
    w_sisdr: float = 0.0,
    c: float = 0.3,
    w_under: float = 0.0,
    w_mrstft: float = 0.0,
    w_pesq: float = 0.0,
    sisdr_weights: torch.Tensor | None = None,
):
    """Spectral terms (+ optional SI-SDR). ``w_under`` adds the squared compressed magnitude
    the estimate is *missing* (|clean| above |estimate|) once more at that weight: removing
    speech costs more than leaving noise, which protects syllables in bursts of noise.
    ``w_mrstft`` adds the multi-resolution STFT loss of the resynthesised waveform, ``w_pesq``
    the PESQ-modelled ``perceptual_loss`` of it. ``sisdr_weights`` [B] (``snr_ramp_weights``)
    weigh the SI-SDR term per mixture (the mean of weight x -SI-SDR); the logged SI-SDR stays
    the plain mean."""
    e, t = compress_ri(est_ri, c), compress_ri(clean_ri, c)
    l_cplx = torch.mean((e - t) ** 2)
    mag_e = torch.sqrt(e[:, 0] ** 2 + e[:, 1] ** 2 + 1e-10)
    mag_t = torch.sqrt(t[:, 0] ** 2 + t[:, 1] ** 2 + 1e-10)
    l_mag = torch.mean((mag_e - mag_t) ** 2)
    l_under = torch.mean(torch.relu(mag_t - mag_e) ** 2)
    est_wav = istft(torch.complex(est_ri[:, 0], est_ri[:, 1]), geom)
    n = est_wav.shape[-1]
    each = neg_si_sdr_each(est_wav, clean_wav[..., :n])  # [B]
    l_sisdr = each.mean()
    term = l_sisdr if sisdr_weights is None else (sisdr_weights * each).mean()
    loss = l_cplx + l_mag + w_sisdr * term + w_under * l_under
    logs = {"l_cplx": l_cplx.item(), "l_mag": l_mag.item(), "l_under": l_under.item()}
    if w_mrstft:
        l_mr = mr_stft_loss(est_wav, clean_wav[..., :n])
        loss = loss + w_mrstft * l_mr
        logs["l_mrstft"] = l_mr.item()
    if w_pesq:
        l_p = perceptual_loss(est_wav, clean_wav[..., :n], geom.sample_rate)
        loss = loss + w_pesq * l_p
        logs["l_pesq"] = l_p.item()
    return loss, {**logs, "si_sdr": -l_sisdr.item()}


class BaselineHook:
    """The plain GCRN: enhancement loss only."""

    name = "baseline"

    def __init__(self, **weights: float):
        """``weights``: any of ``LOSS_WEIGHTS`` (enhancement_loss's optional terms) and of
        ``SISDR_RAMP`` (the SI-SDR term weighted by each mixture's input SNR when lo < hi)."""
        unknown = set(weights) - set(LOSS_WEIGHTS) - set(SISDR_RAMP)
        if unknown:
            raise ValueError(
                f"unknown loss weights {sorted(unknown)} (known: {LOSS_WEIGHTS + SISDR_RAMP})"
            )
        lo, hi = (float(weights.pop(k, 0.0)) for k in SISDR_RAMP)
        if (lo, hi) != (0.0, 0.0) and not hi > lo:
            raise ValueError(f"sisdr_snr_lo ({lo}) must be below sisdr_snr_hi ({hi}) (dB)")
        self.sisdr_ramp = (lo, hi) if hi > lo else None
        self.weights = weights

    def _sisdr_weights(self, noisy: torch.Tensor, clean: torch.Tensor) -> torch.Tensor | None:
        """The SI-SDR term's per-mixture weights (None: unweighted), from the undelayed clean."""
        return None if self.sisdr_ramp is None else snr_ramp_weights(noisy, clean, *self.sisdr_ramp)

    def compute_loss(self, model, batch):
        noisy, clean = batch
        geom = _unwrap(model).config.geometry
        w = self._sisdr_weights(noisy, clean)
        clean = target_of(model, clean)
        x, y = spectra(noisy, clean, geom)
        est = model(x)
        loss, logs = enhancement_loss(est, y, clean, geom, **self.weights, sisdr_weights=w)
        logs["estimate"] = est.detach()  # validation scores it without a second forward pass
        return loss, logs


class SSLHook(BaselineHook):
    """The paper's SSL-informed variants: the enhancement loss plus a Wav2Vec2 term.

    - ``kd``: a head on the encoder's grouped-LSTM output predicts the teacher's normalised
      embedding of the *clean* speech (L1, weight ``w_ssl``); dropped at inference.
    - ``pretrain``: for the first ``pretrain_fraction`` of the steps only that L1 term trains
      (encoder + head, stage 1), then the enhancement loss alone (stage 2, the whole model).
    - ``fusion``: the teacher's normalised embedding of the *noisy input* enters the model, which
      mixes its projection into the bottleneck with a learned weight; enhancement loss only.

    The teacher is frozen, in eval mode, on the training device; embeddings are computed on the
    fly (random crops never repeat) and the time they take is logged (``teacher_ms``).
    """

    def __init__(
        self,
        variant: str,
        teacher: str = "",
        layer: int | None = None,
        w_ssl: float = 1.0,
        pretrain_fraction: float = 0.3,
        total_steps: int = 1,
        **weights: float,
    ):
        super().__init__(**weights)
        from models.teacher import Teacher

        self.name = variant
        self.w_ssl = w_ssl
        self.teacher = Teacher(teacher or None, layer)
        self.teacher.load_stats()  # fail now, not at the first step, if statistics are missing
        # stage 1 (no enhancement yet) exists only in pretrain: the loop keeps no best before it
        stage1 = pretrain_fraction * total_steps if variant == "pretrain" else 0
        self.pretrain_steps = int(round(stage1))
        self.step = 0  # set by the training loop before each batch

    def describe(self) -> dict:
        d = self.teacher.describe()
        d.update(variant=self.name, w_ssl=self.w_ssl)
        if self.name == "pretrain":
            d["pretrain_steps"] = self.pretrain_steps
        return d

    def _embed(self, wave: torch.Tensor) -> tuple[torch.Tensor, float]:
        import time

        t0 = time.perf_counter()
        if self.teacher.device != wave.device:
            self.teacher.model.to(wave.device)
            self.teacher.device = wave.device
        e = self.teacher.embed(wave, normalise=True).to(wave.device)  # [B, T, D]
        return e, 1000 * (time.perf_counter() - t0)

    def compute_loss(self, model, batch):
        noisy, clean = batch
        m = _unwrap(model)
        geom = m.config.geometry
        w = self._sisdr_weights(noisy, clean)
        ref = target_of(m, clean)  # what the output is compared with (delayed for a look-ahead)
        x, y = spectra(noisy, ref, geom)
        logs: dict = {}
        if self.name == "fusion":
            ssl, logs["teacher_ms"] = self._embed(noisy)
            est = model(x, ssl=ssl[:, : x.shape[2]])
            loss, enh_logs = enhancement_loss(est, y, ref, geom, **self.weights, sisdr_weights=w)
            logs.update(enh_logs)
        else:
            est, bottleneck = model(x, return_bottleneck=True)
            target, logs["teacher_ms"] = self._embed(clean)
            pred = m.predict_ssl(bottleneck)  # [B, T, D]
            l_ssl = torch.mean(torch.abs(pred - target[:, : pred.shape[1]]))
            loss, enh_logs = enhancement_loss(est, y, ref, geom, **self.weights, sisdr_weights=w)
            logs.update(enh_logs, l_ssl=l_ssl.item())
            if self.name == "pretrain":
                stage1 = self.step < self.pretrain_steps
                logs["stage"] = 1 if stage1 else 2
                loss = self.w_ssl * l_ssl if stage1 else loss
            else:
                loss = loss + self.w_ssl * l_ssl
        logs["estimate"] = est.detach()
        return loss, logs


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


VARIANTS = ("baseline", "kd", "pretrain", "fusion")


def make_hook(variant: str, **kwargs):
    """The loss hook of a variant; SSL variants take ``teacher``, ``layer``, ``w_ssl``,
    ``pretrain_fraction`` and ``total_steps`` too."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown training variant '{variant}' (known: {', '.join(VARIANTS)})")
    if variant == "baseline":
        return BaselineHook(
            **{k: v for k, v in kwargs.items() if k in LOSS_WEIGHTS or k in SISDR_RAMP}
        )
    return SSLHook(variant, **kwargs)
