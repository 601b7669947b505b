"""Datasets: on-the-fly training mixtures and fixed, seeded evaluation mixtures.

Sources: the bundled corpus (``manifest.jsonl``), the DNS Challenge layout (a clean speech folder
and a noise folder, any depth), or any two folders of audio. Training examples are random crops of
clean speech mixed with one or two noises at an SNR drawn from a range (default [-5, 5] dB, the
paper's), at a random level, with optional room reverberation, band limiting and clipping (and,
where a config asks, speed changes and random equalisers for voice and microphone variety); the
same gain is always applied to the clean reference. An example is a pure function of
(seed, index), so runs are reproducible whatever the number of workers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import scipy.signal as ss
import soundfile as sf
import torch

from dsp.audio_io import AudioError, find_audio_files, load_audio
from dsp.eq import apply_sos, random_eq
from dsp.errors import UserError
from dsp.mixing import fit_length, mix_at_snr, rms_dbfs
from dsp.resample import change_speed
from training import CORPUS_RATE

log = logging.getLogger(__name__)


@dataclass
class DataConfig:
    corpus: str = ""  # bundled corpus folder ("" = default cache location)
    clean_dir: str = ""  # DNS layout / any folder of clean speech (overrides corpus)
    noise_dir: str = ""
    seconds: float = 4.0
    snr_min: float = -5.0
    snr_max: float = 5.0
    level_min: float = -45.0  # dBFS (RMS of the mixture)
    level_max: float = -5.0
    p_reverb: float = 0.25
    p_two_noises: float = 0.2
    p_bandlimit: float = 0.15
    p_clip: float = 0.05
    # of mixtures whose noise also carries an interfering talker: another training utterance
    # (most likely another voice), at -5 to +5 dB against the noise; the clean target stays the
    # main talker. 0 draws nothing (configs without it keep their random streams)
    p_talker: float = 0.0
    # of mixtures whose *speech* carries a second talker (another training utterance at -5 to +5
    # dB against the first), kept in the clean target as well: a model that keeps every voice and
    # removes the rest, instead of guessing which of two talkers is the user. 0 draws nothing
    p_kept_talker: float = 0.0
    # noise families (``hiss``) or groups (``hedgewars:voices``) left out of training mixtures,
    # e.g. the speech-like ones (voices, babble, crowd) for a model that never learns to remove
    # a voice
    drop_noise: tuple[str, ...] = ()
    # voice and recording-chain variety from few speakers (0 draws nothing, as p_talker): of
    # mixtures whose speech is played faster or slower by up to +-speed_max (pitch and formants
    # move with it: another voice), and whose speech and noise each get a random equaliser
    # (+-eq_gain_db; the clean target keeps the speech's colour, the model is not asked to undo it)
    p_speed: float = 0.0
    speed_max: float = 0.12
    p_eq: float = 0.0
    eq_gain_db: float = 6.0
    real_noise_share: float = 0.6  # of mixtures whose noise is a real recording (corpus)
    # training only: a family (``music``) or group (``hedgewars:music``) -> a factor on its
    # share of the draws within its kind (1 = the even share; e.g. music = 0.33 hears music a
    # third as often); validation and test mixtures are never reweighted
    noise_weights: dict = field(default_factory=dict)
    # of mixtures whose speech is a real recording (corpus; shared evenly by the real sources);
    # 0: every speech file equally likely
    real_speech_share: float = 0.0
    # corpus stages heard only when named here (``corpus_real.OPT_IN_SOURCES``: megaglest,
    # gcin, openttd, redeclipse), so a config keeps the data it was written for
    opt_in: tuple[str, ...] = ()
    valid_fraction: float = 0.05  # for folder sources without splits
    max_files: int = 0  # 0 = all (tests use a few)


def _hash_unit(key: str) -> float:
    return int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 2**32


def split_files(files: list[Path], root: str, split: str, valid_fraction: float) -> list[Path]:
    """The files of ``split`` ("train" or "valid") of a folder without splits: a hash of each
    path relative to ``root`` decides (so the split survives moving the folder); with two or
    more files, neither split is left empty."""
    keys = [_hash_unit(str(Path(f).relative_to(root))) for f in files]
    valid = [k < valid_fraction for k in keys]
    if len(files) >= 2 and not any(valid):
        valid[int(np.argmin(keys))] = True
    if len(files) >= 2 and all(valid):
        valid[int(np.argmax(keys))] = False
    return [f for f, v in zip(files, valid, strict=True) if v == (split == "valid")]


def list_sources(cfg: DataConfig, split: str) -> tuple[list[Path], list[Path]]:
    """(speech files, noise files) of one split."""
    if cfg.clean_dir or cfg.noise_dir:
        if not (cfg.clean_dir and cfg.noise_dir):
            raise UserError("give both a clean speech folder and a noise folder")
        speech = find_audio_files(cfg.clean_dir)
        noise = find_audio_files(cfg.noise_dir)
        for name, files, d in (
            ("clean speech", speech, cfg.clean_dir),
            ("noise", noise, cfg.noise_dir),
        ):
            if not files:
                raise UserError(f"{d}: no audio files found for {name}")
        if split == "test":
            split = "valid"
        speech = split_files(speech, cfg.clean_dir, split, cfg.valid_fraction)
        noise = split_files(noise, cfg.noise_dir, split, cfg.valid_fraction)
    else:
        from training.corpus import default_corpus_dir, load_manifest

        root = Path(cfg.corpus) if cfg.corpus else default_corpus_dir()
        from training.corpus_real import OPT_IN_SOURCES, speech_split

        unknown = sorted(set(cfg.opt_in) - set(OPT_IN_SOURCES))
        if unknown:
            raise UserError(
                f"data.opt_in names {unknown}; the sources to opt in are {list(OPT_IN_SOURCES)}"
            )
        left_out = set(OPT_IN_SOURCES) - set(cfg.opt_in)
        rows = [r for r in load_manifest(root) if r["source"] not in left_out]
        sp = speech_split(split)
        speech = [root / r["path"] for r in rows if r["kind"] == "speech" and r["split"] == sp]
        noise = [root / r["path"] for r in rows if r["kind"] == "noise" and r["split"] == split]
    if cfg.max_files:
        speech, noise = speech[: cfg.max_files], noise[: cfg.max_files]
    if not speech or not noise:
        raise UserError(f"split '{split}' has {len(speech)} speech and {len(noise)} noise files")
    return speech, noise


def noise_group(path: Path) -> tuple[str, bool]:
    """(group, is_synthetic) of a noise file: corpus files group by source and family
    (``noise/<split>/<source>/<family>_<n>.flac``); other folders by their parent folder."""
    parts = path.parts
    if len(parts) >= 4 and parts[-4] == "noise" and parts[-3] in ("train", "valid", "test"):
        source = parts[-2]
        family = path.stem.rsplit("_", 2 if source == "synthetic" else 1)[0]
        return f"{source}:{family}", source == "synthetic"
    return path.parent.name, False


def speech_source(path: Path) -> str:
    """The corpus source of a speech file (``speech/<split>/<source>/...``), else its folder."""
    parts = path.parts
    if len(parts) >= 4 and parts[-4] == "speech":
        return parts[-2]
    return path.parent.name


def real_speech_weights(paths: list[Path], real_share: float) -> np.ndarray | None:
    """Per-file sampling probabilities giving real recordings ``real_share`` of the draws,
    split evenly between real sources (files equal within a source), TTS the rest; None when
    the files are all of one kind or no share is asked for."""
    from training.corpus_real import is_real_source

    if real_share <= 0:
        return None
    sources = [speech_source(p) for p in paths]
    real = [is_real_source(s) for s in sources]
    if all(real) or not any(real):
        return None
    n_real_src = len({s for s, r in zip(sources, real, strict=True) if r})
    size: dict[str, int] = {}
    for s in sources:
        size[s] = size.get(s, 0) + 1
    n_tts = sum(1 for r in real if not r)
    w = np.array(
        [
            real_share / n_real_src / size[s] if r else (1 - real_share) / n_tts
            for s, r in zip(sources, real, strict=True)
        ]
    )
    return w / w.sum()


def unmatched_noise_keys(paths: list[Path], keys) -> list[str]:
    """The ``keys`` (of ``drop_noise`` or ``noise_weights``) that name no group
    (``source:family``) and no family of ``paths``: most likely typos, which change nothing."""
    names = set().union(*(_group_names(noise_group(p)[0]) for p in paths))
    return sorted({str(k) for k in keys} - names)


def _group_names(group: str) -> set[str]:
    """The names a noise group answers to in ``drop_noise``: itself and its family."""
    return {group, group.split(":")[-1]}


def without_noise(paths: list[Path], drop) -> list[Path]:
    """``paths`` less the noise files whose group (``source:family``) or family is in ``drop``."""
    if not drop:
        return paths
    drop = set(drop)
    groups = [noise_group(p)[0] for p in paths]
    keep = [p for p, g in zip(paths, groups, strict=True) if not _group_names(g) & drop]
    if not keep:
        raise UserError(f"drop_noise {sorted(drop)} leaves no noise file to train on")
    return keep


def balanced_noise_weights(
    paths: list[Path], real_share: float = 0.6, factors: dict | None = None
) -> np.ndarray:
    """Per-file sampling probabilities: each noise group gets an equal share within its kind
    (real recordings: ``real_share``; synthetic: the rest), files equal within a group. Without
    this, a source with many short files (a voice pack) would dominate the mixtures.
    ``factors`` (family or group -> factor, see ``DataConfig.noise_weights``) scale the shares
    of groups within their kind; the kinds keep their shares."""
    groups = [noise_group(p) for p in paths]
    kinds = {syn for _, syn in groups}
    share = (
        {True: 1.0 - real_share, False: real_share} if len(kinds) == 2 else {k: 1.0 for k in kinds}
    )
    factors = factors or {}
    bad = {k: v for k, v in factors.items() if not (isinstance(v, int | float) and v >= 0)}
    if bad:
        raise UserError(f"noise_weights are factors >= 0, not {bad}")

    def factor(g: str) -> float:
        return float(factors.get(g, factors.get(g.split(":")[-1], 1.0)))

    mass = {syn: sum(factor(g) for g in {g for g, s in groups if s == syn}) for syn in kinds}
    if any(m <= 0 for m in mass.values()):
        raise UserError(f"noise_weights {factors} leave a kind of noise with no share")
    size = {}
    for g, _ in groups:
        size[g] = size.get(g, 0) + 1
    w = np.array([share[syn] * factor(g) / mass[syn] / size[g] for g, syn in groups])
    return w / w.sum()


class AudioPool:
    """Audio files held in memory as int16 (6 h of 16 kHz speech is about 700 MB)."""

    def __init__(self, paths: list[Path], min_seconds: float = 0.3):
        self.paths, self.data = [], []
        skipped = 0
        for p in paths:
            try:
                if p.suffix.lower() == ".flac" or p.suffix.lower() == ".wav":
                    x, rate = sf.read(str(p), dtype="int16")
                    if x.ndim == 2:
                        x = x.mean(axis=1).astype(np.int16)
                    if rate != CORPUS_RATE:
                        y, _ = load_audio(p, CORPUS_RATE)
                        x = (np.clip(y, -1, 1) * 32767).astype(np.int16)
                else:
                    y, _ = load_audio(p, CORPUS_RATE)
                    x = (np.clip(y, -1, 1) * 32767).astype(np.int16)
            except (AudioError, RuntimeError, sf.LibsndfileError) as exc:
                log.warning("skipping %s: %s", p, exc)
                skipped += 1
                continue
            if len(x) < min_seconds * CORPUS_RATE or not np.any(x):
                skipped += 1
                continue
            self.paths.append(p)
            self.data.append(x)
        if not self.data:
            raise UserError(f"no usable audio among {len(paths)} files")
        self.weights: np.ndarray | None = None
        if skipped:
            log.info("skipped %d unusable files", skipped)

    def __len__(self):
        return len(self.data)

    def pick(self, rng: np.random.Generator) -> int:
        """A random index, by ``self.weights`` when set (else uniform)."""
        if self.weights is None:
            return int(rng.integers(len(self.data)))
        return int(rng.choice(len(self.data), p=self.weights))

    def get(self, i: int) -> np.ndarray:
        return self.data[i].astype(np.float32) / 32768.0


def synthetic_rir(rng: np.random.Generator, sr: int = CORPUS_RATE) -> np.ndarray:
    """A simple room impulse response: direct path, sparse early reflections, exponential tail."""
    rt60 = rng.uniform(0.15, 0.8)
    n = int(sr * min(1.2, rt60 * 1.2))
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    tail = ss.sosfilt(ss.butter(2, rng.uniform(3000, 7500), "low", fs=sr, output="sos"), tail)
    h = tail * rng.uniform(0.2, 0.6)
    h[0] = 1.0
    for _ in range(6):
        k = int(rng.uniform(0.002, 0.03) * sr)
        h[k] += rng.uniform(-0.6, 0.6)
    return (h / np.sqrt(np.sum(h**2))).astype(np.float32)


def add_talker(
    v: np.ndarray,
    speech: AudioPool,
    target: np.ndarray,
    target_index: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """``v`` plus another utterance of the pool (another file than ``target_index``), -5 to +5
    dB against ``v`` (against the target when ``v`` is silent)."""
    n = len(v)
    j = speech.pick(rng)
    for _ in range(8):
        if j != target_index or len(speech) < 2:
            break
        j = speech.pick(rng)
    t = fit_length(speech.get(j), n, rng)
    ref = float(np.mean(v.astype(np.float64) ** 2))
    if ref < 1e-12:
        ref = float(np.mean(target.astype(np.float64) ** 2))
    g = 10 ** (rng.uniform(-5, 5) / 20) * np.sqrt(
        ref / (np.mean(t.astype(np.float64) ** 2) + 1e-12)
    )
    return (v + g * t).astype(np.float32)


def make_example(
    speech: AudioPool, noise: AudioPool, cfg: DataConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One training mixture -> (noisy, clean), float32 [seconds * CORPUS_RATE]."""
    n = int(cfg.seconds * CORPUS_RATE)
    si = speech.pick(rng)
    s = speech.get(si)
    speed = 1.0
    if cfg.p_speed > 0 and rng.random() < cfg.p_speed:
        speed = float(rng.uniform(1 - cfg.speed_max, 1 + cfg.speed_max))
    m = int(round(n * speed))  # the crop that lasts n samples once played at that speed
    if len(s) >= m:
        start = int(rng.integers(0, len(s) - m + 1))
        s = s[start : start + m]
    else:
        pad = m - len(s)
        left = int(rng.integers(0, pad + 1))
        s = np.pad(s, (left, pad - left))
    if speed != 1.0:
        s = fit_length(change_speed(s, speed), n)
    if rng.random() < cfg.p_reverb:
        s = ss.fftconvolve(s, synthetic_rir(rng))[:n].astype(np.float32)
    if cfg.p_eq > 0 and rng.random() < cfg.p_eq:
        s = apply_sos(random_eq(rng, cfg.eq_gain_db), s)
    if rms_dbfs(s) < -70:  # a crop of near-silence: take the whole utterance start instead
        s = fit_length(speech.get(int(rng.integers(len(speech)))), n)
    if cfg.p_kept_talker > 0 and rng.random() < cfg.p_kept_talker:
        s = add_talker(s, speech, s, si, rng)  # both voices are the target
    v = fit_length(noise.get(noise.pick(rng)), n, rng)
    if rng.random() < cfg.p_two_noises:
        v2 = fit_length(noise.get(noise.pick(rng)), n, rng)
        g = 10 ** (rng.uniform(-10, 5) / 20) * np.sqrt(np.mean(v**2) / (np.mean(v2**2) + 1e-12))
        v = v + g * v2
    if cfg.p_talker > 0 and rng.random() < cfg.p_talker:
        v = add_talker(v, speech, s, si, rng)
    if cfg.p_eq > 0 and rng.random() < cfg.p_eq:
        v = apply_sos(random_eq(rng, cfg.eq_gain_db), v)
    if np.mean(v.astype(np.float64) ** 2) < 1e-12:
        v = rng.standard_normal(n).astype(np.float32) * 0.01
    snr = rng.uniform(cfg.snr_min, cfg.snr_max)
    level = rng.uniform(cfg.level_min, cfg.level_max)
    noisy, clean, _ = mix_at_snr(s, v, snr, level_dbfs=level)
    if rng.random() < cfg.p_bandlimit:
        sos = ss.butter(8, rng.uniform(4000, 7800), "low", fs=CORPUS_RATE, output="sos")
        noisy = ss.sosfilt(sos, noisy).astype(np.float32)
        clean = ss.sosfilt(sos, clean).astype(np.float32)
        peak = float(np.max(np.abs(noisy)))
        if peak > 0.99:  # the filter's ringing can overshoot: same gain on both
            noisy, clean = noisy * (0.99 / peak), clean * (0.99 / peak)
    if rng.random() < cfg.p_clip:
        peak = float(np.max(np.abs(noisy)))
        thr = peak * rng.uniform(0.3, 0.8)
        noisy = np.clip(noisy, -thr, thr)
    return noisy.astype(np.float32), clean.astype(np.float32)


