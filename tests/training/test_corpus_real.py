"""The real-recordings sources: screening, speaker splits, reserved packages, summary counts."""

import io
import json
import random
import struct
import subprocess
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dsp.errors import UserError
from tests.conftest import speechlike
from training import corpus as C
from training import corpus_real as R

REPO = Path(__file__).resolve().parents[2]


def _word(path: Path, seed: int, sr: int = 44100, noise: float = 0.0, stereo: bool = False):
    """A speech-like 'word' of 0.6 s between silences, as the word packages store them."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([np.zeros(sr // 5), speechlike(0.6, sr, seed=seed), np.zeros(sr // 5)])
    x = x + noise * rng.standard_normal(len(x))
    if stereo:
        x = np.stack([x, x], 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x.astype(np.float32), sr)


@pytest.fixture()
def fake_words(tmp_path, monkeypatch):
    """Unpacked word packages: every language of the real splits, training languages, a
    narrowband language and a noisy one."""
    unpacked = {}
    k = 0
    for deb, (base, _) in R.REAL_SPEECH_DEBS.items():
        src = deb.split("-")[0]
        langs = [s.split("/")[1] for sp in R.REAL_HELDOUT_SPEAKERS.values() for s in sp]
        langs = [
            lang for lang in langs if f"{src}/{lang}" in sum(R.REAL_HELDOUT_SPEAKERS.values(), ())
        ]
        langs += ["fr", "de", "sr", "sr@latin", "gl"]
        for lang in langs:
            for i in range(9):
                k += 1
                p = tmp_path / deb / base / lang / f"w{i}.ogg"
                _word(p, seed=k if lang != "sr@latin" else k - 9, stereo=i % 2 == 0)
        for i in range(4):  # narrowband recordings
            _word(tmp_path / deb / base / "fi" / f"w{i}.wav", seed=100 + i, sr=8000)
        for i in range(4):  # words that carry their own noise
            _word(tmp_path / deb / base / "it" / f"n{i}.wav", seed=200 + i, noise=0.05)
        unpacked[deb] = tmp_path / deb
    monkeypatch.setattr(C.corpus_plan, "unpacked", lambda d: unpacked[d])
    return unpacked


def _fake_voice_package(folder: Path) -> Path:
    """An unpacked warzone2100-data: its archive holds 8 voice lines, sound effects and other
    files."""
    import zipfile

    archive = folder / R.VOICE_NOISE_DEBS["warzone2100-data"][0]
    archive.parent.mkdir(parents=True, exist_ok=True)
    wav = folder / "tmp.wav"
    with zipfile.ZipFile(archive, "w") as z:
        for i, name in enumerate(
            [f"audio/tutorial/tut{i}.wav" for i in range(5)]
            + [f"sequenceaudio/seq{i}.wav" for i in range(3)]
            + ["audio/sfx/weapons/gun.wav", "audio/radclick/click.wav", "audio/multi/emp.wav"]
        ):
            sf.write(wav, speechlike(1.2, 22050, seed=300 + i).astype(np.float32), 22050)
            z.write(wav, name)
        z.writestr("texpages/page.png", b"not audio")
    wav.unlink()
    return folder


def test_voice_lines_are_the_archives_voices_joined_into_clips(tmp_path):
    pkg = _fake_voice_package(tmp_path / "wz")
    lines = R.voice_lines(pkg, "warzone2100-data")
    assert sorted(p.name for p in lines) == sorted(
        [f"tut{i}.wav" for i in range(5)] + [f"seq{i}.wav" for i in range(3)]
    )
    assert R.voice_lines(pkg, "warzone2100-data") == lines  # extracted once, then reused
    jobs = R.plan_voice_noise(tmp_path / "c", {"warzone2100-data": lines}, random.Random(0))
    used = [w for j in jobs for w in j["words"]]
    assert sorted(used) == sorted(str(p) for p in lines)
    assert all(3 <= len(j["words"]) <= 6 for j in jobs[:-1]) and jobs[-1]["words"]
    assert {(j["kind"], j["split"], j["type"]) for j in jobs} == {
        ("noise", "real-voices", "real_words")
    }
    assert R.speech_split("real-voices") == "real-valid" and R.speech_split("test") == "test"
    broken = tmp_path / "broken"
    (broken / R.VOICE_NOISE_DEBS["warzone2100-data"][0]).parent.mkdir(parents=True)
    (broken / R.VOICE_NOISE_DEBS["warzone2100-data"][0]).write_bytes(b"not a zip")
    with pytest.raises(UserError, match="warzone2100-data: cannot read"):
        R.voice_lines(broken, "warzone2100-data")


def test_reserved_packages_are_refused_and_never_named():
    for name in (
        "asterisk-core-sounds-it-g722",
        "asterisk-core-sounds-ru-wav",
        "lincity-ng-data",
        "asterisk-moh-opsound-g722",
        "flite",
        "festival",
        "festvox-kallpc16k",
    ):
        with pytest.raises(UserError, match="reserved"):
            R.check_allowed(name)
        with pytest.raises(UserError, match="reserved"):
            C.fetch_deb(name, Path("/nonexistent"))
    used = list(C.SPEECH_DEBS) + list(C.NOISE_DEBS) + list(R.REAL_SPEECH_DEBS)
    used += list(R.REAL_NOISE_DEBS) + list(R.VOICE_NOISE_DEBS) + list(R.MORE_NOISE_DEBS)
    used += list(R.WIDE_SPEECH_DEBS) + list(R.WIDE_NOISE_DEBS)
    assert all(R.check_allowed(p) for p in used)
    # nowhere in the tracked sources, outside the list that refuses them
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True)
    names = ["lincity", "opsound", "festvox", "flite", "sounds-it", "sounds-ru"]
    for rel in files.stdout.split():
        if not rel.endswith((".py", ".toml", ".sh", ".md", ".json", ".txt", "Makefile")):
            continue
        if rel in ("training/corpus_real.py", "tests/training/test_corpus_real.py"):
            continue
        text = (REPO / rel).read_text(errors="ignore").lower()
        assert not any(n in text for n in names), rel


def test_screening_drops_narrowband_and_noisy_words(fake_words):
    clean, _ = C.load_audio(next((fake_words["klettres-data"]).rglob("fr/w1.ogg")), 16000)
    assert R.passes_screen(R.screen(clean), 44100)
    noisy, _ = C.load_audio(next((fake_words["klettres-data"]).rglob("it/n0.wav")), 16000)
    assert not R.passes_screen(R.screen(noisy), 44100)
    nb = next((fake_words["klettres-data"]).rglob("fi/w0.wav"))
    x, _ = C.load_audio(nb, 16000)
    assert not R.passes_screen(R.screen(x), sf.info(nb).samplerate)


def test_real_splits_never_share_a_speaker_or_file_with_training(fake_words, tmp_path):
    jobs = R.plan_real_speech(tmp_path / "c", fake_words, random.Random(0))
    by_split = defaultdict(set)
    files = defaultdict(set)
    for j in jobs:
        by_split[j["split"]].add(j["voice"])
        files[j["split"]] |= set(j["words"])
    assert set(by_split) == {"train", "real-valid", "real-test"}
    for sp in R.REAL_SPLITS:
        assert not by_split[sp] & by_split["train"]
        assert not files[sp] & files["train"]
    assert not by_split["real-valid"] & by_split["real-test"]
    assert len(by_split["real-test"]) >= 3
    assert "ktuberling-gl" not in set().union(*by_split.values())  # excluded speaker
    # sr and sr@latin are one speaker; their identical files are kept once
    assert sum(1 for v in by_split["train"] if v.endswith("-sr")) == 2  # one per package
    assert not any("@" in v for v in by_split["train"])
    # each held-out language is absent from training
    train_langs = {v.split("-", 1)[1] for v in by_split["train"]}
    for sp in R.REAL_SPLITS:
        assert not {v.split("-", 1)[1] for v in by_split[sp]} & train_langs


def _wav_bytes(x: np.ndarray, sr: int = 22050) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _opensfx_catalogue(path: Path, sounds: list[tuple[str, bytes]]) -> None:
    """An openttd sound catalogue: (offset, size) pairs, the first offset's high bit set; each
    entry a length byte, a NUL-terminated name and the sound (b"" for a placeholder)."""
    blobs = [bytes([len(n) + 1]) + n.encode() + b"\0" + wav for n, wav in sounds]
    offset, table = 8 * len(blobs), b""
    for i, blob in enumerate(blobs):
        table += struct.pack("<II", offset | (0x80000000 if i == 0 else 0), len(blob))
        offset += len(blob)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(table + b"".join(blobs))


def _fake_opensfx(folder: Path, n: int = 3) -> Path:
    rng = np.random.default_rng(5)
    sounds = [
        (
            f'"Sound {i}". By someone. License: CC0.',
            _wav_bytes(0.1 * rng.standard_normal(4410 * (i + 2))),
        )
        for i in range(n)
    ]
    _opensfx_catalogue(folder / R.OPENSFX_CATALOGUE, [*sounds, ('"Unused/Nothing".', b"")])
    return folder


def test_opensfx_catalogue_is_unpacked_into_sounds(tmp_path):
    folder = _fake_opensfx(tmp_path / "ottd", n=3)
    files = R.opensfx_sounds(folder)
    assert [p.name for p in files] == ["000_sound_0.wav", "001_sound_1.wav", "002_sound_2.wav"]
    assert [round(sf.info(p).duration, 2) for p in files] == [0.4, 0.6, 0.8]  # placeholder left out
    (folder / R.OPENSFX_CATALOGUE).unlink()
    assert R.opensfx_sounds(folder) == files  # unpacked once
    bad = tmp_path / "bad"
    (bad / R.OPENSFX_CATALOGUE).parent.mkdir(parents=True)
    (bad / R.OPENSFX_CATALOGUE).write_bytes(struct.pack("<I", 0x80000010) + b"\x00" * 4)
    with pytest.raises(UserError, match="sound catalogue"):
        R.opensfx_sounds(bad)


def test_wide_sources_families_and_speakers(tmp_path):
    f = R.wide_noise_family
    base = Path("usr/share/games/redeclipse/data")
    assert f(base / "sounds/ambience/distant_cars.ogg") == "ambience"
    assert f(base / "sounds/ambience/morph/stormrain.ogg") == "ambience"
    assert f(base / "sounds/music/track_01.ogg") == "music"
    assert f(base / "sounds/theme.ogg") == "music"
    assert f(base / "maps/tonatiuh.ogg") == "music"
    assert f(base / "sounds/announcer/fight.ogg") == "voices"
    assert f(base / "sounds/player/pain3.ogg") == "voices"
    assert f(base / "sounds/player/footstep2.ogg") == "effects"
    assert f(base / "sounds/weapons/rifle/fire.ogg") == "effects"
    assert f(Path("x/hushlab-sounds/004_steam_train.wav")) == "effects"
    folder = tmp_path / "gcin"
    for syl in ("a1", "ba2", "ma3"):
        for who in ("3", "5"):
            _word(folder / R.WIDE_SPEECH_DEBS["gcin-voice"][0] / syl / f"{who}.ogg", seed=len(syl))
    files = R.syllable_speech_files({"gcin-voice": folder})
    assert sorted(files) == ["gcin/zh3", "gcin/zh5"] and all(len(v) == 3 for v in files.values())
    assert set(R.OPT_IN_SOURCES) == {"megaglest", "gcin", "openttd", "redeclipse"}


def test_unpack_only_writes_the_members_asked_for(tmp_path):
    pkg = tmp_path / "pkg"
    for rel in (
        "usr/share/game/sounds/a.ogg",
        "usr/share/game/maps/m.bsp",
        "usr/share/doc/x/copyright",
    ):
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_bytes(b"data")
    (pkg / "DEBIAN").mkdir()
    (pkg / "DEBIAN" / "control").write_text(
        "Package: fake-data\nVersion: 1\nArchitecture: all\nMaintainer: x <x@y.z>\n"
        "Description: test\n"
    )
    deb = tmp_path / "fake-data_1_all.deb"
    subprocess.run(["dpkg-deb", "--build", str(pkg), str(deb)], check=True, capture_output=True)
    out = C.unpack_deb(deb, tmp_path / "out", ("*.ogg", "./usr/share/doc/*"))
    got = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert got == [".unpacked", "usr/share/doc/x/copyright", "usr/share/game/sounds/a.ogg"]
    (tmp_path / "broken.deb").write_bytes(b"not a deb")
    with pytest.raises(UserError, match="could not unpack"):
        C.unpack_deb(tmp_path / "broken.deb", tmp_path / "out2", ("*.ogg",))


def test_build_with_real_sources_summary_counts(fake_words, tmp_path, monkeypatch):
    noise_root = tmp_path / "noisepk"
    rng = np.random.default_rng(0)
    unpacked_noise = {}
    more = ("tilesets/spring/sounds/day.ogg", "units/archer/sounds/archer_ack1.wav")
    wide = ("sounds/ambience/wind.ogg", "sounds/announcer/fight.ogg", "sounds/weapons/gun.ogg")
    for deb in [*R.REAL_NOISE_DEBS, *R.MORE_NOISE_DEBS, "redeclipse-data"]:
        for sub in ("sound/ambient/n0.ogg", "music/n1.ogg", *more, *wide):
            p = noise_root / deb / sub
            p.parent.mkdir(parents=True, exist_ok=True)
            sf.write(p, (0.1 * rng.standard_normal(22050 * 2)).astype(np.float32), 22050)
        unpacked_noise[deb] = noise_root / deb
    unpacked_noise["warzone2100-data"] = _fake_voice_package(noise_root / "wz")
    unpacked_noise["openttd-opensfx"] = _fake_opensfx(noise_root / "ottd")
    gcin = tmp_path / "gcin"
    for i in range(12):  # speaker 5 as recorded, with silences; speaker 3 trimmed to the voice
        syl = gcin / R.WIDE_SPEECH_DEBS["gcin-voice"][0] / f"s{i}"
        _word(syl / "5.ogg", seed=400 + i)
        syl.mkdir(parents=True, exist_ok=True)
        t = np.arange(int(0.4 * 44100)) / 44100  # a syllable cut tight: no floor to measure
        voiced = sum(np.sin(2 * np.pi * k * (150 + 5 * i) * t) / k for k in range(1, 20))
        sf.write(
            syl / "3.ogg", (0.2 * voiced * np.linspace(1, 0.4, len(t))).astype(np.float32), 44100
        )
    unpacked_noise["gcin-voice"] = gcin
    speech = dict(fake_words)
    monkeypatch.setattr(C.corpus_plan, "unpacked", lambda d: {**speech, **unpacked_noise}[d])
    cfg = C.CorpusConfig(
        out=str(tmp_path / "c"),
        hours=0.02,
        noise_hours=0.01,
        workers=1,
        use_piper=False,
        use_asterisk=False,
        use_real_noise=False,
        use_espeak=False,
    )
    with pytest.raises(UserError, match="no speech source"):
        C.build(cfg)  # the real stage comes after the rest; TTS or prompts are still needed
    cfg.use_espeak = True
    cfg.out = str(tmp_path / "c2")
    root = C.build(cfg)
    rows = C.load_manifest(root)
    s = json.loads((root / "summary.json").read_text())
    real_speech = [
        r
        for r in rows
        if r["kind"] == "speech" and r["source"] in ("klettres", "ktuberling", "gcin")
    ]
    assert real_speech and s["real"]["klettres"] and not s["real"]["espeak"]
    assert s["speakers"]["klettres"]["real-test"] >= 1
    assert s["real_train_speakers"] == len(
        {r["voice"] for r in real_speech if r["split"] == "train"}
    )
    assert s["screened_out_words"] >= 8  # the narrowband and the noisy words, in both packages
    noise_splits = {
        r["source"]: r["split"] for r in rows if r["kind"] == "noise" and r["source"] != "synthetic"
    }
    for deb, (split, _) in [*R.REAL_NOISE_DEBS.items(), *R.MORE_NOISE_DEBS.items()]:
        assert noise_splits[deb.split("-")[0]] == split
    more_rows = [r for r in rows if r["source"] == "megaglest"]
    assert {r["voice"] for r in more_rows} == {"ambience", "effects", "music", "voices"}
    assert all(r["split"] == "train" and "_m" in r["path"] for r in more_rows)
    # real-voices: every voice line of the archive once, no sound effect, in no other split
    voices = [r for r in rows if r["split"] == "real-voices"]
    assert voices and {(r["kind"], r["source"], r["voice"]) for r in voices} == {
        ("noise", "warzone2100", "voices")
    }
    assert sum(r["extra"]["lines"] for r in voices) == 8
    assert all(r["source"] != "warzone2100" for r in rows if r["split"] != "real-voices")
    md = (root / "summary.md").read_text()
    assert "real-test h" in md and "| speech | klettres | yes |" in md
    assert "real-voices h" in md
    # the newest sources: all in train, tagged, one more speaker (the other screened out)
    wide_rows = [r for r in rows if r["source"] in R.OPT_IN_SOURCES and r["source"] != "megaglest"]
    assert {r["source"] for r in wide_rows} == {"gcin", "openttd", "redeclipse"}
    assert all(r["split"] == "train" for r in wide_rows)
    assert {r["voice"] for r in wide_rows if r["source"] == "gcin"} == {"gcin-zh5"}
    assert {r["voice"] for r in wide_rows if r["source"] == "redeclipse"} >= {
        "ambience",
        "voices",
        "effects",
    }
    assert "| speech | gcin | yes |" in md and "| noise | openttd | yes |" in md
    # training hears them only when a config opts in
    from training.data import DataConfig, list_sources

    def sources(cfg):
        speech, noise = list_sources(cfg, "train")
        return {Path(p).parts[-2] for p in [*speech, *noise]}

    assert not sources(DataConfig(corpus=str(root))) & set(R.OPT_IN_SOURCES)
    assert sources(DataConfig(corpus=str(root), opt_in=("gcin", "openttd"))) & {
        "gcin",
        "openttd",
        "redeclipse",
    } == {"gcin", "openttd"}
    with pytest.raises(UserError, match="opt_in"):
        list_sources(DataConfig(corpus=str(root), opt_in=("flightgear",)), "train")


def test_more_noise_families():
    f = R.more_noise_family
    base = Path("usr/share/games/megaglest")
    assert f(base / "tilesets/spring/sounds/rain.ogg") == "ambience"
    assert f(base / "data/core/water_sounds/splash2.wav") == "ambience"
    units = base / "techs/megapack/factions/tech/units"
    assert f(units / "archer/sounds/archer_select3.wav") == "voices"
    assert f(base / "techs/megapack/commondata/sounds/guard_die1.wav") == "voices"
    assert f(base / "techs/megapack/commondata/sounds/worker_mine2.wav") == "effects"
    assert f(base / "techs/megapack/factions/tech/music/tech.ogg") == "music"
    # the name's pattern decides before the place
    assert f(base / "tilesets/spring/sounds/wolf_attack.wav") == "voices"
