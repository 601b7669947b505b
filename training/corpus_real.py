"""Real recordings for the corpus: many human speakers, more real noise, and the real splits.

Real speech: spoken words and letters recorded by native speakers of dozens of languages
(Debian ``ktuberling-data``, ``klettres-data``), one speaker per package and language. Words are
screened (narrowband files, and files whose own noise floor sits less than ``MIN_SNR_DB`` under
the speech, are dropped: a noisy target teaches a model to keep noise) and joined into clips
with natural pauses. Real noise: more Debian game data for training (``widelands-data``, then
``MORE_NOISE_DEBS``). The newest sources (``WIDE_SPEECH_DEBS``, ``WIDE_NOISE_DEBS``: two more
readers, recorded vehicles, machinery, crowds and outdoor ambience) are heard in training only
when a config opts in (``OPT_IN_SOURCES``, ``DataConfig.opt_in``).

Two extra splits test generalisation to what no training choice has seen:
``real-valid`` and ``real-test`` hold *whole speakers* whose language training never hears and
*whole noise packages* that training never sees. Checkpoints are chosen on ``real-valid``;
``real-test`` is scored once, after the choice. A third, ``real-voices``, pairs the
``real-valid`` speakers with interfering talkers from a package no other split uses (the voice
lines of ``warzone2100-data``): ``real-valid`` holds no voices among its noise, and half of
``real-test``'s noise is voices, so recipes for interfering talkers are decided there.

Reserved packages (``RESERVED_PREFIXES``) feed an independent check and are never used.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from dsp.audio_io import load_audio
from dsp.errors import UserError
from training import CORPUS_RATE

REAL_SPLITS = ("real-valid", "real-test", "real-voices")
# Splits whose speech is another split's: real-voices mixes real-valid's speakers with voices.
SPEECH_SPLIT = {"real-voices": "real-valid"}

# Packages an independent check is built from: never fetched, listed or used by Hushlab.
RESERVED_PREFIXES = (
    "asterisk-core-sounds-it",
    "asterisk-core-sounds-ru",
    "asterisk-prompt-it",
    "lincity-ng-data",
    "asterisk-moh-opsound-",
    "flite",
    "festival",
    "festvox-",
)

# package -> (folder inside it whose subfolders are languages, licence as declared)
REAL_SPEECH_DEBS = {
    "ktuberling-data": ("usr/share/ktuberling/sounds", "GPL-2+ (KDE Edu)"),
    "klettres-data": ("usr/share/klettres", "GPL-2+ (KDE Edu)"),
}
# Whole speakers (package/language) held out; each language is absent from every training source.
REAL_HELDOUT_SPEAKERS = {
    "real-test": ("klettres/he", "klettres/ar", "klettres/tn", "ktuberling/el"),
    "real-valid": ("klettres/hu", "klettres/cs", "klettres/nb", "ktuberling/wa", "ktuberling/ro"),
}
# Speakers left out everywhere: their recordings carry their own noise (screened by ear and
# by the estimate below: median noise floor 8 dB under the words).
REAL_EXCLUDED_SPEAKERS = ("ktuberling/gl",)
# New real-noise packages: package -> split (whole packages for the real splits)
REAL_NOISE_DEBS = {
    "widelands-data": ("train", "GPL-2+"),
    "freeciv-data": ("real-valid", "GPL-2+"),
    "simutrans-pak64": ("real-valid", "Artistic"),
    "freedroidrpg-data": ("real-test", "GPL-2+"),
}
# Still more real noise for training, each package whole in train (stage real_noise_more):
# megaglest-data's landscape loops (birds, wind, rain, water, animals, night: 35 min), work and
# weapon effects and music. Its voice lines (units that answer, shout or die: 20 min) are family
# "voices" (more_noise_family). Packages with a few minutes of sound (minetest-data,
# extremetuxracer-data) were left out: noise is drawn evenly per source and family, so a tiny
# family would be heard as often as a large one.
MORE_NOISE_DEBS = {
    "megaglest-data": ("train", "GPL-2+ / CC-BY-SA-3.0"),
}
# The newest real sources (stage real_wide), all in train: two more real speakers (Mandarin
# syllables read by two people, one file per speaker in a folder per syllable: 3.ogg and 5.ogg),
# openttd-opensfx's recordings (vehicles, machinery, crowds, animals, wind; one sound catalogue)
# and redeclipse-data's sounds (wind, water, forest, rain, distant traffic and machines; music;
# effects). Training leaves their sources out unless a config names them (``data.opt_in``), so
# the models trained before them keep their data. flightgear-data-base was checked and left out:
# a 1.3 GB download for about 5 minutes of sound.
WIDE_SPEECH_DEBS = {
    "gcin-voice": ("usr/share/gcin-voice/ogg", "GPL-3 (3.ogg) / CC-BY-3.0 (5.ogg)"),
}
WIDE_NOISE_DEBS = {
    "openttd-opensfx": ("train", "CC-BY-3.0 / CC-0 (per sound)"),
    "redeclipse-data": ("train", "CC-BY-SA and others (per file, see its copyright)"),
}
# Corpus stages a training config hears only when it names them (``data.opt_in``): every source
# added after the first shipped models, so that a config trains on the data it was written for
OPT_IN_SOURCES = tuple(
    d.split("-")[0] for d in (*MORE_NOISE_DEBS, *WIDE_SPEECH_DEBS, *WIDE_NOISE_DEBS)
)
# packages of which only the sound files (and the documentation) are unpacked
UNPACK_ONLY = {"redeclipse-data": ("*.ogg", "*.wav", "./usr/share/doc/*")}
OPENSFX_CATALOGUE = "usr/share/games/openttd/baseset/opensfx/opensfx.cat"
_VOICE_LINE = re.compile(r"_(ack|select|die|attack)[0-9]*$")
# Interfering talkers for real-voices: package -> (zip archive inside it, folders of voice
# lines in the archive, folders in them that hold sound effects instead). warzone2100-data's
# audio is GPL-2+.
VOICE_NOISE_DEBS = {
    "warzone2100-data": (
        "usr/share/games/warzone2100/base.wz",
        ("audio/", "sequenceaudio/"),
        ("audio/sfx/", "audio/multi/", "audio/radclick/"),
    ),
}
VOICE_SPLIT = "real-voices"
MIN_SNR_DB = 20.0  # speech level (95th pct of 20 ms frames) over the file's floor (5th pct)
MIN_BAND_DB = -50.0  # energy 4.5-7.5 kHz relative to 0.3-4 kHz: below it, a narrowband file
MIN_RATE = 16000


def check_allowed(package: str) -> str:
    """``package`` itself, or a :class:`UserError` if it is reserved for the independent check."""
    if package.startswith(RESERVED_PREFIXES):
        raise UserError(f"'{package}' is reserved for an independent check and is never used")
    return package


def speech_split(split: str) -> str:
    """The split whose speech files ``split``'s mixtures use (itself but for real-voices)."""
    return SPEECH_SPLIT.get(split, split)


