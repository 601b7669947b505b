"""One plain training loop (STYLE.md 9); each variant supplies only its loss hook.

Resumable: ``<out>/last.pt`` (model, optimiser, scheduler, step, RNG) is written atomically every
``ckpt_every`` steps and at each validation; starting the same command again continues from it.
``<out>/best.safetensors`` is the best validated model as a Hushlab checkpoint; ``history.jsonl``
holds one line per validation, ``train_log.csv`` the running training loss.
Runs on CPU, on CUDA when present, and under ``torchrun`` (DistributedDataParallel, gloo on CPU).
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import math
import os
import time
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from dsp.errors import UserError
from models.checkpoint import save_checkpoint
from models.registry import build_model
from training.data import DataConfig, TrainMixtures, load_or_make_mixtures, render_mixture
from training.losses import LOSS_WEIGHTS, SISDR_RAMP, make_hook, target_of

log = logging.getLogger(__name__)
PESQ_FLOOR = 1.0  # PESQ-WB's lowest score (P.862.2 maps to 1.02-4.64): a mixture it cannot score


def _repo_relative(path: str | os.PathLike) -> str:
    """``path`` relative to the repository (``training/configs/x.toml``) when it lies inside it."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(Path(__file__).resolve().parents[1]))
    except ValueError:
        return str(path)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read_toml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """A TOML file as a dict; ``extends = "other.toml"`` (beside it) is read first and this
    file's keys laid over it, tables merged key by key - a variant recipe says only what it
    changes."""
    if not path.exists():
        raise UserError(f"{path}: no such config")
    if path.resolve() in seen:
        raise UserError(f"{path}: 'extends' loops back to itself")
    try:
        d = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: invalid TOML: {exc}") from None
    base = d.pop("extends", None)
    if base is None:
        return d
    return _merge(_read_toml(path.parent / base, (*seen, path.resolve())), d)


def load_toml(path: str | os.PathLike, overrides: list[str] | None = None) -> dict:
    """A TOML config as a dict, with ``KEY=VALUE`` overrides applied (dotted keys for tables;
    values parsed as TOML, else taken as strings)."""
    d = _read_toml(Path(path))
    for ov in overrides or []:
        if "=" not in ov:
            raise UserError(f"override '{ov}' is not KEY=VALUE")
        key, val = ov.split("=", 1)
        try:
            parsed = tomllib.loads(f"v = {val}")["v"]
        except tomllib.TOMLDecodeError:
            parsed = val
        node = d
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = parsed
    return d


@dataclass
class TrainConfig:
    name: str = "baseline"
    variant: str = "baseline"
    model: str = "gcrn"
    model_config: dict = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    out: str = "runs/baseline"
    seed: int = 0
    batch_size: int = 8
    steps: int = 20000
    lr: float = 1e-3
    weight_decay: float = 1e-5
    warmup_steps: int = 500
    min_lr_ratio: float = 0.05
    grad_clip: float = 5.0
    w_sisdr: float = 0.0  # see training/losses.py: a time-domain term stalled early training
    w_under: float = 0.0  # extra weight on speech the estimate removes (losses.py)
    w_mrstft: float = 0.0  # multi-resolution STFT loss on the waveform (losses.py)
    w_pesq: float = 0.0  # PESQ-modelled loudness-disturbance loss on the waveform (losses.py)
    # the SI-SDR term weighted by each mixture's input SNR: 0 at sisdr_snr_lo dB, 1 at
    # sisdr_snr_hi and above (losses.py snr_ramp_weights); both 0: unweighted
    sisdr_snr_lo: float = 0.0
    sisdr_snr_hi: float = 0.0
    # SSL variants (kd, pretrain, fusion; training/losses.py SSLHook)
    teacher: str = ""  # folder, shipped name or hub id ("" = the shipped teacher)
    teacher_layer: int = -1  # -1 = the last transformer layer
    w_ssl: float = 1.0  # weight of the L1 embedding term (kd; pretrain stage 1)
    pretrain_fraction: float = 0.3  # pretrain: share of the steps spent in stage 1
    num_workers: int = 1
    threads: int = 0  # torch intra-op threads (0 = leave default)
    valid_every: int = 500
    valid_mixtures: int = 40  # speech/noise pairs, each at -5, 0, +5 dB
    valid_split: str = "valid"  # where checkpoints are chosen: "valid" or "real-valid"
    valid_pesq: int = 24  # of those (at every SNR), how many also get PESQ
    ckpt_every: int = 100
    log_every: int = 25
    progress: bool = True
    # stop cleanly (a checkpoint, then exit) after so many minutes of this invocation; the
    # schedule stays paced by steps, so running the command again resumes the same run
    max_minutes: float = 0.0
    # start from a shipped model's weights (its name: 'baseline') or a checkpoint file
    # (fine-tuning); "" = from scratch; ignored when resuming
    init: str = ""
    # > 0: keep an exponential moving average of the weights (horizon about 1 / (1 - ema_decay)
    # steps); validation, best and latest then use the average, last.pt keeps both
    ema_decay: float = 0.0
    # the recipe and overrides the run was made from (set by from_toml; a card's chain of
    # commands is written from it)
    recipe: dict = field(default_factory=dict)

    @classmethod
    def from_toml(cls, path: str | os.PathLike, overrides: list[str] | None = None) -> TrainConfig:
        cfg = cls.from_dict(load_toml(path, overrides))
        cfg.recipe = {"config": _repo_relative(path), "overrides": list(overrides or [])}
        return cfg

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        d = dict(d)
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise UserError(f"unknown training config keys: {sorted(unknown)}")
        data = d.pop("data", {})
        dknown = {f.name for f in fields(DataConfig)}
        if set(data) - dknown:
            raise UserError(f"unknown data config keys: {sorted(set(data) - dknown)}")
        return cls(data=DataConfig(**data), **d)

    def to_dict(self) -> dict:
        return asdict(self)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_ratio`` at ``cfg.steps``: paced by steps
    alone, so a run trains the same on any machine and across resumes."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    p = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p)))