class TrainMixtures(torch.utils.data.Dataset):
    """Map-style: item i of epoch e is fixed by (seed, e, i); ``len`` is examples per epoch."""

    def __init__(
        self, cfg: DataConfig, length: int, seed: int = 0, split: str = "train", rank: int = 0
    ):
        speech, noise = list_sources(cfg, split)
        unknown = unmatched_noise_keys(noise, [*cfg.drop_noise, *cfg.noise_weights])
        if unknown:
            log.warning(
                "data.drop_noise / data.noise_weights: %s name no noise family or group of this "
                "corpus, so they change nothing (families here: %s)",
                ", ".join(unknown),
                ", ".join(sorted({noise_group(p)[0].split(":")[-1] for p in noise})),
            )
        noise = without_noise(noise, cfg.drop_noise)
        self.speech = AudioPool(speech)
        self.noise = AudioPool(noise)
        self.noise.weights = balanced_noise_weights(
            self.noise.paths, cfg.real_noise_share, cfg.noise_weights
        )
        self.speech.weights = real_speech_weights(self.speech.paths, cfg.real_speech_share)
        self.cfg, self.length, self.seed, self.rank = cfg, length, seed, rank
        self.epoch = 0

    def __len__(self):
        return self.length

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, i):
        rng = np.random.default_rng([self.seed, self.rank, self.epoch, i])
        noisy, clean = make_example(self.speech, self.noise, self.cfg, rng)
        return torch.from_numpy(noisy), torch.from_numpy(clean)