def screen(x: np.ndarray, sr: int = CORPUS_RATE) -> dict:
    """Noise floor and bandwidth estimates of one recording: {'snr_db', 'band_db'}."""
    hop = sr // 50
    n = len(x) // hop
    if n < 5:
        return {"snr_db": 0.0, "band_db": -99.0}
    frames = x[: n * hop].reshape(n, hop).astype(np.float64)
    db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    spec = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / sr)
    hi = spec[(f > 4500) & (f < 7500)].sum()
    lo = spec[(f > 300) & (f < 4000)].sum()
    return {
        "snr_db": float(np.percentile(db, 95) - np.percentile(db, 5)),
        "band_db": float(10 * np.log10(hi / (lo + 1e-20) + 1e-20)),
    }


def passes_screen(s: dict, rate: int) -> bool:
    return rate >= MIN_RATE and s["snr_db"] >= MIN_SNR_DB and s["band_db"] >= MIN_BAND_DB


def speaker_split(speaker: str) -> str | None:
    """The split of a real speaker ('ktuberling/fr'); None if excluded."""
    if speaker in REAL_EXCLUDED_SPEAKERS:
        return None
    for split, speakers in REAL_HELDOUT_SPEAKERS.items():
        if speaker in speakers:
            return split
    return "train"


def real_speech_files(unpacked: dict[str, Path]) -> dict[str, list[Path]]:
    """speaker ('package/lang') -> its word files, from unpacked packages (name -> folder).
    Language variants of one speaker (sr, sr@latin, ...) are one speaker; identical files are
    kept once."""
    out: dict[str, list[Path]] = defaultdict(list)
    seen: set[str] = set()
    for deb, folder in sorted(unpacked.items()):
        base = Path(folder) / REAL_SPEECH_DEBS[deb][0]
        source = deb.split("-")[0]
        for lang_dir in sorted(p for p in base.iterdir() if p.is_dir()):
            lang = lang_dir.name.split("@")[0]
            if lang in ("icons", "pics"):
                continue
            for p in sorted(lang_dir.rglob("*")):
                if p.suffix.lower() not in (".ogg", ".wav", ".flac") or not p.is_file():
                    continue
                digest = hashlib.sha1(p.read_bytes()).hexdigest()
                if digest in seen:
                    continue
                seen.add(digest)
                out[f"{source}/{lang}"].append(p)
    return dict(out)


