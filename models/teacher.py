"""The frozen Wav2Vec2 teacher: any ``transformers`` Wav2Vec2 from a folder or a hub id.

Embeddings come out one per 20 ms STFT frame: the GCRN's causal framing and Wav2Vec2's
convolutional front end both give ``floor((N - 400) / 320) + 1`` frames for ``N`` samples, and
frame ``t`` of both covers samples ``[320 t, 320 t + 400)``, so no trimming is needed (a teacher
with another front end is refused). Layer 0 is the transformer's input (projected conv features
plus positional convolution), layer ``L`` the last transformer layer (the default, as in the
paper's code).

Per-dimension normalisation statistics (mean and standard deviation of every layer over clean
training speech) are stored with the teacher, in ``hushlab_stats.safetensors`` inside its folder
(or, for a hub teacher, in the cache folder under the teacher's digest).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from dsp.errors import UserError
from dsp.stft import DEFAULT_GEOMETRY

log = logging.getLogger(__name__)
STATS_FILE = "hushlab_stats.safetensors"
SHIPPED_TEACHER = "teacher"
TEACHERS_DIR = Path(__file__).resolve().parent / "teachers"  # shipped teachers, one per folder


def n_frames(n_samples: int) -> int:
    """STFT frames (and teacher frames) for a signal of ``n_samples``."""
    g = DEFAULT_GEOMETRY
    return 0 if n_samples < g.win else (n_samples - g.win) // g.hop + 1


def default_cache_dir() -> Path:
    return Path(os.environ.get("HUSHLAB_CACHE", Path.home() / ".cache" / "hushlab")) / "embeddings"


def shipped_teachers() -> dict[str, Path]:
    """Name -> folder of every teacher shipped with Hushlab."""
    return {p.parent.name: p.parent for p in sorted(TEACHERS_DIR.glob("*/config.json"))}


def resolve_teacher(spec: str | os.PathLike | None) -> str:
    """A folder, a shipped teacher's name, or (left as is) a hub id."""
    spec = str(spec) if spec else SHIPPED_TEACHER
    if Path(spec).is_dir():
        return str(Path(spec))
    shipped = TEACHERS_DIR / spec
    if (shipped / "config.json").exists():
        return str(shipped)
    if spec.startswith(("/", ".", "~")) or spec.count("/") > 1 or os.sep != "/" and os.sep in spec:
        known = ", ".join(shipped_teachers()) or "none"
        raise UserError(f"{spec}: no such teacher folder (shipped teachers: {known})")
    return spec


