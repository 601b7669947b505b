"""The SSL-informed variants' loss hooks (kd, pretrain, fusion) in the one training loop."""

import json

import pytest
import torch

from models.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from models.registry import build_model
from training.data import TrainMixtures
from training.losses import make_hook
from training.train import TrainConfig, train

SSL_CFG = {"channels": [8, 8, 8, 8, 16], "ssl_dim": 256}


def _batch(dns_tree, n=4):
    cfg = TrainConfig.from_toml("training/configs/tiny.toml")
    cfg.data.clean_dir = str(dns_tree / "clean")
    cfg.data.noise_dir = str(dns_tree / "noise")
    cfg.data.valid_fraction = 0.3
    ds = TrainMixtures(cfg.data, n, seed=3)
    return [torch.stack(t) for t in zip(*[ds[i] for i in range(n)], strict=True)]


@pytest.mark.parametrize(
    "variant,extra",
    [
        ("kd", {"distill_head": True}),
        ("pretrain", {"distill_head": True}),
        ("fusion", {"fusion": True}),
    ],
)
def test_each_hooks_ssl_term_falls(dns_tree, variant, extra):
    torch.manual_seed(0)
    model = build_model("gcrn", {**SSL_CFG, **extra}).train()
    hook = make_hook(variant, w_ssl=1.0, pretrain_fraction=1.0, total_steps=100)
    batch = _batch(dns_tree)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = last = None
    key = "l_ssl" if variant != "fusion" else "l_cplx"
    for step in range(25):
        hook.step = step
        loss, logs = hook.compute_loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = logs[key] if first is None else first
        last = logs[key]
        assert logs["teacher_ms"] > 0
    assert last < 0.8 * first, (variant, first, last)
    if variant == "pretrain":  # stage 1: the decoder is not trained
        assert logs["stage"] == 1
        assert all(p.grad is None for p in model.decoders.parameters())
    if variant == "fusion":  # the teacher's embedding of the input reaches the output
        assert model.fuse_proj.weight.grad is not None and model.fuse_logit.grad is not None


def test_pretrain_switches_to_enhancement(dns_tree):
    model = build_model("gcrn", {**SSL_CFG, "distill_head": True})
    hook = make_hook("pretrain", pretrain_fraction=0.5, total_steps=10)
    batch = _batch(dns_tree, 2)
    hook.step = 4
    l1, logs1 = hook.compute_loss(model, batch)
    hook.step = 5
    l2, logs2 = hook.compute_loss(model, batch)
    assert (logs1["stage"], logs2["stage"]) == (1, 2)
    assert l1.item() == pytest.approx(logs1["l_ssl"], rel=1e-5)
    assert l2.item() == pytest.approx(logs2["l_cplx"] + logs2["l_mag"], rel=1e-4)


def test_only_pretrain_has_a_first_stage():
    """The loop keeps no best checkpoint during a first stage; kd and fusion have none, so
    their first validations can be the best (they once could not: 30 % of a run was skipped)."""
    assert make_hook("pretrain", pretrain_fraction=0.3, total_steps=10).pretrain_steps == 3
    for variant in ("kd", "fusion"):
        assert make_hook(variant, pretrain_fraction=0.3, total_steps=10).pretrain_steps == 0


@pytest.mark.slow
def test_kd_run_from_a_baseline_records_its_teacher(dns_tree, tmp_path):
    torch.manual_seed(1)
    base = save_checkpoint(
        tmp_path / "base.safetensors", build_model("gcrn", SSL_CFG | {"ssl_dim": 0})
    )
    cfg = TrainConfig.from_toml("training/configs/tiny.toml")
    cfg.out = str(tmp_path / "kd")
    cfg.data.clean_dir = str(dns_tree / "clean")
    cfg.data.noise_dir = str(dns_tree / "noise")
    cfg.data.valid_fraction = 0.3
    cfg.variant, cfg.steps, cfg.valid_every, cfg.init = "kd", 6, 2, str(base)
    cfg.model_config = {**SSL_CFG, "distill_head": True}
    train(cfg)
    meta = read_metadata(tmp_path / "kd" / "best.safetensors")
    hist = [json.loads(x) for x in (tmp_path / "kd" / "history.jsonl").read_text().splitlines()]
    best = max(hist, key=lambda h: h["score"])["step"]
    assert meta["metrics"]["step"] == best  # any validation may be the best
    teacher = json.loads(meta["teacher"])
    assert teacher["variant"] == "kd" and teacher["teacher"] == "teacher" and teacher["dim"] == 256
    model, _ = load_checkpoint(tmp_path / "kd" / "best.safetensors")
    assert model.distill is not None
    rows = (tmp_path / "kd" / "train_log.csv").read_text().splitlines()
    assert rows[0].endswith("l_ssl,teacher_ms") and rows[1].split(",")[-1] != ""


@pytest.mark.slow
def test_model_card_names_the_teacher(dns_tree, tmp_path):
    from training.ship import write_card

    cfg = TrainConfig.from_toml("training/configs/tiny.toml")
    cfg.out = str(tmp_path / "kd")
    cfg.data.clean_dir = str(dns_tree / "clean")
    cfg.data.noise_dir = str(dns_tree / "noise")
    cfg.data.valid_fraction = 0.3
    cfg.variant, cfg.steps, cfg.valid_every, cfg.w_ssl = "kd", 4, 4, 0.25
    cfg.model_config = {**SSL_CFG, "distill_head": True}
    train(cfg)
    run = tmp_path / "kd"
    card = write_card(run, "kd", run / "best.safetensors", None)
    assert "Teacher: `teacher` (digest" in card and "w_ssl = 0.25" in card
    assert "dropped at inference" in card and "bidirectional" in card
    cfg.variant, cfg.out = "baseline", str(tmp_path / "b")
    cfg.model_config = {"channels": [8, 8, 8, 8, 16]}
    train(cfg)
    card = write_card(tmp_path / "b", "b", tmp_path / "b" / "best.safetensors", None)
    assert "Teacher: none" in card


def test_card_says_when_a_better_checkpoint_was_not_kept():
    from training.ship import _which_checkpoint

    hist = [{"step": 250, "score": 2.30}, {"step": 500, "score": 2.29}]
    assert "best validation score (PESQ + 0.1 x SI-SDR) at step 250" in _which_checkpoint(
        {"step": 250, "score": 2.30}, hist
    )
    text = _which_checkpoint({"step": 500, "score": 2.29}, hist)
    assert "checkpoint at step 500" in text and "step 250 scored 2.300 and was not kept" in text
