"""The Wav2Vec2 teacher wrapper: loading through a save_pretrained folder, frame alignment with
the STFT, the embedding cache, normalisation statistics and clear errors."""

import numpy as np
import pytest
import torch

from dsp.errors import UserError
from dsp.stft import DEFAULT_GEOMETRY, stft
from models.teacher import Teacher, n_frames
from tests.conftest import TINY_TEACHER
from training.teacher import COMPACT

TINY = {**COMPACT, **TINY_TEACHER}


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    """A saved pre-training model, exactly as `hushlab train-teacher` writes it."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForPreTraining

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("teacher")
    Wav2Vec2ForPreTraining(Wav2Vec2Config(**TINY)).save_pretrained(d)
    Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, do_normalize=True
    ).save_pretrained(d)
    return d


@pytest.fixture
def teacher(teacher_dir, tmp_path):
    return Teacher(teacher_dir, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("n", [400, 401, 719, 720, 721, 1039, 1040, 16000, 16319, 16320, 16321])
def test_frames_match_the_stft_around_window_boundaries(teacher, n):
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 0.1
    e = teacher.embed(x)
    spec = stft(torch.from_numpy(x)[None], DEFAULT_GEOMETRY)
    assert e.shape == (1, n_frames(n), 32) and spec.shape[1] == n_frames(n)


def test_frame_t_sees_the_same_samples_as_stft_frame_t(tmp_path):
    """Frame t of the conv front end covers samples [320 t, 320 t + 400), as STFT frame t: a
    change after that window leaves frames <= t alone and moves frame t + 1. (Checked on the
    layer-norm front end: wav2vec2-base's group norm spreads clip statistics over all frames.)"""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    model = Wav2Vec2Model(Wav2Vec2Config(**{**TINY, "feat_extract_norm": "layer"})).eval()
    x = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    t = 20
    y = x.copy()
    y[t * 320 + 400 :] += 1.0
    z = x.copy()
    z[t * 320 + 399] += 1.0  # the last sample of frame t's window
    with torch.no_grad():
        fx, fy, fz = (model.feature_extractor(torch.from_numpy(v)[None])[0].T for v in (x, y, z))
    assert torch.allclose(fx[: t + 1], fy[: t + 1]) and not torch.allclose(fx[t + 1], fy[t + 1])
    assert not torch.allclose(fx[t], fz[t]) and torch.allclose(fx[: t - 1], fz[: t - 1])


def test_layers_batches_and_default_layer(teacher):
    x = np.random.default_rng(1).standard_normal((3, 8000)).astype(np.float32)
    h = teacher.hidden_states(x)
    assert h.shape == (3, 3, n_frames(8000), 32)  # layers 0..2
    assert teacher.layer == 2
    assert torch.allclose(teacher.embed(x), h[2], atol=1e-5)
    assert torch.allclose(teacher.embed(x, layer=1), h[1], atol=1e-5)
    assert torch.allclose(teacher.embed(x[1])[0], h[2][1], atol=1e-4)  # batching changes nothing


def test_cache_hits_and_keys(teacher, tmp_path):
    x = np.random.default_rng(2).standard_normal(6400).astype(np.float32)
    a = teacher.embed_cached(x)
    files = list((tmp_path / "cache").rglob("*.npy"))
    assert len(files) == 1
    np.testing.assert_allclose(a, teacher.embed(x)[0].numpy(), atol=1e-5)
    # a hit reads the file (prove it by planting a marker value)
    planted = np.full_like(np.load(files[0]), 7)
    np.save(files[0], planted)
    assert np.all(teacher.embed_cached(x) == 7)
    teacher.embed_cached(x, layer=1)  # another layer: another entry
    teacher.embed_cached(x * 0.5 + 0.01)  # other audio: another entry
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 3
    files[0].write_bytes(b"broken")  # a corrupt entry is recomputed, not fatal
    np.testing.assert_allclose(teacher.embed_cached(x), a, atol=2e-3)


def test_statistics_round_trip_and_normalise(teacher_dir, tmp_path):
    t = Teacher(teacher_dir, cache_dir=tmp_path)
    rng = np.random.default_rng(3)
    clips = [rng.standard_normal(8000).astype(np.float32) for _ in range(6)]
    res = t.compute_stats(clips, progress=False)
    assert res["frames"] == 6 * n_frames(8000)
    again = Teacher(teacher_dir, cache_dir=tmp_path)  # read back from the teacher folder
    z = again.embed(np.concatenate(clips[:2]), normalise=True)
    assert abs(float(z.mean())) < 0.3 and 0.5 < float(z.std()) < 1.5


def test_errors_are_clear(teacher_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="cannot load teacher"):
        Teacher("no-such-org/no-such-model")
    with pytest.raises(UserError, match="layers 0..2"):
        Teacher(teacher_dir, layer=5)
    t = Teacher(teacher_dir, cache_dir=tmp_path / "c")
    with pytest.raises(UserError, match="shorter than one 25 ms frame"):
        t.embed(np.zeros(300, np.float32))
    with pytest.raises(UserError, match="NaN"):
        t.embed(np.full(800, np.nan, np.float32))
    import shutil

    bare = tmp_path / "bare"  # a teacher folder without statistics (others may have added some)
    shutil.copytree(teacher_dir, bare)
    (bare / "hushlab_stats.safetensors").unlink(missing_ok=True)
    fresh = Teacher(bare, cache_dir=tmp_path / "other")
    assert not fresh.has_stats()
    with pytest.raises(UserError, match="no normalisation statistics"):
        fresh.embed(np.zeros(800, np.float32), normalise=True)


def test_a_teacher_with_another_frame_rate_is_refused(tmp_path):
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    cfg = {**TINY, "conv_stride": [5, 2, 2, 2, 2, 2, 1]}  # 10 ms frames
    Wav2Vec2Model(Wav2Vec2Config(**cfg)).save_pretrained(tmp_path)
    with pytest.raises(UserError, match="only 20 ms"):
        Teacher(tmp_path)


def _resaved(src, dst, **changes):
    """A copy of a teacher folder with fields of its config.json changed."""
    import json
    import shutil

    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    (dst / "config.json").write_text(json.dumps({**cfg, **changes}))
    return dst


def test_identity_ignores_the_library_version_and_bookkeeping(teacher_dir, tmp_path):
    """A new ``transformers`` release (another version string, new bookkeeping fields) keeps a
    teacher's digest: it is its weights and the config fields that change what it computes."""
    a = Teacher(teacher_dir, cache_dir=tmp_path)
    b = Teacher(
        _resaved(teacher_dir, tmp_path / "b", transformers_version="99.0.0", some_new_field=3),
        cache_dir=tmp_path,
    )
    assert a.digest == b.digest and a.weights_digest == b.weights_digest
    # a field that changes the computation changes the digest, not the weights digest
    c = Teacher(_resaved(teacher_dir, tmp_path / "c", hidden_act="relu"), cache_dir=tmp_path)
    assert c.digest != a.digest and c.weights_digest == a.weights_digest
    assert "the same weights with another config" in c.mismatch(a.describe())


def test_records_of_the_first_form_are_still_recognised(teacher_dir, tmp_path):
    """Checkpoints written before the identity above record sha1(config.to_dict(), weights),
    with the version that was installed: still the same teacher, whatever is installed now."""
    import hashlib
    import json

    import models.teacher as mt

    d = _resaved(teacher_dir, tmp_path / "old", transformers_version="5.24.0")
    t = Teacher(d, cache_dir=tmp_path)
    cfg = {**t.model.config.to_dict(), "transformers_version": "5.24.0"}
    h = hashlib.sha1(json.dumps(cfg, sort_keys=True, default=str).encode())
    for k, v in sorted(t.model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().float().numpy().tobytes())
    old = h.hexdigest()
    assert old[:16] != t.digest[:16]
    assert t.matches(old[:16]) and t.matches(t.digest[:16]) and not t.matches("0" * 16)
    assert old in mt.legacy_digests(t.model, d)


def test_a_teacher_with_other_weights_is_named_as_such(teacher_dir, tmp_path):
    from transformers import Wav2Vec2Config, Wav2Vec2ForPreTraining

    torch.manual_seed(1)
    other = tmp_path / "other"
    Wav2Vec2ForPreTraining(Wav2Vec2Config(**TINY)).save_pretrained(other)
    a, b = Teacher(teacher_dir, cache_dir=tmp_path), Teacher(other, cache_dir=tmp_path)
    assert not b.matches(a.digest)
    msg = b.mismatch(a.describe())
    assert "different weights" in msg and a.digest[:16] in msg and b.digest[:16] in msg
    old_form = {"teacher": "teacher", "digest": "0123456789abcdef"}  # no weights digest
    assert "first form" in b.mismatch(old_form)