# -- fixed evaluation mixtures -----------------------------------------------------------------


@dataclass
class MixSpec:
    speech: str  # path relative to the corpus root (or absolute)
    noise: str
    noise_offset: int
    snr: float
    level: float
    n_samples: int
    id: str


def make_mixture_list(
    cfg: DataConfig,
    split: str,
    n: int,
    snrs=(-5.0, 0.0, 5.0),
    seed: int = 7,
    max_seconds: float = 10.0,
) -> list[dict]:
    """``n`` (speech, noise) pairs, each at every SNR in ``snrs``; levels from -35 to -15 dBFS."""
    speech, noise = list_sources(cfg, split)
    root = Path(cfg.corpus) if cfg.corpus and not cfg.clean_dir else None
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(speech))
    weights = balanced_noise_weights(noise, cfg.real_noise_share)
    out = []
    for k in range(n):
        sp = speech[int(order[k % len(speech)])]
        nz = noise[int(rng.choice(len(noise), p=weights))]
        n_s = min(sf.info(str(sp)).frames, int(max_seconds * CORPUS_RATE))
        n_n = sf.info(str(nz)).frames
        off = int(rng.integers(0, max(1, n_n - n_s)))
        level = float(rng.uniform(-35, -15))
        for snr in snrs:
            out.append(
                asdict(
                    MixSpec(
                        speech=str(sp.relative_to(root)) if root else str(sp),
                        noise=str(nz.relative_to(root)) if root else str(nz),
                        noise_offset=off,
                        snr=float(snr),
                        level=level,
                        n_samples=int(n_s),
                        id=f"{split}{k:04d}_snr{snr:+.0f}",
                    )
                )
            )
    return out


