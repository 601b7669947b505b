"""The model-size study: the GCRN at several sizes, trained from scratch by one recipe for the same
CPU-hours each, scored on ``real-valid`` along the way; a plot of score against CPU-hours says
which size learns most for the compute at hand.

    python -m training.size_study plan [--budget-h 1.0]      # sizes, MAC/s, measured s/step
    python -m training.size_study run SIZE [--budget-h 1.0]  # train one size (resumable)
    python -m training.size_study plot                        # docs/size-study.png + table

Every size trains ``training/configs/baseline.toml`` with only its ``model_config`` changed, one
thread and in-process data mixing (``num_workers=0``), so that a step's measured time is the
whole CPU cost of a step. The budget is turned into a number of steps from that measurement
(``plan`` writes it to ``runs/size-study/plan.json``): the schedule is paced by steps, so the
same plan trains the same runs on any machine, and a paused run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

RECIPE = "training/configs/baseline.toml"
ROOT = Path("runs/size-study")
# name -> model_config overrides of the recipe (the GCRN family: encoder, grouped recurrent
# bottleneck, decoder, deep filter and look-ahead kept)
SIZES = {
    "L": {},  # the shipped size: two grouped LSTMs (encoder/decoder split), 3.7 M
    "M": {"decoder_lstm": False, "lstm_groups": 4},
    "S": {"channels": [8, 12, 16, 24, 32], "decoder_lstm": False},
    "XS": {"channels": [8, 8, 12, 16, 16], "decoder_lstm": False},
}
VALID = ["valid_split='real-valid'", "valid_mixtures=24", "valid_pesq=24"]


def _model(size: str):
    from models.gcrn import GCRN, GCRNConfig
    from training.train import TrainConfig

    cfg = TrainConfig.from_toml(RECIPE)
    mc = {**cfg.model_config, **SIZES[size]}
    return GCRN(GCRNConfig.from_dict(mc)), mc


def macs_per_second(model) -> float:
    """Multiply-accumulates per second of audio of the streaming step (convolutions, linear
    layers and LSTMs, counted from their shapes over one second of frames)."""
    import torch
    from torch import nn

    total = 0

    def conv_hook(m, inp, out):
        nonlocal total
        k = m.weight.shape[1] * m.weight.shape[2] * m.weight.shape[3]
        total += out.numel() * k

    def lin_hook(m, inp, out):
        nonlocal total
        total += out.numel() * m.in_features

    def lstm_hook(m, inp, out):
        nonlocal total
        t = inp[0].shape[0] * inp[0].shape[1]
        for layer in range(m.num_layers):
            i = m.input_size if layer == 0 else m.hidden_size
            total += t * 4 * m.hidden_size * (i + m.hidden_size)

    hooks = []
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            hooks.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, nn.Linear):
            hooks.append(mod.register_forward_hook(lin_hook))
        elif isinstance(mod, nn.LSTM):
            hooks.append(mod.register_forward_hook(lstm_hook))
    c = model.config
    frames = c.sample_rate // c.hop  # one second
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 2, frames, c.n_fft // 2 + 1))
    for h in hooks:
        h.remove()
    return float(total)


def _overrides(size: str, out: Path, steps: int, extra: list[str] = ()) -> list[str]:
    mc = SIZES[size]
    ov = [f"out='{out}'", f"steps={steps}", "threads=1", "num_workers=0", "progress=false"]
    ov += [f"model_config.{k}={json.dumps(v)}" for k, v in mc.items()]
    return ov + VALID + list(extra)


def measure_step_seconds(size: str, steps: int = 16) -> float:
    """Median seconds per training step (one thread, data mixed in-process)."""
    import shutil

    from training.train import TrainConfig, train

    out = ROOT / f"probe-{size}"
    shutil.rmtree(out, ignore_errors=True)
    extra = ["valid_mixtures=1", "valid_pesq=1", f"valid_every={steps}", "log_every=1"]
    cfg = TrainConfig.from_toml(RECIPE, _overrides(size, out, steps, extra))
    train(cfg)
    with open(out / "train_log.csv", newline="") as f:
        rates = [float(r["audio_s_per_s"]) for r in csv.DictReader(f)][3:]  # after warm-up
    shutil.rmtree(out, ignore_errors=True)
    rates.sort()
    audio_per_step = cfg.batch_size * cfg.data.seconds
    return audio_per_step / rates[len(rates) // 2]


def plan(budget_h: float) -> dict:
    import torch

    torch.set_num_threads(1)
    rows = {}
    for size in SIZES:
        model, mc = _model(size)
        sec = measure_step_seconds(size)
        steps = int(budget_h * 3600 / sec)
        rows[size] = {
            "model_config": mc,
            "parameters": model.inference_parameters(),
            "mac_per_s": macs_per_second(model),
            "step_s": round(sec, 3),
            "steps": steps,
            "valid_every": max(50, steps // 8),
        }
        print(f"{size}: {rows[size]}", flush=True)
    ROOT.mkdir(parents=True, exist_ok=True)
    out = {"recipe": RECIPE, "budget_cpu_h": budget_h, "sizes": rows}
    (ROOT / "plan.json").write_text(json.dumps(out, indent=1))
    return out


def run(size: str) -> Path:
    from training.train import TrainConfig, train

    p = json.loads((ROOT / "plan.json").read_text())["sizes"][size]
    extra = [f"valid_every={p['valid_every']}"]
    cfg = TrainConfig.from_toml(RECIPE, _overrides(size, ROOT / size, p["steps"], extra))
    return train(cfg)


def curves() -> dict:
    """size -> [(CPU-hours, real-valid PESQ-WB, SI-SDR)] from each run's history, the hours
    being steps x the planned seconds per step (the run's own clock counts validation too)."""
    plan_ = json.loads((ROOT / "plan.json").read_text())["sizes"]
    out = {}
    for size, p in plan_.items():
        hist = ROOT / size / "history.jsonl"
        if not hist.exists():
            continue
        pts = []
        for line in hist.read_text().splitlines():
            h = json.loads(line)
            if not math.isnan(h["valid_pesq"]):
                pts.append((h["step"] * p["step_s"] / 3600, h["valid_pesq"], h["valid_si_sdr"]))
        out[size] = pts
    return out


def plot(png: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plan_ = json.loads((ROOT / "plan.json").read_text())
    cs = curves()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for size, pts in cs.items():
        p = plan_["sizes"][size]
        label = f"{size}: {p['parameters'] / 1e6:.2f} M, {p['mac_per_s'] / 1e6:.0f} M MAC/s"
        axes[0].plot([x[0] for x in pts], [x[1] for x in pts], "o-", label=label)
        axes[1].plot([x[0] for x in pts], [x[2] for x in pts], "o-", label=label)
    axes[0].set_ylabel("real-valid PESQ-WB (mean of -5/0/+5 dB)")
    axes[1].set_ylabel("real-valid SI-SDR (dB)")
    for ax in axes:
        ax.set_xlabel("CPU-hours (one thread)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"GCRN sizes from scratch, {plan_['recipe']}, same budget each")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    lines = [
        "| size | parameters | M MAC/s | s/step (1 thread) | steps | CPU-h done | best PESQ-WB"
        " | at CPU-h | SI-SDR there (dB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for size, p in plan_["sizes"].items():
        pts = cs.get(size) or []
        best = max(pts, key=lambda x: x[1]) if pts else None
        done = pts[-1][0] if pts else 0.0
        lines.append(
            f"| {size} | {p['parameters'] / 1e6:.2f} M | {p['mac_per_s'] / 1e6:.0f} | "
            f"{p['step_s']:.2f} | {p['steps']} | {done:.2f} | "
            + (f"{best[1]:.3f} | {best[0]:.2f} | {best[2]:.2f} |" if best else "- | - | - |")
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("plan")
    a.add_argument("--budget-h", type=float, default=1.0, help="CPU-hours per size")
    r = sub.add_parser("run")
    r.add_argument("size", choices=list(SIZES))
    g = sub.add_parser("plot")
    g.add_argument("--png", default="docs/size-study.png")
    args = p.parse_args(argv)
    if args.cmd == "plan":
        plan(args.budget_h)
    elif args.cmd == "run":
        print(run(args.size))
    else:
        print(plot(Path(args.png)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