def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float, updates: int) -> None:
    """One step of the weight average: ``ema = d * ema + (1 - d) * model`` with
    ``d = min(decay, n / (n + 1))`` after ``n`` earlier updates: the plain mean of every step so
    far until the horizon ``1 / (1 - decay)`` is reached, so the starting weights do not linger;
    buffers (BatchNorm statistics) are copied."""
    d = min(decay, updates / (updates + 1))
    for a, p in zip(ema.parameters(), model.parameters(), strict=True):
        a.lerp_(p.detach(), 1.0 - d)
    for a, b in zip(ema.buffers(), model.buffers(), strict=True):
        a.copy_(b)


def _dist_info() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return world, rank, local


@torch.no_grad()
def validate(model, cfg: TrainConfig, mixes: list[dict], root, hook) -> dict:
    """Loss, SI-SDR on every validation mixture; PESQ on the first ``valid_pesq`` pairs."""
    from dsp.metrics import pesq_wb, si_sdr
    from dsp.stft import istft

    was = model.training
    model.eval()
    losses, sisdr, sisdr_in, pesq, pesq_errors = [], [], [], [], []
    geom = model.config.geometry
    pesq_ids = {m["id"].split("_")[0] for m in mixes[: cfg.valid_pesq * 3]}
    for m in mixes:
        noisy, clean = render_mixture(m, root)
        dev = next(model.parameters()).device
        nt, ct = torch.from_numpy(noisy)[None].to(dev), torch.from_numpy(clean)[None].to(dev)
        loss, logs = hook.compute_loss(model, (nt, ct))
        losses.append(loss.item())
        est = logs["estimate"][0].cpu()
        y = istft(torch.complex(est[0], est[1]), geom).numpy()
        ref = target_of(model, torch.from_numpy(clean)).numpy()  # delayed for a look-ahead
        n = len(y)
        sisdr.append(si_sdr(ref[:n], y))
        sisdr_in.append(si_sdr(clean[:n], noisy[:n]))
        if m["id"].split("_")[0] in pesq_ids:
            try:
                pesq.append(pesq_wb(ref[:n], y, geom.sample_rate))
            except Exception as exc:  # e.g. no utterance detected in a silent estimate
                pesq_errors.append(f"{m['id']}: {type(exc).__name__}: {exc}")
                pesq.append(PESQ_FLOOR)  # what PESQ cannot score counts as its worst score
    model.train(was)
    out = {
        "valid_loss": float(np.mean(losses)),
        "valid_si_sdr": float(np.mean(sisdr)),
        "valid_si_sdr_in": float(np.mean(sisdr_in)),
        # every PESQ mixture counts (a failure at the floor), so checkpoints rank on one set
        "valid_pesq": float(np.mean(pesq)) if pesq else float("nan"),
        "valid_pesq_errors": len(pesq_errors),
    }
    if pesq_errors:
        log.warning(
            "PESQ failed on %d validation mixtures (each counted at %.2f): %s",
            len(pesq_errors),
            PESQ_FLOOR,
            pesq_errors[0],
        )
    # PESQ can be missing (package not installed where training runs): rank by SI-SDR then.
    pesq_term = 0.0 if math.isnan(out["valid_pesq"]) else out["valid_pesq"]
    out["score"] = pesq_term + 0.1 * out["valid_si_sdr"]
    return out


