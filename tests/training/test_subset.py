"""`hushlab corpus subset`: a portable slice that keeps sources' shares, never takes the test
split, cuts long files, and renders the stored validation mixtures exactly as the full corpus."""

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import load_script
from training import corpus as C
from training.data import render_mixture

SR = 16000


def _write(root, rel, seconds, seed):
    x = np.random.default_rng(seed).uniform(-0.3, 0.3, int(seconds * SR)).astype(np.float32)
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(root / rel), x, SR, subtype="PCM_16")
    return {"path": rel, "duration": seconds}


@pytest.fixture
def fake_corpus(tmp_path):
    root = tmp_path / "full"
    rows, k = [], 0
    for split in ("train", "valid", "test"):
        for source, n_voices in (("tts", 6), ("recorded", 2)):
            for v in range(n_voices):
                for i in range(3):
                    k += 1
                    r = _write(root, f"speech/{split}/{source}/{v}_{i}.flac", 8.0, k)
                    rows.append(
                        r
                        | {
                            "kind": "speech",
                            "source": source,
                            "voice": f"{source}{v}",
                            "split": split,
                        }
                    )
        for fam in ("hum", "babble", "rain"):
            k += 1
            r = _write(root, f"noise/{split}/synthetic/{fam}_000.flac", 20.0, k)
            rows.append(r | {"kind": "noise", "source": "synthetic", "voice": fam, "split": split})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    valid_s = [r["path"] for r in rows if r["split"] == "valid" and r["kind"] == "speech"]
    valid_n = [r["path"] for r in rows if r["split"] == "valid" and r["kind"] == "noise"]
    mixes = []
    for p in range(4):
        for snr in (-5.0, 5.0):
            mixes.append(
                {
                    "speech": valid_s[p],
                    "noise": valid_n[p % 3],
                    "noise_offset": 40000 + p,
                    "snr": snr,
                    "level": -25.0,
                    "n_samples": 32000,
                    "id": f"valid{p:04d}_snr{snr:+.0f}",
                }
            )
    (root / "mixtures").mkdir()
    (root / "mixtures" / "valid.json").write_text(
        json.dumps({"key": {"n": 4, "snrs": [-5.0, 5.0]}, "mixtures": mixes})
    )
    return root


def test_subset_keeps_shares_skips_test_and_renders_valid_identically(fake_corpus, tmp_path):
    dst = tmp_path / "slice"
    s = C.subset(
        fake_corpus,
        dst,
        speech_hours=48 / 3600,
        noise_hours=30 / 3600,
        valid_pairs=3,
        max_file_seconds=4.0,
    )
    rows = C.load_manifest(dst)
    assert all(r["split"] != "test" for r in rows)
    train = [r for r in rows if r["split"] == "train"]
    speech = [r for r in train if r["kind"] == "speech"]
    # sources keep their share (tts 6 voices : recorded 2), voices are spread before repeated
    tts = sum(r["duration"] for r in speech if r["source"] == "tts")
    rec = sum(r["duration"] for r in speech if r["source"] == "recorded")
    assert tts == pytest.approx(36, abs=4) and rec == pytest.approx(12, abs=4)
    assert len({r["voice"] for r in speech if r["source"] == "tts"}) == 6
    for r in train:  # long files were cut to the limit, and the manifest says so
        assert r["duration"] <= 4.0 and sf.info(str(dst / r["path"])).duration == pytest.approx(
            r["duration"], abs=1e-3
        )
    assert len({r["voice"] for r in train if r["kind"] == "noise"}) == 3
    full = json.loads((fake_corpus / "mixtures" / "valid.json").read_text())["mixtures"][:6]
    part = json.loads((dst / "mixtures" / "valid.json").read_text())
    assert part["key"]["n"] == 3 and len(part["mixtures"]) == 6
    for a, b in zip(full, part["mixtures"], strict=True):
        for x, y in zip(render_mixture(a, fake_corpus), render_mixture(b, dst), strict=True):
            np.testing.assert_array_equal(x, y)
    assert s["subset_of"]["max_file_seconds"] == 4.0
    with pytest.raises(C.UserError, match="not empty"):
        C.subset(fake_corpus, dst, 0.01, 0.01)


def test_subset_requantises_training_files_only(fake_corpus, tmp_path):
    """``bits`` keeps that many significant bits of training audio (smaller FLACs, rounding noise
    about 6 dB a bit under full scale) and copies validation files bit for bit."""
    full = tmp_path / "full16"
    C.subset(fake_corpus, full, 48 / 3600, 30 / 3600, valid_pairs=3)
    dst = tmp_path / "slice9"
    s = C.subset(fake_corpus, dst, 48 / 3600, 30 / 3600, valid_pairs=3, bits=9)
    assert s["subset_of"]["bits"] == 9
    rows = C.load_manifest(dst)
    train = [r for r in rows if r["split"] == "train"]
    assert {r["path"] for r in train} == {
        r["path"] for r in C.load_manifest(full) if r["split"] == "train"
    }
    for r in rows:
        y, _ = sf.read(str(dst / r["path"]), dtype="int16")
        x, _ = sf.read(str(full / r["path"]), dtype="int16")
        if r["split"] == "train":
            assert np.all(y % 128 == 0)  # the low 7 bits are gone
            assert np.max(np.abs(y.astype(int) - x)) <= 64
            assert r["sha1"] == C.corpus_sources._sha1(dst / r["path"])
        else:
            np.testing.assert_array_equal(x, y)
    size = lambda root, split: sum(  # noqa: E731
        (root / r["path"]).stat().st_size for r in rows if r["split"] == split
    )
    assert size(dst, "train") < 0.75 * size(full, "train")
    with pytest.raises(C.UserError, match="bits"):
        C.subset(fake_corpus, tmp_path / "bad", 0.01, 0.01, bits=3)


