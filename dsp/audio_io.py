"""Loading and saving audio with clear errors.

Everything comes in as mono float32 at the rate asked for; everything that cannot be used
(unreadable, empty, NaN/inf) raises :class:`AudioError` naming the file and the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

from dsp.errors import UserError
from dsp.resample import resample

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au", ".opus")


class AudioError(UserError, ValueError):
    """Audio that cannot be used, with a message fit for a user."""


def to_mono(x: np.ndarray) -> np.ndarray:
    """[N] or [N, C] -> [N] float32 (channel mean)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    elif x.ndim != 1:
        raise AudioError(f"expected audio of shape [N] or [N, C], got {x.shape}")
    return x


def check_audio(x: np.ndarray, name: str = "audio", allow_silent: bool = True) -> np.ndarray:
    """Reject empty, non-finite or (optionally) all-silent audio with a clear message."""
    if x.size == 0:
        raise AudioError(f"{name}: empty audio (0 samples)")
    if not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise AudioError(f"{name}: {bad} samples are NaN or infinite")
    if not allow_silent and float(np.max(np.abs(x))) == 0.0:
        raise AudioError(f"{name}: audio is digital silence")
    return x


def check_audio_file(path: str | os.PathLike) -> Path:
    """``path`` if it is a file soundfile can open (its header read, not its samples), else an
    :class:`AudioError` that says why - quick enough to check before anything slow starts."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, expected an audio file")
    try:
        sf.info(str(path))
    except Exception as exc:  # soundfile raises several types for corrupt files
        raise AudioError(f"{path}: cannot read audio ({exc})") from None
    return path


def load_audio(
    path: str | os.PathLike,
    sr: int | None = 16000,
    allow_silent: bool = True,
) -> tuple[np.ndarray, int]:
    """Read any file soundfile reads -> (mono float32 samples, rate).

    Mixes channels to mono and resamples to ``sr`` (``None`` keeps the file's own rate).
    """
    path = check_audio_file(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for corrupt files
        raise AudioError(f"{path}: cannot read audio ({exc})") from None
    x = check_audio(to_mono(data), str(path), allow_silent=allow_silent)
    if sr is not None and rate != sr:
        x = resample(x, rate, sr)
        rate = sr
    return x, int(rate)


def save_audio(path: str | os.PathLike, x: np.ndarray, sr: int, subtype: str | None = None) -> Path:
    """Write mono or [N, C] float audio - atomically, creating folders as needed. ``subtype``
    (a soundfile subtype such as 'FLOAT' or 'PCM_24') defaults to 16-bit PCM (Vorbis for .ogg);
    integer subtypes clip at full scale, float ones keep every sample as it is."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.asarray(x, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        raise AudioError(f"{path}: refusing to write NaN/inf samples")
    suffix = path.suffix.lower()
    fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}.get(suffix)
    if fmt is None:
        raise AudioError(f"{path}: unsupported output format '{suffix}' (use .wav, .flac or .ogg)")
    if fmt == "OGG":
        subtype = "VORBIS"
    elif subtype is None or not sf.check_format(fmt, subtype):
        subtype = "PCM_16"
    if subtype not in ("FLOAT", "DOUBLE"):
        x = np.clip(x, -1.0, 1.0)
    tmp = path.with_name(path.name + ".part")
    sf.write(str(tmp), x, sr, format=fmt, subtype=subtype)
    os.replace(tmp, path)
    return path


def find_audio_files(root: str | os.PathLike) -> list[Path]:
    """All audio files under ``root`` (any depth), sorted; a file path returns itself."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise AudioError(f"{root}: no such file or folder")
    return sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
    )
