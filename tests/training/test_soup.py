"""training.soup: the weighted mean of checkpoints of one model, what its metadata records, and
clear refusals (one checkpoint, another model, bad weights); the cards training.ship writes for a
soup and for noise weights."""

import pytest
import torch

from models.checkpoint import CheckpointError, load_checkpoint, read_metadata, save_checkpoint
from models.gcrn import GCRN, GCRNConfig
from training.soup import main, make_soup

SMALL = GCRNConfig(channels=(4, 4, 8, 8, 16))


def _ck(path, seed, cfg=SMALL, step=None):
    torch.manual_seed(seed)
    m = GCRN(cfg)
    for b in m.buffers():  # BatchNorm statistics and counters differ between ingredients
        if b.is_floating_point():
            b.normal_()
        else:
            b.fill_(seed)
    return save_checkpoint(
        path,
        m,
        train_config={"name": f"run{seed}", "variant": "baseline"},
        metrics={"step": step, "score": 2.0 + seed},
    )


def test_soup_is_the_weighted_mean_of_weights_and_statistics(tmp_path):
    paths = [_ck(tmp_path / f"{s}.safetensors", s, step=100 * s) for s in (1, 2, 3)]
    states = [load_checkpoint(p)[0].state_dict() for p in paths]
    model, _, records = make_soup(paths)
    for k, v in model.state_dict().items():
        if v.is_floating_point():
            want = sum(s[k].double() for s in states) / 3
            assert torch.allclose(v.double(), want, atol=1e-6), k
        else:  # BatchNorm's batch counter: the largest
            assert int(v) == 3, k
    assert [r["weight"] for r in records] == pytest.approx([1 / 3] * 3)
    assert [r["step"] for r in records] == [100, 200, 300]
    weighted, _, rec = make_soup(paths[:2], [3.0, 1.0])
    k = next(iter(states[0]))
    assert torch.allclose(
        weighted.state_dict()[k].double(),
        0.75 * states[0][k].double() + 0.25 * states[1][k].double(),
        atol=1e-6,
    )
    assert [r["weight"] for r in rec] == [0.75, 0.25]


def test_soup_cli_writes_a_checkpoint_that_lists_its_ingredients(tmp_path, capsys):
    a, b = _ck(tmp_path / "a.safetensors", 1), _ck(tmp_path / "b.safetensors", 2)
    out = tmp_path / "soup" / "best.safetensors"
    assert main([str(out), str(a), str(b)]) == 0
    meta = read_metadata(out)
    assert [r["path"] for r in meta["extra"]["soup"]] == [str(a), str(b)]
    assert meta["train_config"]["name"] == "run1" and meta["metrics"] == {}
    load_checkpoint(out)  # loads as any checkpoint
    assert "digest" in capsys.readouterr().out


def test_soup_refuses_what_cannot_be_averaged(tmp_path, capsys):
    a = _ck(tmp_path / "a.safetensors", 1)
    other = _ck(tmp_path / "c.safetensors", 2, GCRNConfig(channels=(4, 4, 8, 8, 8)))
    with pytest.raises(CheckpointError, match="at least two"):
        make_soup([a])
    with pytest.raises(CheckpointError, match="not the same model"):
        make_soup([a, other])
    with pytest.raises(CheckpointError, match="2 weights for 1|1 weights for 2"):
        make_soup([a, a], [1.0])
    with pytest.raises(CheckpointError, match=">= 0"):
        make_soup([a, a], [1.0, -1.0])
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / "s.safetensors"), str(a), str(tmp_path / "missing.safetensors")])
    assert exc.value.code == 2 and "missing.safetensors" in capsys.readouterr().err
    assert not (tmp_path / "s.safetensors").exists()


def test_a_soup_card_lists_the_ingredients_and_their_training_time(tmp_path):
    import json

    from training.ship import write_card

    paths = []
    for s, wall in ((1, 1800.0), (2, 3600.0)):
        run = tmp_path / f"run{s}"
        run.mkdir()
        (run / "history.jsonl").write_text(json.dumps({"step": 10, "wall_s": wall}) + "\n")
        paths.append(_ck(run / "latest.safetensors", s, step=10 * s))
    out = tmp_path / "soup" / "best.safetensors"
    assert main([str(out), *map(str, paths)]) == 0
    card = write_card(out.parent, "baseline", out, None, hardware="this CPU")
    assert "the equal-weight mean of the weights" in card
    assert "1.50 h of training time on this CPU" in card
    assert f"| `{paths[1]}` | run2 | 20 | 4.000 | 0.500 |" in card
    assert "Validation during training" not in card


def test_a_card_names_the_noise_weights():
    from training.ship import _data_lines

    text = "\n".join(_data_lines({"data": {"noise_weights": {"music": 0.33}}}, {}))
    assert "noise heard music x0.33" in text
    assert "noise heard" not in "\n".join(_data_lines({"data": {}}, {}))
