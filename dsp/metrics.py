"""Objective metrics: PESQ (wide band), STOI, eSTOI, SI-SDR, DNSMOS - as plain floats.

Every function takes a reference and an estimate at any rate, brings both to the metric's rate,
compensates a known latency (``delay`` samples at the estimate's rate: the estimate lags the
reference) and, within ``max_lag`` samples, a residual lag found by cross-correlation. Failures
(too short, silent, a metric library refusing) give NaN with a reason in ``MetricResult.reason``
from :func:`score`, never an exception from inside an evaluation loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dsp.resample import resample

EPS = 1e-8
MIN_SECONDS = 0.5


class MetricError(ValueError):
    pass


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SDR in dB (Le Roux et al. 2019), zero-mean, same-length inputs."""
    r = np.asarray(reference, dtype=np.float64)
    e = np.asarray(estimate, dtype=np.float64)
    if r.shape != e.shape:
        raise MetricError(f"SI-SDR needs equal lengths, got {r.shape} and {e.shape}")
    r = r - r.mean()
    e = e - e.mean()
    rr = float(np.dot(r, r))
    if rr < EPS:
        raise MetricError("reference is silent")
    target = (np.dot(e, r) / rr) * r
    resid = e - target
    return float(10.0 * np.log10((np.dot(target, target) + EPS) / (np.dot(resid, resid) + EPS)))


def estimate_lag(reference: np.ndarray, estimate: np.ndarray, max_lag: int) -> int:
    """Lag (samples) by which ``estimate`` trails ``reference``, searched in [-max_lag, max_lag]
    by FFT cross-correlation."""
    if max_lag <= 0:
        return 0
    n = min(len(reference), len(estimate))
    r = np.asarray(reference[:n], dtype=np.float64)
    e = np.asarray(estimate[:n], dtype=np.float64)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    xc = np.fft.irfft(np.fft.rfft(e, size) * np.conj(np.fft.rfft(r, size)), size)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    vals = np.concatenate([xc[: max_lag + 1], xc[-max_lag:]])
    return int(lags[int(np.argmax(vals))])