def render_mixture(
    spec: dict,
    root: str | os.PathLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """-> (noisy, clean) float32 at 16 kHz; the same audio every time."""
    base = Path(root) if root else Path("/")
    s, _ = load_audio(base / spec["speech"], CORPUS_RATE)
    s = s[: spec["n_samples"]]
    v, _ = load_audio(base / spec["noise"], CORPUS_RATE)
    v = v[spec["noise_offset"] :] if spec["noise_offset"] < len(v) else v
    v = fit_length(v, len(s))
    noisy, clean, _ = mix_at_snr(s, v, spec["snr"], level_dbfs=spec["level"])
    return noisy, clean


def mixture_list_path(corpus_root: Path, split: str) -> Path:
    return Path(corpus_root) / "mixtures" / f"{split}.json"


def load_or_make_mixtures(
    cfg: DataConfig,
    split: str,
    n: int,
    snrs=(-5.0, 0.0, 5.0),
) -> tuple[list[dict], Path | None]:
    """The stored mixture list of a corpus split (made once, then reused), and its audio root."""
    from training.corpus import default_corpus_dir

    if cfg.clean_dir:
        return make_mixture_list(cfg, split, n, snrs), None
    root = Path(cfg.corpus) if cfg.corpus else default_corpus_dir()
    cfg = DataConfig(**{**asdict(cfg), "corpus": str(root)})
    path = mixture_list_path(root, split)
    key = {"n": n, "snrs": list(snrs)}
    if path.exists():
        stored = json.loads(path.read_text())
        if stored.get("key") == key:
            return stored["mixtures"], root
    mixes = make_mixture_list(cfg, split, n, snrs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"key": key, "mixtures": mixes}))
    os.replace(tmp, path)
    return mixes, root