def syllable_speech_files(unpacked: dict[str, Path]) -> dict[str, list[Path]]:
    """speaker ('gcin/zh3') -> files, for ``WIDE_SPEECH_DEBS``: a folder per syllable, one file
    per speaker named by the speaker's number."""
    out: dict[str, list[Path]] = defaultdict(list)
    for deb, folder in sorted(unpacked.items()):
        base = Path(folder) / WIDE_SPEECH_DEBS[deb][0]
        source = deb.split("-")[0]
        for p in sorted(base.rglob("*")):
            if p.suffix.lower() in (".ogg", ".wav", ".flac") and p.is_file():
                out[f"{source}/zh{p.stem}"].append(p)
    return dict(out)


def screen_files(files: dict[str, list[Path]], cache: Path) -> dict[str, dict]:
    """Screen every word file once (cached in ``cache``, a JSON file): path -> {rate, snr_db,
    band_db, ok}."""
    import json

    import soundfile as sf

    done = json.loads(cache.read_text()) if cache.exists() else {}
    todo = [str(p) for ps in files.values() for p in ps if str(p) not in done]
    for path in todo:
        rate = sf.info(path).samplerate
        x, _ = load_audio(path, CORPUS_RATE)
        res = screen(x)
        done[path] = {"rate": rate, **res, "ok": passes_screen(res, rate)}
    if todo:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(done))
        tmp.replace(cache)
    return done


def plan_real_speech(
    root: Path,
    unpacked: dict[str, Path],
    rng,
    screen_cache: Path | None = None,
    files: dict[str, list[Path]] | None = None,
) -> list[dict]:
    """Clip jobs: each speaker's screened words shuffled into clips of 3-7 words. Training
    speakers get three passes (the first as recorded, the others time-warped by 0.9-1.1:
    apparent new voices); the real splits one pass, as recorded. ``files`` (speaker -> files)
    replaces the listing of ``unpacked`` word packages."""
    jobs = []
    all_files = files if files is not None else real_speech_files(unpacked)
    screened = screen_files(all_files, screen_cache or root / "parts" / "real_speech_screen.json")
    for speaker, files in sorted(all_files.items()):
        split = speaker_split(speaker)
        files = [p for p in files if screened[str(p)]["ok"]]
        if split is None or not files:
            continue
        source, lang = speaker.split("/")
        reps = 3 if split == "train" else 1
        for rep in range(reps):
            order = [str(p) for p in files]
            rng.shuffle(order)
            i = 0
            while i < len(order):
                k = rng.randint(3, 7)
                chunk = order[i : i + k]
                i += k
                wf = round(rng.uniform(0.9, 1.1), 3) if rep else 1.0
                idx = len(jobs)
                jobs.append(
                    {
                        "type": "real_words",
                        "kind": "speech",
                        "source": source,
                        "voice": f"{source}-{lang}",
                        "split": split,
                        "root": str(root),
                        "words": chunk,
                        "warp": wf,
                        "min_seconds": 1.0,
                        "seed": rng.randrange(2**31),
                        "path": f"speech/{split}/{source}/{lang}_{split}_{idx:05d}.flac",
                        "extra": {"warp": wf, "language": lang},
                    }
                )
    return jobs


def screened_out(root: Path) -> int:
    """How many word files the screening dropped (0 before the real-speech stage ran)."""
    import json

    cache = root / "parts" / "real_speech_screen.json"
    if not cache.exists():
        return 0
    return sum(1 for v in json.loads(cache.read_text()).values() if not v["ok"])


def make_real_words(job: dict, rng: np.random.Generator, trim) -> np.ndarray:
    """Join a clip's words, each at -20 dBFS RMS, with 0.15-0.5 s pauses."""
    parts = []
    for path in job["words"]:
        x, _ = load_audio(path, CORPUS_RATE)
        x = trim(x)
        if len(x) < CORPUS_RATE // 10:
            continue
        x = x * (0.1 / (np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-9))
        parts += [
            x.astype(np.float32),
            np.zeros(int(CORPUS_RATE * rng.uniform(0.15, 0.5)), np.float32),
        ]
    if not parts:
        return np.zeros(0, np.float32)
    return np.concatenate(parts[:-1])


def real_noise_family(path: Path) -> str:
    parts = {q.lower() for q in path.parts}
    if "music" in parts or "stdmusic" in parts:
        return "music"
    if "voice_samples" in parts or "tux_ingame_comments" in parts:
        return "voices"
    return "effects"


def more_noise_family(path: Path) -> str:
    """The family of a file of the ``MORE_NOISE_DEBS`` packages: music, voices (a unit's spoken
    or shouted line), ambience (a landscape's or the water's sound loop) or effects."""
    parts = {q.lower() for q in path.parts}
    if "music" in parts:
        return "music"
    if _VOICE_LINE.search(path.stem.lower()):
        return "voices"
    if parts & {"tilesets", "env_sounds", "water_sounds"}:
        return "ambience"
    return "effects"


