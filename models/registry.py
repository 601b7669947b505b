"""Model name -> (class, config class). Checkpoints store names and configs, never classes."""

from __future__ import annotations

from models.gcrn import GCRN, GCRNConfig

MODELS: dict[str, tuple[type, type]] = {
    "gcrn": (GCRN, GCRNConfig),
}


def build_model(name: str, config: dict | None = None):
    if name not in MODELS:
        raise KeyError(f"unknown model '{name}' (known: {', '.join(sorted(MODELS))})")
    cls, cfg_cls = MODELS[name]
    cfg = cfg_cls.from_dict(config) if config else cfg_cls()
    return cls(cfg)