class Teacher:
    """A frozen Wav2Vec2 (eval mode, no gradients) that embeds 16 kHz audio frame by frame."""

    def __init__(
        self,
        spec: str | os.PathLike | None = None,
        layer: int | None = None,
        device: str = "cpu",
        cache_dir: str | os.PathLike | None = None,
    ):
        self.source = resolve_teacher(spec)
        self.model, self.do_normalize = _load(self.source)
        self.model.to(device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.device = torch.device(device)
        self.causal = bool(getattr(self.model.config, "hushlab_causal", False))
        self.n_layers = self.model.config.num_hidden_layers
        self.dim = self.model.config.hidden_size
        self.layer = self.n_layers if layer is None else int(layer)
        if not 0 <= self.layer <= self.n_layers:
            raise UserError(f"teacher has layers 0..{self.n_layers}; layer {layer} does not exist")
        self._check_framing()
        self.weights_digest = weights_digest(self.model)
        self.digest = _digest(self.model, self.weights_digest)
        self._legacy: set[str] | None = None
        self.name = Path(self.source).name if Path(self.source).is_dir() else self.source
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self._stats: tuple[torch.Tensor, torch.Tensor] | None = None

    # -- embedding ---------------------------------------------------------------------------

    def _check_framing(self) -> None:
        for n in (400, 719, 720, 16000, 16321):
            got = int(self.model._get_feat_extract_output_lengths(torch.tensor(n)))
            if got != n_frames(n):
                raise UserError(
                    f"teacher {self.source}: its front end gives {got} frames for {n} samples,"
                    f" the 20 ms STFT {n_frames(n)}; only 20 ms / 400-sample front ends align"
                )

    def _prepare(self, wave) -> torch.Tensor:
        x = torch.as_tensor(
            np.asarray(wave, dtype=np.float32) if not torch.is_tensor(wave) else wave
        )
        x = x.float()
        if x.dim() == 1:
            x = x[None]
        if x.dim() != 2:
            raise ValueError(f"expected [N] or [B, N] audio, got shape {tuple(x.shape)}")
        if x.shape[-1] < DEFAULT_GEOMETRY.win:
            raise UserError(f"audio of {x.shape[-1]} samples is shorter than one 25 ms frame")
        if not torch.isfinite(x).all():
            raise UserError("audio contains NaN or infinite samples")
        if self.do_normalize:  # as Wav2Vec2FeatureExtractor: zero mean, unit variance per clip
            x = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True) + 1e-7)
        return x.to(self.device)

    @torch.no_grad()
    def hidden_states(self, wave) -> torch.Tensor:
        """All layers: [L + 1, B, T, D] for audio [B, N] (or [N])."""
        out = self.model(self._prepare(wave), output_hidden_states=True)
        return torch.stack(out.hidden_states).float().cpu()

    @torch.no_grad()
    def embed(self, wave, layer: int | None = None, normalise: bool = False) -> torch.Tensor:
        """[B, T, D] embeddings of one layer (default: the teacher's), T = STFT frames."""
        layer = self.layer if layer is None else layer
        x = self._prepare(wave)
        if layer == self.n_layers:
            e = self.model(x).last_hidden_state.float().cpu()
        else:
            e = self.model(x, output_hidden_states=True).hidden_states[layer].float().cpu()
        return self.normalise(e, layer) if normalise else e

    def embed_cached(self, wave: np.ndarray, layer: int | None = None) -> np.ndarray:
        """[T, D] float32 embeddings of one clip, cached on disk by audio hash, teacher and layer
        (stored as float16: the teacher's own precision is far finer than any use here)."""
        layer = self.layer if layer is None else layer
        wave = np.ascontiguousarray(wave, dtype=np.float32)
        key = hashlib.sha1(wave.tobytes()).hexdigest()
        path = self.cache_dir / self.digest[:16] / f"L{layer}" / key[:2] / f"{key}.npy"
        if path.exists():
            try:
                return np.load(path).astype(np.float32)
            except (OSError, ValueError):
                log.warning("unreadable cache entry %s: recomputing", path)
        e = self.embed(wave, layer)[0].numpy()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, e.astype(np.float16))
        os.replace(tmp, path)
        return e

    # -- normalisation statistics ------------------------------------------------------------

    def stats_path(self) -> Path:
        if Path(self.source).is_dir() and os.access(self.source, os.W_OK):
            return Path(self.source) / STATS_FILE
        return self.cache_dir / self.digest[:16] / STATS_FILE

    def has_stats(self) -> bool:
        return self.stats_path().exists() or (Path(self.source) / STATS_FILE).exists()

    def load_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std), each [L + 1, D]."""
        if self._stats is None:
            from safetensors.torch import load_file

            for path in (Path(self.source) / STATS_FILE, self.stats_path()):
                if path.exists():
                    d = load_file(str(path))
                    if d["mean"].shape != (self.n_layers + 1, self.dim):
                        raise UserError(f"{path}: statistics of another teacher shape")
                    self._stats = (d["mean"], d["std"])
                    break
            else:
                raise UserError(
                    f"teacher {self.source} has no normalisation statistics: run"
                    f" 'hushlab train-teacher --stats-only --teacher {self.source}'"
                )
        return self._stats

    def normalise(self, e: torch.Tensor, layer: int | None = None) -> torch.Tensor:
        mean, std = self.load_stats()
        layer = self.layer if layer is None else layer
        return (e - mean[layer]) / std[layer]

    def compute_stats(self, clips, progress: bool = True) -> dict:
        """Per-layer, per-dimension mean and std over ``clips`` (an iterable of 1-D arrays);
        written next to the teacher. Returns a summary."""
        from safetensors.torch import save_file

        from dsp.progress import progress as tqdm

        s1 = torch.zeros(self.n_layers + 1, self.dim, dtype=torch.float64)
        s2 = torch.zeros_like(s1)
        count = 0
        for clip in tqdm(clips, desc="teacher stats", unit="clip", disable=not progress):
            h = self.hidden_states(clip)[:, 0].double()  # [L + 1, T, D]
            s1 += h.sum(1)
            s2 += (h**2).sum(1)
            count += h.shape[1]
        if count < 2:
            raise UserError("too little audio for teacher statistics")
        mean = s1 / count
        std = torch.sqrt(torch.clamp(s2 / count - mean**2, min=1e-10))
        path = self.stats_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"frames": str(count), "teacher": self.name, "digest": self.digest}
        save_file({"mean": mean.float(), "std": std.float()}, str(path), metadata=meta)
        self._stats = (mean.float(), std.float())
        return {"frames": count, "path": str(path)}

    def matches(self, recorded: str) -> bool:
        """Whether a recorded digest (any length from 16 hex digits, either form) is this
        teacher's."""
        recorded = str(recorded or "")[:40]
        if len(recorded) < 16:
            return False
        if self.digest.startswith(recorded):
            return True
        if self._legacy is None:
            self._legacy = legacy_digests(self.model, self.source)
        return any(d.startswith(recorded) for d in self._legacy)

    def mismatch(self, record: dict) -> str:
        """Why a record (``describe()`` of the teacher a model was trained with) does not match
        this teacher, in words: the weights differ, or only the computing config does."""
        want = str(record.get("digest", ""))[:16]
        found = f"found '{self.name}' at {self.source} (digest {self.digest[:16]})"
        if record.get("weights_digest"):
            if self.weights_digest.startswith(str(record["weights_digest"])[:16]):
                return (
                    f"expected teacher '{record.get('teacher')}' (digest {want}); {found}: the"
                    " same weights with another config that changes what it computes"
                    f" (expected {record.get('config')}, found {compute_config(self.model)})"
                )
            return (
                f"expected teacher '{record.get('teacher')}' (digest {want}, weights"
                f" {str(record['weights_digest'])[:16]}); {found}, weights"
                f" {self.weights_digest[:16]}: different weights, a different model"
            )
        return (
            f"expected teacher '{record.get('teacher')}' (digest {want}, recorded in the first"
            f" form, which cannot tell weights from config); {found}, weights"
            f" {self.weights_digest[:16]}: not the same weights under the transformers versions"
            " tried (the installed one and the one that saved it)"
        )

    def describe(self) -> dict:
        return {
            "teacher": self.name,
            "source": self.source,
            "digest": self.digest[:16],
            "weights_digest": self.weights_digest[:16],
            "config": compute_config(self.model),
            "layer": self.layer,
            "layers": self.n_layers,
            "dim": self.dim,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "causal": self.causal,
        }