def wide_noise_family(path: Path) -> str:
    """The family of a file of the ``WIDE_NOISE_DEBS`` packages: ambience (wind, water, rain,
    forest, distant traffic and machines), music, voices (an announcer, a player's cries) or
    effects (the rest, and every sound of the openttd catalogue)."""
    parts = {q.lower() for q in path.parent.parts}
    stem = path.stem.lower()
    if "ambience" in parts:
        return "ambience"
    if "music" in parts or "maps" in parts or stem.startswith("theme"):
        return "music"
    if parts & {"announcer", "voice"} or ("player" in parts and stem.startswith(("pain", "death"))):
        return "voices"
    return "effects"


def opensfx_sounds(package_dir: Path) -> list[Path]:
    """The sounds of openttd-opensfx's catalogue, written once as WAV files into a folder beside
    it (sorted paths). The catalogue: a table of (offset, size) pairs, its first offset (high bit
    set) giving the count; each entry a name (length byte, text) and a RIFF WAV."""
    import struct

    cat = Path(package_dir) / OPENSFX_CATALOGUE
    cache = Path(package_dir) / "hushlab-sounds"
    marker = cache / ".extracted"
    if not marker.exists():
        try:
            data = cat.read_bytes()
            count = (struct.unpack_from("<I", data, 0)[0] & 0x7FFFFFFF) // 8
            cache.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                offset, size = struct.unpack_from("<II", data, 8 * i)
                offset &= 0x7FFFFFFF
                name_len = data[offset]
                wav = data[offset + 1 + name_len : offset + size]
                if wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
                    continue  # the catalogue's empty placeholders
                title = data[offset + 1 : offset + 1 + name_len].decode("latin-1")
                slug = re.sub(r"[^a-z0-9]+", "_", title.split(".")[0].lower()).strip("_")[:40]
                (cache / f"{i:03d}_{slug or 'sound'}.wav").write_bytes(wav)
        except (OSError, struct.error, IndexError) as exc:
            msg = f"openttd-opensfx: cannot read its sound catalogue {cat}: {exc}"
            raise UserError(msg) from exc
        marker.touch()
    return sorted(cache.glob("*.wav"))


# packages whose sounds sit in an archive of their own: package -> the reader that unpacks them
SOUND_READERS = {"openttd-opensfx": opensfx_sounds}


def is_real_source(source: str) -> bool:
    """Whether a corpus source is real recordings (vs TTS or synthesised noise)."""
    return source not in ("piper", "espeak", "synthetic")


def voice_lines(package_dir: Path, package: str) -> list[Path]:
    """The voice lines of one unpacked ``VOICE_NOISE_DEBS`` package, extracted once from its
    archive into a folder beside it (sorted paths)."""
    import zipfile

    archive, keep, drop = VOICE_NOISE_DEBS[package]
    cache = Path(package_dir) / "hushlab-voice-lines"
    marker = cache / ".extracted"
    if not marker.exists():
        try:
            with zipfile.ZipFile(Path(package_dir) / archive) as z:
                for name in z.namelist():
                    if (
                        name.lower().endswith((".ogg", ".wav", ".flac"))
                        and name.startswith(keep)
                        and not name.startswith(drop)
                    ):
                        z.extract(name, cache)
        except (OSError, zipfile.BadZipFile) as exc:
            raise UserError(f"{package}: cannot read the voice lines in {archive}: {exc}") from exc
        marker.touch()
    return sorted(p for p in cache.rglob("*") if p.suffix.lower() in (".ogg", ".wav", ".flac"))


def plan_voice_noise(root: Path, lines: dict[str, list[Path]], rng) -> list[dict]:
    """Noise jobs for ``real-voices``: each package's voice lines shuffled and joined, 3-6 at a
    time with natural pauses, into clips of an interfering talker (``lines``: package -> files)."""
    jobs = []
    for package, files in sorted(lines.items()):
        source = package.split("-")[0]
        order = [str(p) for p in files]
        rng.shuffle(order)
        i = 0
        while i < len(order):
            chunk = order[i : i + rng.randint(3, 6)]
            i += len(chunk)
            idx = len(jobs)
            jobs.append(
                {
                    "type": "real_words",
                    "kind": "noise",
                    "source": source,
                    "voice": "voices",
                    "split": VOICE_SPLIT,
                    "root": str(root),
                    "words": chunk,
                    "min_seconds": 1.0,
                    "seed": rng.randrange(2**31),
                    "peak": 0.9,
                    "path": f"noise/{VOICE_SPLIT}/{source}/voices_{idx:05d}.flac",
                    "extra": {"lines": len(chunk)},
                }
            )
    return jobs
