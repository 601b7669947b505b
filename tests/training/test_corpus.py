import json
from collections import defaultdict

import numpy as np
import pytest

from training import corpus as C
from training import corpus_plan as P
from training.noise_synth import FAMILIES, make
from training.text import sentences


def test_sentences_distinct_and_deterministic():
    s = sentences(C.N_SENTENCES, seed=1)
    assert len(set(s)) == C.N_SENTENCES >= 1000
    assert s == sentences(C.N_SENTENCES, seed=1)
    words = {w.strip(".,?!'").lower() for x in s for w in x.split()}
    assert len(words) > 400


def test_sentence_ranges_are_disjoint():
    ranges = [set(range(*C.SENTENCE_SPLIT[s])) for s in C.SPLITS]
    assert not (ranges[0] & ranges[1]) and not (ranges[0] & ranges[2])
    assert not (ranges[1] & ranges[2])


def test_noise_families_are_distinct_and_clean(tmp_path):
    assert len(FAMILIES) >= 15
    spp = tmp_path / "s.flac"
    import soundfile as sf

    from tests.conftest import speechlike

    sf.write(spp, speechlike(3.0), 16000)
    rng = np.random.default_rng(0)
    for fam in FAMILIES:
        x = make(fam, 2.0, 16000, rng, speech=["s.flac"], root=tmp_path)
        assert x.shape == (32000,) and np.all(np.isfinite(x)) and np.max(np.abs(x)) <= 0.91
        assert np.std(x) > 1e-3, fam


def test_asterisk_prompts_never_cross_splits(tmp_path, monkeypatch):
    fake = tmp_path / "unpacked"
    names = [f"prompt{i:03d}.g722" for i in range(300)]
    for lang in ("en", "fr", "es"):
        d = fake / lang / "usr/share/asterisk/sounds" / lang
        d.mkdir(parents=True)
        for n in names:
            (d / n).write_bytes(b"")
    monkeypatch.setattr(P, "fetch_deb", lambda name, dest: name)
    monkeypatch.setattr(P, "unpack_deb", lambda deb, dest: fake / deb.split("-")[3])
    import random

    jobs = P.plan_asterisk(C.CorpusConfig(), tmp_path, 1.0, random.Random(0))
    where = defaultdict(set)
    for j in jobs:
        for p in j["prompts"]:
            where[p].add(j["split"])
    assert all(len(s) == 1 for s in where.values())
    es_splits = {j["split"] for j in jobs if j["source"] == "asterisk-es"}
    assert "train" not in es_splits  # the held-out recorded voice


@pytest.mark.slow
def test_mini_build_split_hygiene_and_resume(tmp_path):
    cfg = C.CorpusConfig(
        out=str(tmp_path / "c"),
        hours=0.03,
        noise_hours=0.02,
        workers=1,
        use_piper=False,
        use_asterisk=False,
        use_real_noise=False,
        use_real_speech=False,
    )
    root = C.build(cfg)
    rows = C.load_manifest(root)
    speech = [r for r in rows if r["kind"] == "speech"]
    noise = [r for r in rows if r["kind"] == "noise"]
    assert {r["split"] for r in speech} == {"train", "valid", "test"}
    texts = defaultdict(set)
    voices = defaultdict(set)
    for r in speech:
        texts[r["split"]] |= set(r["text_ids"])
        voices[r["split"]].add(r["voice"])
    assert not texts["train"] & texts["test"] and not texts["train"] & texts["valid"]
    assert not texts["valid"] & texts["test"]
    assert not voices["train"] & voices["test"]  # test voices are unseen
    assert len({r["voice"] for r in noise if r["split"] == "train"}) >= 15
    hashes = defaultdict(set)
    for r in noise:
        hashes[r["split"]].add(r["sha1"])
    assert not hashes["train"] & hashes["test"]
    summary = json.loads((root / "summary.json").read_text())
    assert summary["total_speech_hours"] > 0 and (root / "summary.md").exists()
    # resume: a second build reuses every file and gives the same manifest
    before = (root / "manifest.jsonl").read_text()
    C.build(cfg)
    assert (root / "manifest.jsonl").read_text() == before
    with pytest.raises(C.UserError, match="other settings"):
        C.build(
            C.CorpusConfig(
                out=str(tmp_path / "c"),
                hours=0.5,
                use_piper=False,
                use_asterisk=False,
                use_real_noise=False,
                use_real_speech=False,
            )
        )
