"""Ship a trained model: copy a run's checkpoint into ``models/shipped/<name>/`` with a model card.

    .venv/bin/python -m training.ship runs/baseline baseline [--eval runs/eval-baseline]

The card records the command, the resolved training config, the data (corpus summary), steps and
wall time from the run's history, the validation figures, and - when given - the test-set table
written by ``hushlab eval``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from models.checkpoint import SHIPPED_DIR, load_checkpoint, shipped_models
from models.onnx_step import INT8_CHECK_FILE

# optional loss terms a card names when a run used them (training/losses.py)
OPTIONAL_TERMS = (
    ("w_mrstft", "multi-resolution STFT loss"),
    ("w_pesq", "PESQ-modelled loudness-disturbance loss"),
)


def _which_checkpoint(
    m: dict, hist: list[dict], steps: int | None = None, ema_decay: float | None = None
) -> str:
    """The checkpoint's place among the run's validations: the best, or - when a better one was
    not kept (a file other than best.safetensors, or a loop that skipped some) - which it is."""
    what = f"the moving average of the weights (ema_decay {ema_decay})" if ema_decay else ""
    scored = [h for h in hist if "score" in h]
    top = max(scored, key=lambda h: h["score"]) if scored else None
    if top is None or top["step"] == m.get("step"):
        best = f"the best validation score (PESQ + 0.1 x SI-SDR) at step {m.get('step')} of {steps}"
        return f"{what} with {best}" if what else best
    return (
        f"{what or 'the checkpoint'} at step {m.get('step')} of {steps} (validation score "
        f"PESQ + 0.1 x SI-SDR {m.get('score', float('nan')):.3f}; step {top['step']} scored "
        f"{top['score']:.3f} and was not kept)"
    )


def write_card(
    run: Path,
    name: str,
    checkpoint: Path,
    eval_dirs: list[Path] | None,
    note: str = "",
    how: list[str] | None = None,
    hardware: str = "a 2-core CPU",
) -> str:
    model, meta = load_checkpoint(checkpoint)
    cfg = meta["train_config"]
    m = meta["metrics"]
    soup = meta.get("extra", {}).get("soup")
    if soup:
        return _soup_card(meta, model, soup, name, run, checkpoint, eval_dirs, note, how, hardware)
    hist = _history(run)
    wall_h = _wall_hours(run, hist)
    shipped = shipped_models()
    lines = [
        *_title(name, model, cfg),
        "## How it was made",
        "```",
        *(
            how
            or [
                "hushlab corpus build",
                f"hushlab train --config training/configs/{cfg.get('name')}.toml",
            ]
        ),
        _ship_command(run, name, eval_dirs, note, how, hardware),
        "```",
        "Shipped checkpoint: "
        + _which_checkpoint(m, hist, cfg.get("steps"), cfg.get("ema_decay"))
        + f" (batch {cfg.get('batch_size')} x "
        f"{cfg.get('data', {}).get('seconds')} s, AdamW lr {cfg.get('lr')} with warm-up and "
        f"cosine decay), {wall_h:.2f} h of training time on {hardware}"
        " (from the run's history).",
        *(
            [
                f"Training started from the weights of `{cfg['init']}`"
                + (" (the model shipped then)." if cfg["init"] in shipped else " (a file).")
            ]
            if cfg.get("init")
            else []
        ),
        *([note] if note else []),
        _teacher_line(meta, cfg),
        "",
        *_data_lines(meta, cfg),
        "",
        f"## Validation during training ({cfg.get('valid_split', 'valid')} split: "
        f"{cfg.get('valid_mixtures')} pairs x (-5, 0, +5) dB; PESQ on the first "
        f"{cfg.get('valid_pesq')})",
        "| step | loss | SI-SDR (dB) | input SI-SDR (dB) | PESQ-WB |",
        "|---|---|---|---|---|",
    ]
    for h in hist:
        lines.append(
            f"| {h['step']} | {h['valid_loss']:.4f} | {h['valid_si_sdr']:.2f} | "
            f"{h['valid_si_sdr_in']:.2f} | {h['valid_pesq']:.3f} |"
        )
    return "\n".join(lines + _eval_sections(eval_dirs)) + "\n"


def _title(name: str, model, cfg: dict) -> list[str]:
    c = model.config
    la = getattr(c, "lookahead", 0)
    ahead = f", {la} frame{'s' if la > 1 else ''} of look-ahead" if la else ""
    return [
        f"# Model card: `{name}`",
        "",
        f"A causal GCRN ({model.inference_parameters() / 1e6:.2f} M parameters, "
        f"{model.inference_parameters() * 4 / 1e6:.1f} MB in fp32; 16 kHz, 20 ms hop{ahead}, "
        f"{1000 * (c.hop + model.latency_samples) / c.sample_rate:.0f} ms algorithmic latency), "
        f"variant `{cfg.get('variant')}`.",
        "",
    ]


def _data_lines(meta: dict, cfg: dict) -> list[str]:
    """The corpus, the on-the-fly mixtures and the loss a checkpoint was trained with."""
    lines = ["## Data"]
    data = meta.get("data", {})
    cs = data.get("corpus_summary", {})
    if cs:
        lines.append(
            f"Corpus `{data.get('corpus') or 'default'}`: {cs.get('total_speech_hours')} h of"
            " clean speech, "
            f"{cs.get('total_noise_hours')} h of noise; voices per split "
            f"{cs.get('voices')}."
        )
    lines += [
        f"On-the-fly mixtures: SNR uniform in [{data.get('snr_min')}, {data.get('snr_max')}] dB, "
        f"level in [{data.get('level_min')}, {data.get('level_max')}] dBFS, reverberation "
        f"{data.get('p_reverb')}, two noises {data.get('p_two_noises')}, band limit "
        f"{data.get('p_bandlimit')}, clipping {data.get('p_clip')}, real-noise share "
        f"{data.get('real_noise_share')}, real-speech share "
        f"{data.get('real_speech_share', 0.0) or 'off (files drawn evenly)'}"
        + (f", interfering talker {data['p_talker']}" if data.get("p_talker") else "")
        + (
            f", second talker kept in the target {data['p_kept_talker']}"
            if data.get("p_kept_talker")
            else ""
        )
        + (f", noise left out: {', '.join(data['drop_noise'])}" if data.get("drop_noise") else "")
        + (f", newest sources used: {', '.join(data['opt_in'])}" if data.get("opt_in") else "")
        + (
            ", noise heard " + ", ".join(f"{k} x{v}" for k, v in data["noise_weights"].items())
            if data.get("noise_weights")
            else ""
        )
        + (
            f", speed change {data['p_speed']} (+-{data.get('speed_max')})"
            if data.get("p_speed")
            else ""
        )
        + (
            f", random EQ {data['p_eq']} (+-{data.get('eq_gain_db')} dB)"
            if data.get("p_eq")
            else ""
        )
        + ".",
        f"Loss: MSE on compressed complex spectra + compressed magnitudes, w_under = "
        f"{cfg.get('w_under', 0.0)} (extra weight on speech the estimate removes), w_sisdr = "
        f"{cfg.get('w_sisdr', 0.0)}"
        + (
            f" (weighted by the input SNR: 0 at {cfg['sisdr_snr_lo']} dB, 1 from "
            f"{cfg['sisdr_snr_hi']} dB)"
            if cfg.get("sisdr_snr_hi", 0.0) > cfg.get("sisdr_snr_lo", 0.0)
            else ""
        )
        + "".join(f", {k} = {cfg[k]} ({what})" for k, what in OPTIONAL_TERMS if cfg.get(k))
        + ".",
    ]
    return lines


def _eval_sections(eval_dirs: list[Path] | None) -> list[str]:
    """The tables of ``hushlab eval`` reports, each under a heading that says what was reused."""
    lines: list[str] = []
    for eval_dir in eval_dirs or []:
        if not (eval_dir / "summary.md").exists():
            continue
        ev = json.loads((eval_dir / "summary.json").read_text())["meta"]
        reused = [p for p in ev["processors"] if p not in ev.get("scored", ev["processors"])]
        lines += [
            "",
            f"## `{ev['split']}` split ({ev['pairs']} pairs, "
            f"`hushlab eval`, {ev['seconds'] / 60:.0f} min"
            + (
                f"; the scores of {', '.join(reused)} reused from "
                f"{', '.join(ev.get('reused_from', []))}"
                if reused
                else ""
            )
            + ")",
            "",
            (eval_dir / "summary.md").read_text(),
        ]
        if (eval_dir / "paired.md").exists():
            lines += ["", (eval_dir / "paired.md").read_text()]
    return lines


def _history(run: Path) -> list[dict]:
    f = run / "history.jsonl"
    return [json.loads(x) for x in f.read_text().splitlines() if x] if f.exists() else []


def _wall_hours(run: Path, hist: list[dict]) -> float:
    """Training time: the trainer's own clock (it leaves out the gaps of a resumed run); older
    runs: the span of the training log."""
    walls = [h["wall_s"] for h in hist if "wall_s" in h]
    if walls:
        return max(walls) / 3600
    log = run / "train_log.csv"
    if not log.exists():
        return float("nan")
    import csv

    with open(log, newline="") as f:
        times = [int(r["time"]) for r in csv.DictReader(f) if (r.get("time") or "").isdigit()]
    return (max(times) - min(times)) / 3600 if times else float("nan")


def _ship_command(run, name, eval_dirs, note, how, hardware) -> str:
    return (
        f".venv/bin/python -m training.ship {run} {name}"
        + "".join(f" --eval {d}" for d in eval_dirs or [])
        + (" --note '...'" if note else "")
        + (" --how '...'" if how else "")
        + (f" --hardware '{hardware}'" if hardware != "a 2-core CPU" else "")
    )


def _soup_card(meta, model, soup, name, run, checkpoint, eval_dirs, note, how, hardware) -> str:
    """The card of a model soup (training/soup.py): what was averaged, and each ingredient's run."""
    equal = len({r["weight"] for r in soup}) == 1
    rows, hours = [], 0.0
    for r in soup:
        src = Path(r["path"])
        h = _wall_hours(src.parent, _history(src.parent))
        hours += 0.0 if h != h else h
        score = f"{r['score']:.3f}" if r.get("score") is not None else "-"
        rows.append(
            f"| `{r['path']}` | {r.get('name')} | {r.get('step')} | {score} | {r['weight']:.3f} |"
        )
    lines = [
        *_title(name, model, meta["train_config"]),
        "## How it was made",
        "```",
        *(how or [f".venv/bin/python -m training.soup {checkpoint.name} ..."]),
        _ship_command(run, name, eval_dirs, note, how, hardware),
        "```",
        f"Shipped checkpoint: a model soup - the {'equal-weight' if equal else 'weighted'} mean of"
        f" the weights (BatchNorm statistics included) of {len(soup)} checkpoints of one model"
        " (training/soup.py); no training of its own. Its ingredients took "
        f"{hours:.2f} h of training time on {hardware} together (from their runs' histories).",
        *([note] if note else []),
        _teacher_line(meta, meta["train_config"]),
        "",
        *_data_lines(meta, meta["train_config"]),
        "(the first ingredient's; each ingredient's card or run records its own)",
        "",
        "## Ingredients (validation score PESQ + 0.1 x SI-SDR from each run's own validation)",
        "| checkpoint | run | step | validation score | weight |",
        "|---|---|---|---|---|",
        *rows,
    ]
    return "\n".join(lines + _eval_sections(eval_dirs)) + "\n"


