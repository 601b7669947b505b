"""A shipped model can be remade from a clone with the commands on its card: the tiny chain (train
a recipe, ship it, score it) run twice from nothing gives the same scores, and the card written
from the run's record names that chain and stays short."""

from __future__ import annotations

import json
import shutil

import pytest

from app.cli import main as hushlab


def _stored_half_and_equal(src, shipped):
    """The shipped file stores float16 weights that load as the run's, to float16 precision."""
    import torch
    from safetensors import safe_open

    from models.checkpoint import load_checkpoint

    with safe_open(str(shipped), framework="pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} >= {torch.float16}
    a, _ = load_checkpoint(src)
    b, _ = load_checkpoint(shipped)
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert y.dtype == x.dtype and torch.allclose(x.float(), y.float(), rtol=1e-3, atol=1e-4), k


def _chain(corpus, root, k):
    from training.ship import main as ship
    from training.train import TrainConfig, train

    run = root / f"run{k}"
    cfg = TrainConfig.from_toml(
        "training/configs/tiny.toml", [f"out='{run}'", f"data.corpus='{corpus}'"]
    )
    train(cfg)
    report = root / f"eval{k}"
    model = run / "best.safetensors"
    args = ["eval", "noisy", str(model), "--corpus", str(corpus), "-n", "2", "--snrs=-5,5"]
    assert hushlab([*args, "--workers", "1", "--out", str(report)]) == 0
    summary = json.loads((report / "summary.json").read_text())["summary"][str(model)]
    dest = root / f"shipped{k}"
    assert ship([str(run), "tiny", "--dest", str(dest), "--eval", str(report)]) == 0
    _stored_half_and_equal(run / "best.safetensors", dest / "tiny" / "model.safetensors")
    return summary, (dest / "tiny" / "card.md").read_text()


@pytest.mark.slow
def test_the_tiny_chain_remade_twice_scores_the_same(mini_corpus, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(mini_corpus, corpus)
    first, card = _chain(corpus, tmp_path, 1)
    second, _ = _chain(corpus, tmp_path, 2)
    for snr in ("-5", "+5"):
        assert second[snr]["pesq"]["mean"] == pytest.approx(first[snr]["pesq"]["mean"], abs=0.02)
        assert second[snr]["stoi"]["mean"] == pytest.approx(first[snr]["stoi"]["mean"], abs=0.005)
        assert second[snr]["si_sdr"]["mean"] == pytest.approx(first[snr]["si_sdr"]["mean"], abs=0.1)
    lines = card.splitlines()
    assert len(lines) < 60
    assert "git clone" in card and "hushlab corpus build" in card
    assert any(
        x.startswith(".venv/bin/hushlab train --config training/configs/tiny.toml") for x in lines
    )
    assert "Seed 0; 40 steps of 4 x 1.0 s" in card
    assert "## Scores" in card and f"| test | 2 | -5 | {first['-5']['pesq']['mean']:.3f} |" in card
    # a model out of a chain no recipe remakes: its card says so and how its scores are remade
    from training.ship import main as ship

    gone = tmp_path / "gone"
    args = [str(gone), "tiny", "--restate", "--dest", str(tmp_path / "shipped1")]
    why = "Fine-tuned by rounds whose files are gone."
    assert ship([*args, "--provenance", why, "--eval", str(tmp_path / "eval1")]) == 0
    restated = (tmp_path / "shipped1" / "tiny" / "card.md").read_text()
    assert "## Provenance" in restated and why in restated and "Remake it" not in restated
    assert ".venv/bin/hushlab eval noisy" in restated and "time not recorded" in restated