def _load(source: str):
    """(Wav2Vec2Model, do_normalize) from a folder or hub id, with a clear error."""
    from transformers import Wav2Vec2Model
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # a pre-training save lists its unused quantizer keys
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a bar per load would flood enhance, eval and the app
    try:
        from transformers import Wav2Vec2Config

        from models.causal_teacher import CausalWav2Vec2Model, is_causal_config

        causal = Path(source).is_dir() and is_causal_config(Wav2Vec2Config.from_pretrained(source))
        model = (CausalWav2Vec2Model if causal else Wav2Vec2Model).from_pretrained(source)
    except (OSError, ValueError) as exc:
        where = "folder" if Path(source).is_dir() else "hub id"
        raise UserError(
            f"cannot load teacher '{source}' ({where}): {str(exc).splitlines()[0]}. Give a"
            f" folder saved with save_pretrained, a shipped teacher name ('{SHIPPED_TEACHER}'),"
            " or a hub id on a machine with network access."
        ) from None
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()
    do_normalize = not causal  # per-clip statistics would look ahead
    pre = Path(source) / "preprocessor_config.json"
    if pre.exists() and not causal:
        do_normalize = bool(json.loads(pre.read_text()).get("do_normalize", True))
    return model, do_normalize


# The config fields that change what a Wav2Vec2 computes from its weights (the weights' shapes
# carry the rest). Bookkeeping - the library's version, dtype, architectures, training-only
# dropout and masking settings, fields a later release adds - stays out of a teacher's identity.
COMPUTE_FIELDS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "layer_norm_eps",
    "feat_extract_norm",
    "feat_extract_activation",
    "conv_dim",
    "conv_kernel",
    "conv_stride",
    "conv_bias",
    "num_conv_pos_embeddings",
    "num_conv_pos_embedding_groups",
    "do_stable_layer_norm",
    "causal_context",  # the streaming teacher's (models/causal_teacher.py)
    "input_gain",
)


def _state_bytes(model) -> list[bytes]:
    """The state dict as the digests read it: each name, then its float32 values, by name."""
    out = []
    for k, v in sorted(model.state_dict().items()):
        out += [k.encode(), v.detach().cpu().float().numpy().tobytes()]
    return out


def _sha1(*chunks: bytes) -> str:
    h = hashlib.sha1()
    for c in chunks:
        h.update(c)
    return h.hexdigest()


def weights_digest(model) -> str:
    """sha1 of the state dict alone (names and float32 values, sorted by name)."""
    return _sha1(*_state_bytes(model))


def compute_config(model) -> dict:
    """The part of a teacher's config that changes what it computes (:data:`COMPUTE_FIELDS`
    and every ``hushlab_*`` field)."""
    cfg = model.config.to_dict()
    return {
        k: cfg[k]
        for k in sorted(cfg)
        if (k in COMPUTE_FIELDS or k.startswith("hushlab_")) and cfg[k] is not None
    }


def _digest(model, weights: str | None = None) -> str:
    """A teacher's identity: its weights and the config fields that change what it computes,
    never the library's version or other bookkeeping (so a new ``transformers`` release keeps
    the digest)."""
    h = hashlib.sha1(json.dumps(compute_config(model), sort_keys=True, default=str).encode())
    h.update((weights or weights_digest(model)).encode())
    return h.hexdigest()


def legacy_digests(model, source: str | os.PathLike) -> set[str]:
    """The digests of the first form (the whole ``config.to_dict()``, which carries
    ``transformers_version``, then the weights), as records written before the identity above
    hold them: computed with the version that saved the teacher and with the installed one."""
    cfg = model.config.to_dict()
    versions = {cfg.get("transformers_version")}
    saved = Path(source) / "config.json"
    if saved.exists():
        try:
            versions.add(json.loads(saved.read_text()).get("transformers_version"))
        except ValueError:
            pass
    state = _state_bytes(model)
    return {
        _sha1(
            json.dumps({**cfg, "transformers_version": v}, sort_keys=True, default=str).encode(),
            *state,
        )
        for v in versions - {None}
    }
