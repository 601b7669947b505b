"""Checkpoints: one safetensors file holding the weights and JSON metadata (model name, config,
training config, teacher, data description, metrics). Loading never unpickles code.

Shipped models live in ``models/shipped/<name>/model.safetensors`` beside a ``card.md``; the name
(for example ``baseline``) resolves to that file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

from dsp.errors import UserError
from models.registry import build_model

FORMAT = "hushlab-checkpoint"
FORMAT_VERSION = 1
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"


class CheckpointError(UserError):
    pass


def save_checkpoint(
    path: str | os.PathLike,
    model,
    *,
    train_config: dict | None = None,
    teacher: str | None = None,
    data: dict | None = None,
    metrics: dict | None = None,
    extra: dict | None = None,
    half: bool = False,
) -> Path:
    """Write atomically (temp file + rename); ``half`` stores floating-point tensors as float16
    (half the file; loading widens them back to the model's float32)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "model": model.name,
        "config": json.dumps(model.config.to_dict()),
        "train_config": json.dumps(train_config or {}),
        "teacher": teacher or "",
        "data": json.dumps(data or {}),
        "metrics": json.dumps(metrics or {}),
        "extra": json.dumps(extra or {}),
    }
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    os.replace(tmp, path)
    return path


def read_metadata(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:
        raise CheckpointError(f"{path}: not a Hushlab checkpoint ({exc})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a Hushlab checkpoint (no '{FORMAT}' metadata)")
    if int(meta.get("format_version", -1)) != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {meta.get('format_version')} "
            f"is not supported (this Hushlab reads version {FORMAT_VERSION})"
        )
    out = {"model": meta["model"], "teacher": meta.get("teacher", "")}
    for k in ("config", "train_config", "data", "metrics", "extra"):
        out[k] = json.loads(meta.get(k) or "{}")
    return out


def load_checkpoint(path: str | os.PathLike, map_location: str = "cpu"):
    """-> (model in eval mode, metadata dict). Clear errors for wrong files or shapes."""
    path = resolve_model_path(path)
    meta = read_metadata(path)
    try:
        model = build_model(meta["model"], meta["config"])
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: cannot rebuild model: {exc}") from None
    with safe_open(str(path), framework="pt", device=map_location) as f:
        state = {k: f.get_tensor(k) for k in f.keys()}
    want = model.state_dict()
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    wrong = [k for k in want if k in state and tuple(state[k].shape) != tuple(want[k].shape)]
    if missing or unexpected or wrong:
        example = (missing or unexpected or wrong)[0]
        raise CheckpointError(
            f"{path}: weights do not fit the model config ({len(missing)} missing, "
            f"{len(unexpected)} unexpected, {len(wrong)} of another shape, e.g. '{example}'); "
            "was it written by another Hushlab version or edited?"
        )
    model.load_state_dict(state, strict=True)
    model.eval()
    return model, meta


def store_half(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """A copy of checkpoint ``src`` with its weights stored as float16, metadata unchanged."""
    model, meta = load_checkpoint(src)
    return save_checkpoint(
        dst,
        model,
        train_config=meta["train_config"],
        teacher=meta["teacher"] or None,  # the record as stored (a JSON string)
        data=meta["data"],
        metrics=meta["metrics"],
        extra=meta["extra"],
        half=True,
    )


def shipped_models() -> dict[str, Path]:
    """Name -> checkpoint path of every model shipped with Hushlab."""
    out = {}
    if SHIPPED_DIR.is_dir():
        for d in sorted(SHIPPED_DIR.iterdir()):
            ck = d / "model.safetensors"
            if ck.exists():
                out[d.name] = ck
    return out


def resolve_model_path(name_or_path: str | os.PathLike) -> Path:
    p = Path(name_or_path)
    if p.is_file():
        return p
    if p.is_dir() and (p / "model.safetensors").exists():
        return p / "model.safetensors"
    shipped = shipped_models()
    if str(name_or_path) in shipped:
        return shipped[str(name_or_path)]
    known = ", ".join(shipped) or "none shipped"
    raise CheckpointError(
        f"'{name_or_path}' is neither a checkpoint file nor a shipped model ({known})"
    )
