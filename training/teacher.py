"""Pre-training a compact Wav2Vec2 teacher with the wav2vec 2.0 objective.

``Wav2Vec2ForPreTraining`` from ``transformers``: spans of the latent frames are masked, the
transformer's output at each masked frame must pick the quantised latent of that frame out of
``num_negatives`` distractors from the same clip (contrastive loss, cosine similarity / 0.1),
plus the codebook diversity loss; the Gumbel-softmax temperature of the quantiser decays
exponentially from ``gumbel_start`` to ``gumbel_end`` over the run. Training data: random crops of
the corpus's clean training speech. The result is saved with ``save_pretrained`` (plus a
``preprocessor_config.json``), so it loads through exactly the same code as
``facebook/wav2vec2-base``; per-layer normalisation statistics are computed at the end.

Logged per step: contrastive loss per masked frame (chance: ln(1 + negatives)) and masked-frame
accuracy (the positive ranks first among the candidates), on training and on fixed validation
crops.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from dsp.errors import UserError
from training import CORPUS_RATE
from training.data import AudioPool, DataConfig, list_sources

log = logging.getLogger(__name__)


@dataclass
class TeacherConfig:
    name: str = "teacher"
    out: str = "runs/teacher"
    seed: int = 0
    corpus: str = ""  # "" = the bundled corpus
    clean_dir: str = ""  # or any folder of clean speech (validation: a hashed 5 %)
    seconds: float = 2.0
    batch_size: int = 8
    steps: int = 4000
    lr: float = 5e-4
    warmup_steps: int = 400
    weight_decay: float = 0.01
    grad_clip: float = 10.0
    threads: int = 0
    mask_prob: float = 0.65
    mask_length: int = 10
    num_negatives: int = 50
    gumbel_start: float = 2.0
    gumbel_end: float = 0.5
    valid_every: int = 250
    valid_clips: int = 64
    ckpt_every: int = 100
    log_every: int = 10
    stats_clips: int = 400  # training clips for the normalisation statistics
    max_minutes: float = 0.0
    progress: bool = True
    model: dict = field(default_factory=dict)  # Wav2Vec2Config overrides
    # a streaming teacher (models/causal_teacher.py): causal attention over this many frames
    causal: bool = False
    causal_context: int = 64
    # warm start from a teacher (a name under models/teachers or a folder): every weight whose
    # name and shape match is copied (a causal teacher keeps its own per-frame norms)
    init: str = ""
    # distillation from a teacher (a shipped name or a folder, with normalisation statistics):
    # each layer of the model being trained also regresses that teacher's hidden states of the
    # same frame (L1 on the standardised states plus -log sigmoid(cosine), as DistilHuBERT),
    # weighted by w_distil and added to the contrastive loss. A causal model learns from the
    # past alone what the bidirectional teacher computes from the whole clip.
    distil_from: str = ""
    w_distil: float = 1.0

    @classmethod
    def from_toml(cls, path, overrides: list[str] | None = None) -> TeacherConfig:
        from training.train import load_toml

        d = load_toml(path, overrides)
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise UserError(f"unknown teacher config keys: {sorted(unknown)}")
        return cls(**d)


COMPACT = {  # about 3.8 M parameters; front end as wav2vec2-base (400-sample field, 320 stride)
    "hidden_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "intermediate_size": 1024,
    "conv_dim": [128] * 7,
    "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "num_conv_pos_embeddings": 64,
    "num_conv_pos_embedding_groups": 16,
    "num_codevector_groups": 2,
    "num_codevectors_per_group": 160,
    "codevector_dim": 128,
    "proj_codevector_dim": 128,
    "feat_extract_norm": "group",
    "do_stable_layer_norm": False,
    "hidden_dropout": 0.1,
    "attention_dropout": 0.1,
    "activation_dropout": 0.0,
    "feat_proj_dropout": 0.0,
    "layerdrop": 0.0,
    "diversity_loss_weight": 0.1,
    "mask_time_prob": 0.65,
    "mask_time_length": 10,
}


def build_pretraining_model(cfg: TeacherConfig):
    from transformers import Wav2Vec2Config, Wav2Vec2ForPreTraining

    params = {**COMPACT, **cfg.model, "num_negatives": cfg.num_negatives}
    params["mask_time_prob"], params["mask_time_length"] = cfg.mask_prob, cfg.mask_length
    if cfg.causal:
        from models.causal_teacher import CausalWav2Vec2ForPreTraining, make_causal_config

        return CausalWav2Vec2ForPreTraining(
            make_causal_config(Wav2Vec2Config(**params), cfg.causal_context)
        )
    return Wav2Vec2ForPreTraining(Wav2Vec2Config(**params))


def _clip_sources(cfg: TeacherConfig, split: str) -> list[Path]:
    dc = DataConfig(corpus=cfg.corpus, clean_dir=cfg.clean_dir, noise_dir=cfg.clean_dir)
    speech, _ = list_sources(dc, split)
    return speech


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-7)


def _crops(pool: AudioPool, n: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """[n, seconds * CORPUS_RATE] random crops (shorter clips zero-padded), each normalised."""
    m = int(seconds * CORPUS_RATE)
    out = np.zeros((n, m), dtype=np.float32)
    for k in range(n):
        x = pool.get(int(rng.integers(len(pool))))
        for _ in range(4):  # avoid near-silent crops
            start = int(rng.integers(0, max(1, len(x) - m + 1)))
            c = x[start : start + m]
            if np.sqrt(np.mean(c**2)) > 1e-3:
                break
        out[k, : len(c)] = c
    return _normalise(out).astype(np.float32)


def masked_step(
    model, batch: torch.Tensor, cfg: TeacherConfig, rng_seed: int, hidden: bool = False
):
    """One forward pass with masking and negatives -> (output, masked-frame count, accuracy);
    ``hidden``: the output carries every layer's hidden states."""
    from transformers.models.wav2vec2.modeling_wav2vec2 import (
        _compute_mask_indices,
        _sample_negative_indices,
    )

    b = batch.shape[0]
    t = int(model._get_feat_extract_output_lengths(torch.tensor(batch.shape[1])))
    np_state = np.random.get_state()  # noqa: NPY002 (the helpers use the global RNG)
    np.random.seed(rng_seed % 2**32)  # noqa: NPY002
    try:
        mask = _compute_mask_indices((b, t), cfg.mask_prob, cfg.mask_length, min_masks=2)
        neg = _sample_negative_indices((b, t), cfg.num_negatives, mask)
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
    mask_t = torch.tensor(mask, dtype=torch.bool, device=batch.device)
    neg_t = torch.tensor(neg, dtype=torch.long, device=batch.device)
    out = model(
        batch,
        mask_time_indices=mask_t,
        sampled_negative_indices=neg_t,
        output_hidden_states=hidden,
    )
    with torch.no_grad():
        q = out.projected_quantized_states  # [B, T, D]
        d = q.shape[-1]
        negs = q.reshape(-1, d)[neg_t.reshape(-1)].reshape(b, t, cfg.num_negatives, d)
        cands = torch.cat([q[:, :, None], negs], 2)  # positive first
        sim = torch.cosine_similarity(out.projected_states[:, :, None], cands, dim=-1)
        # a negative identical to the positive does not count against it (as in the loss)
        same = (negs == q[:, :, None]).all(-1)
        sim[:, :, 1:] = sim[:, :, 1:].masked_fill(same, -math.inf)
        correct = (sim.argmax(-1) == 0) & mask_t
        n_mask = int(mask_t.sum())
        acc = float(correct.sum()) / max(1, n_mask)
    return out, n_mask, acc