def test_gpu_pack_fits_every_call_and_keeps_the_manifest_last(fake_corpus, tmp_path):
    """scripts/gpu_pack.py: packs under the per-call budget, the last one holding the manifest,
    mixtures and validation files; together they restore the slice."""
    import tarfile

    gp = load_script("gpu_pack")
    slice_ = tmp_path / "data" / "corpus"
    C.subset(fake_corpus, slice_, 48 / 3600, 60 / 3600, valid_pairs=3)
    sizes = [gp.tree_bytes(u) for u in gp.units(slice_)[0]]
    budget = int(max(sizes) * 1.5)
    packs = gp.plan(slice_, budget, budget)
    assert len(packs) >= 2
    last = {p.name for p in packs[-1]}
    assert {"manifest.jsonl", "mixtures"} <= last
    for i, members in enumerate(packs):
        path = tmp_path / f"pack{i}.tar"
        with tarfile.open(path, "w") as tar:
            for m in members:
                tar.add(m, arcname=str(m.relative_to(slice_.parent)))
        assert path.stat().st_size <= budget + 10240  # the tar file's final record
        with tarfile.open(path) as tar:
            tar.extractall(tmp_path / "restored", filter="data")
    restored = sorted(
        p.relative_to(tmp_path / "restored" / "corpus")
        for p in (tmp_path / "restored" / "corpus").rglob("*")
        if p.is_file()
    )
    assert restored == sorted(p.relative_to(slice_) for p in slice_.rglob("*") if p.is_file())
    with pytest.raises(SystemExit, match="does not fit"):
        gp.plan(slice_, max(sizes) - 1, budget)


def test_subset_carries_the_real_valid_mixtures(mini_corpus, tmp_path):
    """A slice for a remote GPU keeps real-valid (checkpoints are chosen there) and real-voices,
    never the test splits, and renders those mixtures exactly as the full corpus does."""
    src = tmp_path / "full"
    shutil.copytree(mini_corpus, src)
    from training.data import DataConfig, load_or_make_mixtures

    for split in ("valid", "real-valid", "real-voices"):
        load_or_make_mixtures(DataConfig(corpus=str(src)), split, 2)
    dst = tmp_path / "slice"
    C.subset(src, dst, speech_hours=0.01, noise_hours=0.005, valid_pairs=2)
    rows = C.load_manifest(dst)
    assert {r["split"] for r in rows} == {"train", "valid", "real-valid", "real-voices"}
    assert len({r["path"] for r in rows}) == len(rows)  # real-valid speech once, for both
    for split in ("valid", "real-valid", "real-voices"):
        mixes = json.loads((dst / "mixtures" / f"{split}.json").read_text())["mixtures"]
        full = json.loads((src / "mixtures" / f"{split}.json").read_text())["mixtures"]
        assert len(mixes) == 6
        for m, f in zip(mixes, full[:6], strict=True):
            a, _ = render_mixture(m, dst)
            b, _ = render_mixture(f, src)
            np.testing.assert_allclose(a, b, atol=1e-4)


def test_gpu_pack_restore_and_away(fake_corpus, tmp_path, monkeypatch):
    """Weights named with --restore ride in the packs under restore/<path>; --away and --restore
    paths are not counted as tree that travels with every call."""
    import subprocess
    import tarfile

    gp = load_script("gpu_pack")
    repo = tmp_path / "repo"
    (repo / "models" / "shipped" / "a").mkdir(parents=True)
    (repo / "models" / "shipped" / "a" / "model.safetensors").write_bytes(b"w" * 300_000)
    (repo / "models" / "shipped" / "b.bin").write_bytes(b"x" * 200_000)
    (repo / "code.py").write_text("print(1)\n")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "."], cwd=repo, check=True)
    assert gp.tracked_bytes(repo) == 500_009
    assert gp.tracked_bytes(repo, ["models/shipped"]) == 9
    assert gp.tracked_bytes(repo, ["models/shipped/a/model.safetensors"]) == 200_009
    slice_ = repo / ".gpudata" / "corpus"
    C.subset(fake_corpus, slice_, 48 / 3600, 60 / 3600, valid_pairs=3)
    monkeypatch.chdir(repo)
    gp.main(
        [str(slice_), "--restore", "models/shipped/a/model.safetensors", "--away", "models/shipped"]
    )
    names = set()
    for pack in sorted((repo / ".gpudata").glob("pack*.tar")):
        with tarfile.open(pack) as tar:
            names |= set(tar.getnames())
    assert "restore/models/shipped/a/model.safetensors" in names
    assert "corpus/manifest.jsonl" in names