def align(
    reference: np.ndarray,
    estimate: np.ndarray,
    delay: int = 0,
    max_lag: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Drop ``delay`` leading samples of the estimate, then a detected residual lag; crop both to
    the common length."""
    est = np.asarray(estimate)[delay:] if delay > 0 else np.asarray(estimate)
    ref = np.asarray(reference)
    if delay < 0:
        ref = ref[-delay:]
    lag = estimate_lag(ref, est, max_lag) if max_lag else 0
    if lag > 0:
        est = est[lag:]
    elif lag < 0:
        ref = ref[-lag:]
    n = min(len(ref), len(est))
    return ref[:n], est[:n]


def _prepare(reference, estimate, sr, target_sr, delay, max_lag):
    reference = np.asarray(reference, dtype=np.float32)
    estimate = np.asarray(estimate, dtype=np.float32)
    for name, x in (("reference", reference), ("estimate", estimate)):
        if x.ndim != 1:
            raise MetricError(f"{name} must be mono [N], got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise MetricError(f"{name} holds NaN or infinite samples")
    ref, est = align(reference, estimate, delay, max_lag)
    if target_sr is not None and target_sr != sr:
        ref, est = resample(ref, sr, target_sr), resample(est, sr, target_sr)
        sr = target_sr
    if len(ref) < MIN_SECONDS * sr:
        raise MetricError(f"too short after alignment ({len(ref) / sr:.2f} s < {MIN_SECONDS} s)")
    if float(np.max(np.abs(ref))) < 1e-6:
        raise MetricError("reference is silent")
    return ref, est, sr


def pesq_wb(reference, estimate, sr: int, delay: int = 0, max_lag: int = 0) -> float:
    """Wide-band PESQ (ITU-T P.862.2) at 16 kHz."""
    from pesq import pesq as _pesq

    ref, est, fs = _prepare(reference, estimate, sr, 16000, delay, max_lag)
    try:
        return float(_pesq(fs, ref, est, "wb"))
    except Exception as exc:  # pesq raises NoUtterancesError etc.
        raise MetricError(f"PESQ failed: {exc}") from None


def stoi(
    reference, estimate, sr: int, delay: int = 0, max_lag: int = 0, extended: bool = False
) -> float:
    """STOI (or eSTOI with ``extended``), computed at 10 kHz by pystoi."""
    from pystoi import stoi as _stoi

    ref, est, fs = _prepare(reference, estimate, sr, None, delay, max_lag)
    return float(_stoi(ref, est, fs, extended=extended))


def si_sdr_aligned(reference, estimate, sr: int, delay: int = 0, max_lag: int = 0) -> float:
    ref, est, _ = _prepare(reference, estimate, sr, None, delay, max_lag)
    return si_sdr(ref, est)


_DNSMOS = None


def dnsmos(estimate, sr: int) -> dict[str, float]:
    """DNSMOS P.835 (SIG, BAK, OVRL) of an estimate, via the optional ``speechmos`` package."""
    global _DNSMOS
    try:
        from speechmos import dnsmos as _dm
    except Exception as exc:
        raise MetricError(
            "DNSMOS needs the optional metrics extra: pip install 'hushlab[metrics]' "
            f"({type(exc).__name__}: {exc})"
        ) from None
    x = resample(np.asarray(estimate, dtype=np.float32), sr, 16000)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 1.0:
        x = x / peak
    res = _dm.run(x, sr=16000)
    return {
        "dnsmos_ovrl": float(res["ovrl_mos"]),
        "dnsmos_sig": float(res["sig_mos"]),
        "dnsmos_bak": float(res["bak_mos"]),
    }


def dnsmos_available() -> bool:
    try:
        import speechmos.dnsmos  # noqa: F401
    except Exception:
        return False
    return True


@dataclass
class MetricResult:
    values: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)


def speech_onsets(clean: np.ndarray, sr: int, gap_ms: float = 150.0, floor_db: float = 40.0):
    """Sample indices where speech starts in a clean reference: 10 ms frames louder than
    (loudest frame - ``floor_db``) after at least ``gap_ms`` of quieter frames."""
    hop = sr // 100
    n = len(clean) // hop
    if n == 0:
        return []
    frames = np.asarray(clean[: n * hop], np.float64).reshape(n, hop)
    db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    active = db > db.max() - floor_db
    need = int(round(gap_ms / 10))
    out, quiet = [], need  # the start of the signal counts as after silence
    for i, a in enumerate(active):
        if a and quiet >= need:
            out.append(i * hop)
        quiet = 0 if a else quiet + 1
    return out


def onset_level_db(clean, estimate, sr: int, onset_ms: float = 50.0) -> float:
    """How much of each speech onset an enhancer keeps: the level (dB) of the estimate against
    the clean reference over the first ``onset_ms`` of every speech segment, energy-weighted
    over the segments (0 dB: onsets intact; a gate that opens late: strongly negative).
    Signals must be time-aligned."""
    clean = np.asarray(clean, np.float64)
    est = np.asarray(estimate, np.float64)
    if len(clean) < sr // 2:
        raise ValueError("signal too short for onset analysis (< 0.5 s)")
    w = int(sr * onset_ms / 1000)
    starts = [s for s in speech_onsets(clean, sr) if s + w <= min(len(clean), len(est))]
    if not starts:
        raise ValueError("no speech onsets found in the reference")
    e_ref = sum(float(np.sum(clean[s : s + w] ** 2)) for s in starts)
    e_est = sum(float(np.sum(est[s : s + w] ** 2)) for s in starts)
    return 10 * math.log10((e_est + 1e-12) / (e_ref + 1e-12))


DEFAULT_METRICS = ("pesq", "stoi", "estoi", "si_sdr", "onset")


def score(
    reference, estimate, sr: int, delay: int = 0, max_lag: int = 0, metrics=DEFAULT_METRICS
) -> MetricResult:
    """All requested metrics; a failing one becomes NaN with its reason, the others still run.

    Alignment is done once: the residual lag is detected on the full-rate signals and then applied
    to every metric.
    """
    res = MetricResult()
    try:
        ref, est = align(
            np.asarray(reference, np.float32), np.asarray(estimate, np.float32), delay, max_lag
        )
    except Exception as exc:
        for m in metrics:
            res.values[m] = math.nan
            res.reasons[m] = str(exc)
        return res
    funcs = {
        "pesq": lambda: pesq_wb(ref, est, sr),
        "stoi": lambda: stoi(ref, est, sr),
        "estoi": lambda: stoi(ref, est, sr, extended=True),
        "si_sdr": lambda: si_sdr_aligned(ref, est, sr),
        "onset": lambda: onset_level_db(ref, est, sr),
    }
    for m in metrics:
        if m == "dnsmos":
            try:
                res.values.update(dnsmos(est, sr))
            except Exception as exc:
                for k in ("dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak"):
                    res.values[k] = math.nan
                    res.reasons[k] = str(exc)
            continue
        key = "onset_db" if m == "onset" else m
        try:
            res.values[key] = funcs[m]()
        except KeyError:
            raise ValueError(
                f"unknown metric '{m}' (known: {sorted(funcs) + ['dnsmos']})"
            ) from None
        except Exception as exc:
            res.values[key] = math.nan
            res.reasons[key] = str(exc)
    return res