def gumbel_at(step: int, cfg: TeacherConfig) -> float:
    p = min(1.0, step / max(1, cfg.steps))
    return max(cfg.gumbel_end, cfg.gumbel_start * (cfg.gumbel_end / cfg.gumbel_start) ** p)


def lr_at(step: int, cfg: TeacherConfig) -> float:
    """Linear warm-up, then cosine decay to 2 % at ``cfg.steps`` (paced by steps alone)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    p = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * p)))


class Distiller:
    """The distillation term: a frozen teacher's standardised hidden states of a batch as
    targets for every layer of the model being trained (same frames, same width)."""

    def __init__(self, spec: str, device: torch.device):
        from models.teacher import Teacher

        self.teacher = Teacher(spec, device=str(device))
        if not self.teacher.has_stats():
            raise UserError(f"distil_from: teacher {spec} has no normalisation statistics")
        mean, std = self.teacher.load_stats()
        self.mean, self.std = mean.to(device), std.to(device)

    def check(self, model) -> None:
        c = model.config
        if (c.num_hidden_layers, c.hidden_size) != (self.teacher.n_layers, self.teacher.dim):
            raise UserError(
                f"distil_from: teacher {self.teacher.name} has {self.teacher.n_layers} layers of"
                f" {self.teacher.dim}, the model {c.num_hidden_layers} of {c.hidden_size}"
            )

    @torch.no_grad()
    def targets(self, batch: torch.Tensor) -> list[torch.Tensor]:
        """Standardised hidden states [B, T, D] per layer (the batch is normalised per clip)."""
        hs = self.teacher.model(batch, output_hidden_states=True).hidden_states
        return [(h - self.mean[i]) / self.std[i] for i, h in enumerate(hs)]

    def loss(self, hidden: tuple[torch.Tensor, ...], targets: list[torch.Tensor]) -> torch.Tensor:
        total = 0.0
        for i, (h, t) in enumerate(zip(hidden, targets, strict=True)):
            z = (h - self.mean[i]) / self.std[i]
            cos = torch.nn.functional.cosine_similarity(z, t, dim=-1)
            total = total + (z - t).abs().mean() - torch.nn.functional.logsigmoid(cos).mean()
        return total / len(targets)


@torch.no_grad()
def evaluate_pretraining(
    model, clips: np.ndarray, cfg: TeacherConfig, distiller: Distiller | None = None
) -> dict:
    was = model.training
    model.eval()
    losses, accs, n_total, dist = 0.0, 0.0, 0, 0.0
    for k in range(0, len(clips), cfg.batch_size):
        x = torch.from_numpy(clips[k : k + cfg.batch_size]).to(next(model.parameters()).device)
        out, n_mask, acc = masked_step(model, x, cfg, rng_seed=10_000 + k)
        losses += out.contrastive_loss.item()
        accs += acc * n_mask
        n_total += n_mask
        if distiller is not None:  # on the unmasked input, as the model is used
            hs = model.wav2vec2(x, output_hidden_states=True).hidden_states
            dist += distiller.loss(hs, distiller.targets(x)).item() * len(x)
    model.train(was)
    res = {"valid_contrastive": losses / max(1, n_total), "valid_accuracy": accs / max(1, n_total)}
    if distiller is not None:
        res["valid_distil"] = dist / len(clips)
    return res


def warm_start(model: torch.nn.Module, spec: str) -> tuple[int, int]:
    """Copy every tensor of teacher ``spec`` whose name and shape match ``model``'s; returns
    (copied, kept as initialised). A teacher of another size (less than half of the tensors
    fit) is an error."""
    from safetensors.torch import load_file

    from models.teacher import resolve_teacher

    folder = Path(resolve_teacher(spec))
    weights = folder / "model.safetensors"
    if not weights.exists():
        raise UserError(f"warm start: {folder} has no model.safetensors")
    src = load_file(str(weights))
    own = model.state_dict()
    match = {k: v for k, v in src.items() if k in own and own[k].shape == v.shape}
    if 2 * len(match) < len(own):
        raise UserError(
            f"warm start: only {len(match)} of {len(own)} tensors of {folder} fit this teacher;"
            " is it a teacher of another size?"
        )
    model.load_state_dict(match, strict=False)
    return len(match), len(own) - len(match)


def train_teacher(cfg: TeacherConfig) -> Path:
    """Pre-train (or resume); returns the folder of the saved teacher (``OUT/teacher``)."""
    from dsp.progress import progress as tqdm

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    model = build_pretraining_model(cfg).to(device)
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98), eps=1e-6
    )
    step, prior_s = 0, 0.0
    last = out / "last.pt"
    if last.exists():
        st = torch.load(last, map_location=device, weights_only=False)
        if st["config"]["model"] != cfg.model:
            raise UserError(f"{last} was trained with another model config; use another out")
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optim"])
        step, prior_s = st["step"], st.get("train_seconds", 0.0)
        log.info("resuming %s at step %d", out, step)
    elif cfg.init:
        copied, kept = warm_start(model, cfg.init)
        log.info("warm start from %s: %d tensors copied, %d kept", cfg.init, copied, kept)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    train_pool = AudioPool(_clip_sources(cfg, "train"))
    valid_pool = AudioPool(_clip_sources(cfg, "valid"))
    valid_clips = _crops(valid_pool, cfg.valid_clips, cfg.seconds, np.random.default_rng(1))
    distiller = Distiller(cfg.distil_from, device) if cfg.distil_from else None
    if distiller is not None:
        distiller.check(model)
    csv_path = out / "train_log.csv"
    new_csv = not csv_path.exists()
    csv_f = open(csv_path, "a", newline="")
    writer = csv.writer(csv_f)
    if new_csv:
        writer.writerow(["step", "lr", "gumbel", "contrastive", "diversity", "accuracy", "time"])
    bar = tqdm(total=cfg.steps, initial=step, desc=cfg.name, unit="step", disable=not cfg.progress)
    t0 = time.time()

    def elapsed() -> float:
        return prior_s + time.time() - t0

    def save_last():
        tmp = last.with_name("last.pt.tmp")
        torch.save(
            {
                "model": model.state_dict(),
                "optim": opt.state_dict(),
                "step": step,
                "train_seconds": elapsed(),
                "config": asdict(cfg),
            },
            tmp,
        )
        os.replace(tmp, last)

    model.train()
    stopping = False
    while step < cfg.steps and not stopping:
        rng = np.random.default_rng([cfg.seed, step])
        x = torch.from_numpy(_crops(train_pool, cfg.batch_size, cfg.seconds, rng)).to(device)
        model.set_gumbel_temperature(gumbel_at(step, cfg))
        lr = lr_at(step, cfg)
        for g in opt.param_groups:
            g["lr"] = lr
        out_, n_mask, acc = masked_step(
            model, x, cfg, rng_seed=cfg.seed * 1_000_003 + step, hidden=distiller is not None
        )
        loss = out_.loss / max(1, n_mask)
        dl = None
        if distiller is not None:
            dl = distiller.loss(out_.hidden_states, distiller.targets(x))
            loss = loss + cfg.w_distil * dl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        if not torch.isfinite(loss):
            raise RuntimeError(f"teacher loss became {loss.item()} at step {step}")
        opt.step()
        step += 1
        c = out_.contrastive_loss.item() / max(1, n_mask)
        dv = out_.diversity_loss.item() / max(1, n_mask)  # 0 = every codeword used evenly
        bar.update(1)
        post = {"contrastive": f"{c:.3f}", "acc": f"{acc:.2f}"}
        if dl is not None:
            post["distil"] = f"{dl.item():.3f}"
        bar.set_postfix(post, refresh=False)
        if step % cfg.log_every == 0:
            writer.writerow(
                [
                    step,
                    f"{lr:.3g}",
                    f"{gumbel_at(step, cfg):.3f}",
                    f"{c:.4f}",
                    f"{dv:.4f}",
                    f"{acc:.4f}",
                    int(time.time()),
                ]
            )
            csv_f.flush()
        if cfg.max_minutes and time.time() - t0 > cfg.max_minutes * 60:  # pause; rerun resumes
            stopping = True
        if step % cfg.ckpt_every == 0 or stopping:
            save_last()
        if step % cfg.valid_every == 0 or step == cfg.steps or stopping:
            res = evaluate_pretraining(model, valid_clips, cfg, distiller)
            res.update(step=step, wall_s=round(elapsed(), 1))
            with open(out / "history.jsonl", "a") as fh:
                fh.write(json.dumps(res) + "\n")
            bar.write(
                f"step {step}: valid contrastive {res['valid_contrastive']:.3f} per masked frame"
                f" (chance {math.log(1 + cfg.num_negatives):.2f}),"
                f" accuracy {res['valid_accuracy']:.3f}"
                + (f", distillation {res['valid_distil']:.3f}" if distiller is not None else "")
            )
    bar.close()
    csv_f.close()
    save_last()
    rng = np.random.default_rng(cfg.seed + 1)
    order = rng.permutation(len(train_pool))[: cfg.stats_clips]
    return export_teacher(model, out, [train_pool.get(int(i)) for i in order], cfg.progress)


def corpus_stats(teacher, corpus: str = "", clips: int = 400, progress: bool = True) -> dict:
    """Normalisation statistics of ``teacher`` over ``clips`` random clean training utterances
    of a corpus (default: the bundled one), stored with the teacher."""
    speech, _ = list_sources(DataConfig(corpus=corpus), "train")
    order = np.random.default_rng(1).permutation(len(speech))[:clips]
    pool = AudioPool([speech[i] for i in order])
    return teacher.compute_stats([pool.get(i) for i in range(len(pool))], progress=progress)


def export_teacher(model, out: Path, stats_clips: list[np.ndarray], progress: bool = True) -> Path:
    """``save_pretrained`` the pre-training model (its ``wav2vec2`` part is the teacher) with a
    feature-extractor config, then compute the per-layer normalisation statistics over
    ``stats_clips`` (clean training speech)."""
    from transformers import Wav2Vec2FeatureExtractor

    from models.teacher import Teacher

    dest = out / "teacher"
    dest.mkdir(parents=True, exist_ok=True)
    model.cpu().save_pretrained(str(dest))
    Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=CORPUS_RATE,
        padding_value=0.0,
        # a causal teacher takes the waveform as it is: per-clip statistics would look ahead
        do_normalize=not getattr(model.config, "hushlab_causal", False),
        return_attention_mask=False,
    ).save_pretrained(str(dest))
    Teacher(dest).compute_stats(stats_clips, progress=progress)
    return dest


def plot_history(run: Path, dest: Path) -> Path:
    """Contrastive loss per masked frame and masked-frame accuracy over training (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(open(run / "train_log.csv")))
    hist = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines() if x.strip()]
    cfg = json.loads((run / "config.json").read_text())
    steps = [int(r["step"]) for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    ax[0].plot(steps, [float(r["contrastive"]) for r in rows], lw=0.6, alpha=0.6, label="train")
    ax[0].plot(
        [h["step"] for h in hist], [h["valid_contrastive"] for h in hist], "o-", label="validation"
    )
    ax[0].axhline(math.log(1 + cfg["num_negatives"]), color="grey", ls="--", label="chance")
    ax[0].set(xlabel="step", ylabel="contrastive loss per masked frame")
    ax[1].plot(steps, [float(r["accuracy"]) for r in rows], lw=0.6, alpha=0.6, label="train")
    ax[1].plot(
        [h["step"] for h in hist], [h["valid_accuracy"] for h in hist], "o-", label="validation"
    )
    ax[1].axhline(1 / (1 + cfg["num_negatives"]), color="grey", ls="--", label="chance")
    ax[1].set(xlabel="step", ylabel="masked-frame accuracy")
    if all("valid_distil" in h for h in hist) and hist:  # distillation: on a second axis
        twin = ax[0].twinx()
        twin.plot(
            [h["step"] for h in hist],
            [h["valid_distil"] for h in hist],
            "s--",
            color="tab:red",
            label="distillation (validation)",
        )
        twin.set_ylabel("distillation loss")
        twin.legend(loc="lower left")
    for a in ax:
        a.grid(alpha=0.3)
        a.legend()
    fig.tight_layout()
    dest.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(dest, dpi=110)
    plt.close(fig)
    return dest