def _teacher_line(meta: dict, cfg: dict) -> str:
    if not meta.get("teacher"):
        return "Teacher: none (the baseline uses no SSL embeddings)."
    t = json.loads(meta["teacher"])
    extra = {
        "kd": "a head on the encoder output predicts the teacher's normalised embedding of the"
        " clean speech (L1); the head is dropped at inference, so it costs what the baseline"
        " costs",
        "pretrain": f"stage 1 ({t.get('pretrain_steps')} steps): encoder + head predict the"
        " clean-speech embeddings; stage 2: the whole model trains for enhancement",
        "fusion": "the teacher's embedding of the noisy input is projected and mixed into the"
        " bottleneck; the teacher runs at inference (streaming)",
    }.get(t.get("variant"), "")
    return (
        f"Teacher: `{t.get('teacher')}` (digest {str(t.get('digest'))[:16]}, "
        f"{'causal' if t.get('causal') else 'bidirectional'}, {t.get('layers')} layers x "
        f"{t.get('dim')}, {t.get('parameters', 0) / 1e6:.2f} M parameters), layer "
        f"{t.get('layer')}, SSL weight w_ssl = {cfg.get('w_ssl')}: {extra}."
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="training output folder")
    p.add_argument("name", help="shipped name, e.g. baseline")
    p.add_argument("--checkpoint", default="best.safetensors")
    p.add_argument(
        "--eval",
        action="append",
        default=[],
        help="a hushlab eval report folder for the card (repeatable)",
    )
    p.add_argument("--note", default="", help="a sentence for the card (how the run ended)")
    p.add_argument(
        "--how", action="append", default=None, help="a command that made it (repeatable)"
    )
    p.add_argument("--hardware", default="a 2-core CPU", help="where it trained")
    a = p.parse_args(argv)
    run = Path(a.run)
    src = run / a.checkpoint
    dst = SHIPPED_DIR / a.name
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst / "model.safetensors")
    (dst / INT8_CHECK_FILE).unlink(missing_ok=True)  # it was for the weights just replaced
    card = write_card(
        run,
        a.name,
        dst / "model.safetensors",
        [Path(e) for e in a.eval],
        a.note,
        a.how,
        a.hardware,
    )
    (dst / "card.md").write_text(card)
    print(card)
    print(
        f"{a.name} streams with fp32 weights until the int8 check passes for these: hushlab eval"
        f" {a.name} --split valid -n 40 --backend onnx --out A, the same with --backend onnx-int8"
        " --out B, then python -m training.int8_check --fp32 A --int8 B",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
