"""Planning the corpus: which voice speaks which sentence or prompt, which noise file goes to
which split. Every plan is a list of job dicts for ``corpus_sources.run_job``; planning is
seeded and identical in every process (no salted ``hash``).
"""

from __future__ import annotations

import random
import zlib
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from training import corpus_real, noise_synth
from training.corpus_sources import SPLITS, _split_of, debs_dir, fetch_deb, unpack_deb

if TYPE_CHECKING:
    from training.corpus import CorpusConfig

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


# -- planning ----------------------------------------------------------------------------------


def plan_tts(
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


def plan_asterisk(cfg: CorpusConfig, root: Path, hours: float, rng: random.Random) -> list[dict]:
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


def unpacked(package: str) -> Path:
    return unpack_deb(
        fetch_deb(package, debs_dir()),
        debs_dir() / "unpacked" / package,
        corpus_real.UNPACK_ONLY.get(package, ()),
    )


def _package_sounds(deb: str) -> list[Path]:
    """The sound files of one unpacked noise package (``corpus_real.SOUND_READERS`` unpack
    those kept in an archive of their own)."""
    folder = unpacked(deb)
    if deb in corpus_real.SOUND_READERS:
        return corpus_real.SOUND_READERS[deb](folder)
    return [
        p
        for p in sorted(folder.rglob("*"))
        if p.suffix.lower() in (".ogg", ".wav", ".flac") and p.is_file()
    ]


def plan_real_noise(
    cfg: CorpusConfig,
    root: Path,
    rng: random.Random,
    extra: bool = False,
    more: bool = False,
    wide: bool = False,
) -> list[dict]:
    """Jobs for the real-noise packages: the first ones split file by file (train / valid /
    test); with ``extra``, the newer packages, each whole in the split that
    ``corpus_real.REAL_NOISE_DEBS`` gives it; with ``more``, those of
    ``corpus_real.MORE_NOISE_DEBS`` (families by ``corpus_real.more_noise_family``); with
    ``wide``, those of ``corpus_real.WIDE_NOISE_DEBS`` (``corpus_real.wide_noise_family``)."""
    jobs = []
    tag = "w" if wide else "m" if more else "x"
    if extra or more or wide:
        debs, family = (
            (corpus_real.WIDE_NOISE_DEBS, corpus_real.wide_noise_family)
            if wide
            else (corpus_real.MORE_NOISE_DEBS, corpus_real.more_noise_family)
            if more
            else (corpus_real.REAL_NOISE_DEBS, corpus_real.real_noise_family)
        )
        files = []
        for deb, (split, _) in debs.items():
            for p in _package_sounds(deb):
                files.append((deb.split("-")[0], family(p), p, split))
    else:
        files = [(source, family, p, None) for source, family, p in _real_noise_files()]
    for source, family, p, fixed in files:
        split = fixed or _split_of(
            f"{source}/{p.name}", (("train", 0.8), ("valid", 0.08), ("test", 0.12))
        )
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
                "path": f"noise/{split}/{source}/{family}_{idx:05d}.flac"
                if not (extra or more or wide)
                else f"noise/{split}/{source}/{family}_{tag}{idx:05d}.flac",
                "extra": {"file": p.name},
            }
        )
    return jobs


def plan_synthetic(
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


def engine_rng(base: float, engine: str) -> random.Random:
    """The planning RNG of one TTS engine: fixed by the build seed and the engine's name in
    every process (``hash(str)`` is salted per process, so a resumed build would plan other
    files than the manifest rows it already has)."""
    return random.Random(base + zlib.crc32(engine.encode()) % 7)
