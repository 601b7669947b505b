"""The streaming teacher: its step equals its offline forward, the future never reaches the
past, and it saves, loads and pre-trains through the same code as any Wav2Vec2."""

import json

import numpy as np
import pytest
import torch
from transformers import Wav2Vec2Config

from models.causal_teacher import (
    HOP,
    WIN,
    CausalWav2Vec2Model,
    is_causal_config,
    make_causal_config,
)
from models.teacher import Teacher
from tests.conftest import TINY_TEACHER, tiny_teacher_config


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return CausalWav2Vec2Model(make_causal_config(Wav2Vec2Config(**TINY_TEACHER), 8)).eval()


def _offline(model, x):
    padded = torch.cat([torch.zeros(x.shape[0], WIN - HOP), x], dim=1)
    with torch.no_grad():
        return torch.stack(model(padded, output_hidden_states=True).hidden_states)


def test_step_equals_offline_forward(model):
    x = torch.randn(2, HOP * 40) * 0.1
    st = model.init_state(2)
    steps = []
    for i in range(40):
        e, st = model.step(x[:, i * HOP : (i + 1) * HOP], st)
        steps.append(e)
    assert torch.stack(steps, 2).shape == (3, 2, 40, 32)  # [L + 1, B, T, D]
    assert float((torch.stack(steps, 2) - _offline(model, x)).abs().max()) <= 1e-4
    with pytest.raises(ValueError, match="320 samples"):
        model.step(x[:, :100], model.init_state(2))


def test_future_samples_do_not_change_past_embeddings(model):
    x = torch.randn(1, HOP * 30)
    y = x.clone()
    y[:, HOP * 20 :] = torch.randn(1, HOP * 10)  # change everything from frame 20 on
    a, b = _offline(model, x), _offline(model, y)
    assert float((a[:, :, :20] - b[:, :, :20]).abs().max()) == 0.0
    assert float((a[:, :, 20:] - b[:, :, 20:]).abs().max()) > 1e-3


def test_level_does_not_change_embeddings(model):
    x = torch.randn(1, HOP * 10) * 0.1  # -20 dBFS
    a, b = _offline(model, x), _offline(model, x * 0.03)  # 30 dB quieter
    assert float((a - b).abs().max()) < 2e-2 * float(a.abs().max())


def test_saved_causal_teacher_loads_through_the_teacher_wrapper(model, tmp_path):
    model.save_pretrained(tmp_path / "t")
    cfg = json.loads((tmp_path / "t" / "config.json").read_text())
    assert cfg["hushlab_causal"] is True and cfg["causal_context"] == 8
    t = Teacher(tmp_path / "t", cache_dir=tmp_path / "cache")
    assert isinstance(t.model, CausalWav2Vec2Model) and t.causal and not t.do_normalize
    assert t.describe()["causal"] is True
    x = np.random.default_rng(0).standard_normal(HOP * 12 + WIN - HOP).astype(np.float32)
    e = t.embed(x)  # offline, through transformers' loading path
    with torch.no_grad():
        ref = model(torch.from_numpy(x)[None]).last_hidden_state
    np.testing.assert_allclose(e.numpy(), ref.numpy(), atol=1e-5)
    assert is_causal_config(t.model.config)
    with pytest.raises(ValueError, match="not a causal config"):
        CausalWav2Vec2Model(Wav2Vec2Config(**TINY_TEACHER))


@pytest.mark.slow
def test_causal_pretraining_runs_and_exports(mini_corpus, tmp_path):
    from training.teacher import train_teacher

    cfg = tiny_teacher_config(mini_corpus, tmp_path / "run", causal=True, causal_context=16)
    dest = train_teacher(cfg)
    t = Teacher(dest)
    assert t.causal and t.has_stats() and t.model.context == 16
    pre = json.loads((dest / "preprocessor_config.json").read_text())
    assert pre["do_normalize"] is False


def test_warm_start_copies_what_fits_and_refuses_a_stranger(tmp_path):
    from dsp.errors import UserError
    from training.teacher import TeacherConfig, build_pretraining_model, warm_start

    src = build_pretraining_model(TeacherConfig(model=TINY_TEACHER))
    src.save_pretrained(tmp_path / "bidir")
    causal = build_pretraining_model(TeacherConfig(model=TINY_TEACHER, causal=True))
    copied, kept = warm_start(causal, str(tmp_path / "bidir"))
    # everything but the causal front end's per-frame norms comes from the bidirectional teacher
    assert copied > 0 and kept > 0
    a = dict(causal.named_parameters())
    b = dict(src.named_parameters())
    name = "wav2vec2.encoder.layers.0.attention.q_proj.weight"
    assert torch.equal(a[name], b[name])
    wide = build_pretraining_model(
        TeacherConfig(model={**TINY_TEACHER, "hidden_size": 48, "conv_dim": [24] * 7})
    )
    wide.save_pretrained(tmp_path / "wide")
    with pytest.raises(UserError, match="another size"):
        warm_start(
            build_pretraining_model(TeacherConfig(model=TINY_TEACHER)), str(tmp_path / "wide")
        )


def test_distillation_from_a_bidirectional_teacher_lowers_its_term(mini_corpus, tmp_path):
    from dsp.errors import UserError
    from training.teacher import train_teacher

    src = train_teacher(tiny_teacher_config(mini_corpus, tmp_path / "src", steps=2))
    cfg = tiny_teacher_config(
        mini_corpus,
        tmp_path / "student",
        causal=True,
        causal_context=16,
        distil_from=str(src),
        init=str(src),
        steps=30,
        lr=3e-3,
        warmup_steps=1,
        valid_every=5,
    )
    dest = train_teacher(cfg)
    assert Teacher(dest).causal
    hist = [
        json.loads(x) for x in (tmp_path / "student" / "history.jsonl").read_text().splitlines()
    ]
    # the causal student moves towards what the bidirectional teacher computes
    assert hist[-1]["valid_distil"] < 0.95 * hist[0]["valid_distil"]
    # a teacher of another shape cannot be distilled from
    wide = tiny_teacher_config(
        mini_corpus,
        tmp_path / "wide",
        distil_from=str(src),
        model={**TINY_TEACHER, "hidden_size": 48},
    )
    with pytest.raises(UserError, match="layers"):
        train_teacher(wide)


def test_teacher_card_says_how_a_streaming_teacher_was_made():
    from training.ship_teacher import _curve_table, _variant_text

    text = _variant_text(
        {"causal": True, "causal_context": 64, "init": "teacher", "distil_from": "teacher"}
    )
    assert "1.28 s" in text and "Warm-started from `teacher`" in text and "regresses" in text
    assert _variant_text({}) == ""
    hist = [{"step": 250, "valid_contrastive": 3.5, "valid_accuracy": 0.2, "valid_distil": 0.8}]
    assert _curve_table(hist)[-1] == "| 250 | 3.500 | 0.200 | 0.800 |"
    del hist[0]["valid_distil"]
    assert "distillation" not in _curve_table(hist)[0]
