"""Every recipe in ``training/configs`` runs from a clone: it parses (``extends`` resolved), starts
from nothing or from a shipped model by name (found, and its config fits), names only corpus
stages that exist, paces its schedule by steps, and trains one step on the miniature corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.teacher import TeacherConfig
from training.train import TrainConfig, init_config_fits

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"
RECIPES = sorted(CONFIGS.glob("*.toml"))
TEACHERS = [p for p in RECIPES if p.stem.startswith("teacher")]
MODELS = [p for p in RECIPES if p not in TEACHERS]


def test_the_folder_holds_recipes_not_records():
    import tomllib

    names = {p.stem for p in RECIPES}
    assert {
        "tiny",
        "baseline",
        "baseline-gpu",
        "kd",
        "pretrain",
        "fusion",
        "teacher",
        "teacher-causal",
    } <= names
    assert len(RECIPES) <= 14
    for p in RECIPES:
        d = tomllib.loads(p.read_text())
        assert "max_minutes" not in d and "time_schedule" not in d, f"{p.name}: paced by minutes"
        for key in ("init", "distil_from"):
            assert "/" not in d.get(key, ""), f"{p.name}: {key} names a file a clone lacks"


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_model_recipe_resolves(path):
    from models.checkpoint import load_checkpoint, resolve_model_path, shipped_models
    from models.gcrn import GCRNConfig
    from training.corpus_real import OPT_IN_SOURCES

    cfg = TrainConfig.from_toml(path)
    mine = GCRNConfig.from_dict(cfg.model_config).to_dict()
    if cfg.init:
        assert cfg.init in shipped_models(), f"{path.name}: init is not a shipped model's name"
        _, meta = load_checkpoint(resolve_model_path(cfg.init))
        assert init_config_fits(meta["config"], mine), f"{path.name}: {cfg.init} does not fit"
    assert set(cfg.data.opt_in) <= set(OPT_IN_SOURCES)
    if cfg.variant != "baseline":
        from models.teacher import Teacher

        t = Teacher(cfg.teacher or None)
        assert t.has_stats() and (t.causal or cfg.variant != "fusion")
        assert mine["ssl_dim"] == t.dim


@pytest.mark.parametrize("path", TEACHERS, ids=lambda p: p.stem)
def test_teacher_recipe_resolves(path):
    from models.teacher import resolve_teacher

    cfg = TeacherConfig.from_toml(path)
    for spec in (cfg.init, cfg.distil_from):
        if spec:
            assert Path(resolve_teacher(spec)).is_dir(), f"{path.name}: {spec} is not shipped"


def _one_step(mini_corpus, tmp_path, *extra):
    return [
        f"out='{tmp_path / 'run'}'",
        f"data.corpus='{mini_corpus}'",
        "steps=1",
        "warmup_steps=1",
        *extra,
    ]


@pytest.mark.slow
@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_model_recipe_trains_one_step(path, mini_corpus, tmp_path, monkeypatch):
    from training.train import train

    monkeypatch.setenv("HUSHLAB_CACHE", str(tmp_path / "cache"))
    ov = _one_step(
        mini_corpus,
        tmp_path,
        "batch_size=2",
        "num_workers=0",
        "threads=0",
        "valid_every=1",
        "valid_mixtures=1",
        "valid_pesq=1",
        "progress=false",
        "data.seconds=1.0",
    )
    cfg = TrainConfig.from_toml(path, ov)
    out = train(cfg)
    assert (out / "best.safetensors").exists() and (out / "last.pt").exists()


@pytest.mark.slow
@pytest.mark.parametrize("path", TEACHERS, ids=lambda p: p.stem)
def test_teacher_recipe_trains_one_step(path, mini_corpus, tmp_path):
    from training.teacher import train_teacher

    ov = _one_step(
        mini_corpus,
        tmp_path,
        "batch_size=2",
        "seconds=1.0",
        "num_negatives=5",
        "mask_length=3",
        "valid_every=1",
        "valid_clips=1",
        "stats_clips=2",
        "progress=false",
    )
    ov = [o for o in ov if not o.startswith("data.")] + [f"corpus='{mini_corpus}'"]
    cfg = TeacherConfig.from_toml(path, ov)
    out = train_teacher(cfg)
    assert (Path(out) / "model.safetensors").exists()