def init_config_fits(theirs: dict, mine: dict) -> bool:
    """Whether a run whose model config is ``mine`` can start from weights whose config is
    ``theirs``: an SSL variant may start from a baseline (its SSL layers start fresh), a model
    with deep filtering from one without (its filter starts switched off), and a model that looks
    ahead from one that does not (it learns the delay), nothing else."""
    theirs, mine = json.loads(json.dumps(theirs)), json.loads(json.dumps(mine))
    free = {"ssl_dim", "distill_head", "fusion", "df_taps", "lookahead"}
    same = {k: v for k, v in theirs.items() if k not in free} == {
        k: v for k, v in mine.items() if k not in free
    }
    return (
        same
        and theirs.get("df_taps", 0) in (0, mine.get("df_taps", 0))
        and theirs.get("lookahead", 0) in (0, mine.get("lookahead", 0))
    )


def train(cfg: TrainConfig) -> Path:
    """Train (or resume) according to ``cfg``; returns the output folder."""
    run = _Run(cfg)
    run.loop()
    run.finish()
    return run.out


class _Run:
    """One training run, in the parts a reader looks for: set-up (``__init__``), resume or
    warm start (``_resume``, ``_warm_start``), the step (``_step``), logging (``_log``),
    validation with its checkpoints (``_validate``), and the atomic saves."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.world, self.rank, local = _dist_info()
        self.distributed = self.world > 1
        self.device = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
        if self.distributed and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg.model, cfg.model_config).to(self.device)
        self.hook = make_hook(cfg.variant, **self._hook_args())
        self.teacher_meta = (
            json.dumps(self.hook.describe()) if hasattr(self.hook, "describe") else None
        )
        self.opt = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        self.step, self.best, self.epoch = 0, -math.inf, 0
        self.prior_s = 0.0  # training time of earlier invocations (resume)
        self.last = self.out / "last.pt"
        ema_state = self._resume() if self.last.exists() else None
        if not self.last.exists() and cfg.init:
            self._warm_start()
        if self.rank == 0:
            (self.out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        self.ema = None
        if cfg.ema_decay:
            if not 0.0 < cfg.ema_decay < 1.0:
                raise UserError(f"ema_decay is a number in (0, 1), not {cfg.ema_decay}")
            self.ema = copy.deepcopy(self.model).requires_grad_(False)
            if ema_state is not None:
                self.ema.load_state_dict(ema_state)
        self.scored = self.ema if self.ema is not None else self.model  # what is validated
        self.train_model = self.model
        if self.distributed:
            self.train_model = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[local] if self.device.type == "cuda" else None
            )
        self.steps_per_epoch = max(cfg.valid_every, 1)
        self.ds = TrainMixtures(
            cfg.data, self.steps_per_epoch * cfg.batch_size, seed=cfg.seed, rank=self.rank
        )
        self.valid = (
            load_or_make_mixtures(cfg.data, cfg.valid_split, cfg.valid_mixtures)
            if self.rank == 0
            else None
        )
        self.history = self.out / "history.jsonl"
        csv_path = self.out / "train_log.csv"
        new_csv = not csv_path.exists()
        self.csv_f = open(csv_path, "a", newline="") if self.rank == 0 else None
        self.writer = csv.writer(self.csv_f) if self.csv_f else None
        if self.writer and new_csv:
            self.writer.writerow(
                ["step", "lr", "loss", "si_sdr", "audio_s_per_s", "time", "l_ssl", "teacher_ms"]
            )
        self.bar = None
        if self.rank == 0 and cfg.progress:
            from dsp.progress import progress as tqdm

            self.bar = tqdm(
                total=cfg.steps, initial=self.step, desc=cfg.name, unit="step", dynamic_ncols=True
            )
        self.run_t0 = self.t_step = time.time()
        self.audio_per_step = cfg.batch_size * cfg.data.seconds * self.world

    def _hook_args(self) -> dict:
        cfg = self.cfg
        args = {k: getattr(cfg, k) for k in LOSS_WEIGHTS + SISDR_RAMP}
        if cfg.variant != "baseline":
            args.update(
                teacher=cfg.teacher,
                layer=None if cfg.teacher_layer < 0 else cfg.teacher_layer,
                w_ssl=cfg.w_ssl,
                pretrain_fraction=cfg.pretrain_fraction,
                total_steps=cfg.steps,
            )
        return args

    # -- resume and warm start ------------------------------------------------------------------
    def _resume(self):
        """Continue from ``last.pt``; returns the weight average's state, if it kept one."""
        st = torch.load(self.last, map_location=self.device, weights_only=False)
        if st.get("config", {}).get("model_config") != self.cfg.model_config:
            raise UserError(f"{self.last} was trained with another model config; use another --out")
        self.model.load_state_dict(st["model"])
        self.opt.load_state_dict(st["optim"])
        self.step, self.best, self.epoch = st["step"], st["best"], st["epoch"]
        self.prior_s = st.get("train_seconds", 0.0)
        if self.rank == 0:
            log.info("resuming %s at step %d", self.out, self.step)
        return st.get("ema")

    def _warm_start(self) -> None:
        """Start from the weights of ``cfg.init`` (a shipped name or a checkpoint file)."""
        from models.checkpoint import load_checkpoint, resolve_model_path

        init = self.cfg.init
        src, meta = load_checkpoint(resolve_model_path(init))
        if not init_config_fits(meta.get("config", {}), self.model.config.to_dict()):
            raise UserError(f"{init}: its model config differs from this run's")
        state = src.state_dict()
        if hasattr(self.model, "adapt_state"):
            state = self.model.adapt_state(state)
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith(("distill.", "fuse_")) for k in missing):
            raise UserError(f"{init}: its weights do not fit this model")
        if self.rank == 0:
            log.info("starting from the weights of %s", init)

    # -- the loop -------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self.prior_s + time.time() - self.run_t0

    def loop(self) -> None:
        cfg = self.cfg
        stopping = False
        while self.step < cfg.steps and not stopping:
            for batch in self._loader():
                if self.step >= cfg.steps:
                    break
                loss, logs = self._step(batch)
                stopping = self._should_pause()
                if self.rank != 0:
                    if stopping:
                        break
                    continue
                self._log(loss, logs)
                if self.step % cfg.ckpt_every == 0:
                    self.save_last()
                if self.step % cfg.valid_every == 0 or self.step == cfg.steps or stopping:
                    self._validate()
                if stopping:
                    log.info(
                        "pausing at step %d of %d: max_minutes=%g reached (run again to resume)",
                        self.step,
                        cfg.steps,
                        cfg.max_minutes,
                    )
                    break
            self.epoch += 1

    def _loader(self):
        """This epoch's batches; a resumed run skips the ones it already trained on."""
        cfg = self.cfg
        self.ds.set_epoch(self.epoch)
        skip = self.step - self.epoch * self.steps_per_epoch
        indices = list(range(max(0, skip) * cfg.batch_size, len(self.ds)))
        return torch.utils.data.DataLoader(
            torch.utils.data.Subset(self.ds, indices),
            batch_size=cfg.batch_size,
            num_workers=cfg.num_workers,
            drop_last=True,
            persistent_workers=False,
            prefetch_factor=4 if cfg.num_workers else None,
        )

    def _step(self, batch) -> tuple[torch.Tensor, dict]:
        """One optimiser step (learning rate by the step, clipped gradients, weight average)."""
        cfg = self.cfg
        batch = [b.to(self.device) for b in batch]
        for g in self.opt.param_groups:
            g["lr"] = lr_at(self.step, cfg)
        self.hook.step = self.step
        loss, logs = self.hook.compute_loss(self.train_model, batch)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        if not torch.isfinite(loss):
            raise RuntimeError(f"loss became {loss.item()} at step {self.step}")
        self.opt.step()
        if self.ema is not None:
            ema_update(self.ema, self.model, cfg.ema_decay, self.step)
        self.step += 1
        return loss, logs

    def _should_pause(self) -> bool:
        """max_minutes reached (checked every log_every steps; every process stops together)."""
        cfg = self.cfg
        if not cfg.max_minutes or self.step % cfg.log_every:
            return False
        late = time.time() - self.run_t0 > cfg.max_minutes * 60
        flag = torch.tensor([int(late)], device=self.device)
        if self.distributed:
            dist.all_reduce(flag)
        return bool(flag.item())

    def _log(self, loss: torch.Tensor, logs: dict) -> None:
        cfg = self.cfg
        rate = self.audio_per_step / max(1e-9, (time.time() - self.t_step))
        self.t_step = time.time()
        if self.bar:
            self.bar.update(1)
            self.bar.set_postfix(
                loss=f"{loss.item():.4f}",
                sisdr=f"{logs['si_sdr']:.1f}",
                audio_x=f"{rate:.0f}",
                refresh=False,  # the bar's own pace (30 s in a log) decides when to draw
            )
        if self.step % cfg.log_every == 0:
            self.writer.writerow(
                [
                    self.step,
                    f"{lr_at(self.step, cfg):.3g}",
                    f"{loss.item():.5f}",
                    f"{logs['si_sdr']:.2f}",
                    f"{rate:.1f}",
                    int(time.time()),
                    f"{logs['l_ssl']:.4f}" if "l_ssl" in logs else "",
                    f"{logs['teacher_ms']:.0f}" if "teacher_ms" in logs else "",
                ]
            )
            self.csv_f.flush()

    def _validate(self) -> None:
        """Score the validation mixtures; keep ``best`` (not during pre-training's stage 1, which
        does not enhance yet) and ``latest``; then the resumable state."""
        cfg = self.cfg
        res = validate(self.scored, cfg, self.valid[0], self.valid[1], self.hook)
        res.update(step=self.step, lr=lr_at(self.step, cfg), wall_s=round(self.elapsed(), 1))
        with open(self.history, "a") as f:
            f.write(json.dumps(res) + "\n")
        if self.bar:
            self.bar.write(
                f"step {self.step}: valid loss {res['valid_loss']:.4f}, SI-SDR "
                f"{res['valid_si_sdr']:.2f} dB (input {res['valid_si_sdr_in']:.2f})"
                f", PESQ {res['valid_pesq']:.3f}"
            )
        in_stage1 = self.step <= getattr(self.hook, "pretrain_steps", 0)
        if res["score"] > self.best and not in_stage1:
            self.best = res["score"]
            self.save_model(self.out / "best.safetensors", res)
        self.save_model(self.out / "latest.safetensors", res)
        self.save_last()

    # -- saving -----------------------------------------------------------------------------------
    def save_last(self) -> None:
        _atomic_torch_save(
            {
                "model": self.model.state_dict(),
                **({"ema": self.ema.state_dict()} if self.ema is not None else {}),
                "optim": self.opt.state_dict(),
                "step": self.step,
                "best": self.best,
                "epoch": self.epoch,
                "train_seconds": self.elapsed(),
                "config": self.cfg.to_dict(),
            },
            self.last,
        )

    def save_model(self, path: Path, metrics: dict) -> None:
        save_checkpoint(
            path,
            self.scored,
            train_config=self.cfg.to_dict(),
            data=_data_description(self.cfg),
            metrics=metrics,
            teacher=self.teacher_meta,
        )

    def finish(self) -> None:
        if self.rank == 0:
            self.save_last()
            if self.bar:
                self.bar.close()
            self.csv_f.close()
        if self.distributed:
            dist.barrier()
            dist.destroy_process_group()


def _data_description(cfg: TrainConfig) -> dict:
    d = asdict(cfg.data)
    if not cfg.data.clean_dir:
        from training.corpus import default_corpus_dir

        root = Path(cfg.data.corpus) if cfg.data.corpus else default_corpus_dir()
        summary = root / "summary.json"
        if summary.exists():
            s = json.loads(summary.read_text())
            d["corpus_summary"] = {
                k: s[k] for k in ("total_speech_hours", "total_noise_hours", "voices") if k in s
            }
    return d
