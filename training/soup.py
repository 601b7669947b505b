"""Average the weights of fine-tuned checkpoints into one model (a "model soup", Wortsman et al.
2022): checkpoints fine-tuned from the same start sit in one basin, and their mean often scores
above each of them at no inference cost.

    .venv/bin/python -m training.soup runs/soup/best.safetensors A.safetensors B.safetensors ...

Every ingredient must be the same model (name, config and teacher); weights and BatchNorm
statistics are averaged (``--weights`` for a weighted mean), integer buffers (BatchNorm's
batch counter) take the largest. The soup's metadata lists each ingredient - path, weights
digest, variant, step, validation score and weight - so that a card can say what it is.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from models.onnx_step import weights_digest


def make_soup(paths: list[str | Path], weights: list[float] | None = None):
    """-> (model holding the weighted mean of the checkpoints' weights, metadata of the first,
    ingredient records)."""
    if len(paths) < 2:
        raise CheckpointError("a soup needs at least two checkpoints")
    weights = [1.0] * len(paths) if weights is None else [float(w) for w in weights]
    if len(weights) != len(paths):
        raise CheckpointError(f"{len(weights)} weights for {len(paths)} checkpoints")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise CheckpointError("soup weights are >= 0 and not all zero")
    total = sum(weights)
    weights = [w / total for w in weights]
    first, meta0 = load_checkpoint(paths[0])
    key0 = (meta0["model"], meta0["config"], meta0["teacher"])
    state0 = first.state_dict()
    acc = {
        k: v.double() * weights[0] if v.is_floating_point() else v.clone()
        for k, v in state0.items()
    }
    records = [_record(paths[0], first, meta0, weights[0])]
    for path, w in zip(paths[1:], weights[1:], strict=True):
        model, meta = load_checkpoint(path)
        if (meta["model"], meta["config"], meta["teacher"]) != key0:
            raise CheckpointError(
                f"{path}: not the same model as {paths[0]} (model, config or teacher differ); "
                "a soup averages checkpoints of one model"
            )
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                acc[k] += v.double() * w
            else:
                acc[k] = torch.maximum(acc[k], v)
        records.append(_record(path, model, meta, w))
    state = {k: v.to(state0[k].dtype) for k, v in acc.items()}
    first.load_state_dict(state, strict=True)
    first.eval()
    return first, meta0, records


def _record(path, model, meta: dict, weight: float) -> dict:
    m = meta.get("metrics", {})
    return {
        "path": str(path),
        "digest": weights_digest(model),
        "name": meta["train_config"].get("name"),
        "variant": meta["train_config"].get("variant"),
        "step": m.get("step"),
        "score": m.get("score"),
        "weight": round(weight, 6),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", help="the soup's checkpoint (.safetensors)")
    p.add_argument("checkpoints", nargs="+", help="two or more checkpoints of one model")
    p.add_argument("--weights", type=float, nargs="+", help="one weight per checkpoint")
    a = p.parse_args(argv)
    try:
        model, meta, records = make_soup(a.checkpoints, a.weights)
    except CheckpointError as exc:
        p.exit(2, f"hushlab soup: {exc}\n")
    out = Path(a.out)
    save_checkpoint(
        out,
        model,
        train_config=meta["train_config"],
        teacher=meta["teacher"] or None,
        data=meta["data"],
        metrics={},
        extra={"soup": records},
    )
    print(json.dumps({"out": str(out), "digest": weights_digest(model), "soup": records}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
