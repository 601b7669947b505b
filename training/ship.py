"""Ship a trained model: copy a run's checkpoint into ``models/shipped/<name>/`` with a model card.

    .venv/bin/python -m training.ship runs/baseline baseline [--eval runs/eval-real-test ...]

The card is written from the run's own record (the recipe and overrides, seed, steps, data stages,
history) and from the ``hushlab eval`` reports given: the chain of commands from a clone to the
shipped file, and the headline scores.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from models.checkpoint import SHIPPED_DIR, load_checkpoint, store_half
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
    provenance: str = "",
    hardware: str = "a 2-core CPU",
) -> str:
    """A short card (under about 60 lines), written from the run's own record: what the model is,
    the chain of commands from a clone to the shipped file, the run (seed, steps, audio heard,
    time, the checkpoint rule), the data, and the headline scores of each report; long tables
    belong in docs/results.md."""
    model, meta = load_checkpoint(checkpoint)
    cfg = meta["train_config"]
    m = meta["metrics"]
    hist = _history(run)
    wall_h = _wall_hours(run, hist)
    reports = _reports(eval_dirs)
    lines = [*_title(name, model, cfg), _teacher_line(meta, cfg), ""]
    evals = [_eval_command(d, rep["meta"]) for d, rep in reports]
    if provenance:  # out of a chain that no recipe remakes: say so, and how it is scored
        lines += ["## Provenance", provenance, "", "Its scores are remade by:", "```", *evals]
    else:
        lines += ["## Remake it from a clone", "```", *_chain(run, name, cfg, meta, evals)]
        lines.append(
            f".venv/bin/python -m training.ship {run} {name}"
            + "".join(f" --eval {d}" for d in eval_dirs or [])
        )
    lines += ["```"]
    steps = int(m.get("step") or cfg.get("steps") or 0)
    audio_h = steps * cfg.get("batch_size", 0) * cfg.get("data", {}).get("seconds", 0)
    scores = ", ".join(
        f"{h['step']}: {h['score']:.3f}" for h in hist if "score" in h and not _nan(h["score"])
    )
    lines += [
        "",
        "## The last stage" if provenance else "## The run",
        f"Seed {cfg.get('seed')}; {cfg.get('steps')} steps of {cfg.get('batch_size')} x "
        f"{cfg.get('data', {}).get('seconds')} s (AdamW, lr {cfg.get('lr')}, "
        f"{cfg.get('warmup_steps')} warm-up steps, cosine decay paced by steps); "
        f"{audio_h / 3600:.2f} h of audio heard up to the shipped step; "
        + (
            f"{wall_h:.2f} h of training on {hardware}."
            if not _nan(wall_h)
            else f"trained on {hardware} (its run folder is gone: time not recorded)."
        ),
        "Shipped checkpoint: "
        + _which_checkpoint(m, hist, cfg.get("steps"), cfg.get("ema_decay"))
        + f", on `{cfg.get('valid_split', 'valid')}` ({cfg.get('valid_mixtures')} pairs x -5/0/+5"
        " dB).",
        *([f"Validation score by step: {scores}."] if scores else []),
        *([note] if note else []),
        "",
        *_data_lines(meta, cfg),
        *_headline_scores(name, reports),
        "",
        "The full tables: [docs/results.md](../../../docs/results.md).",
    ]
    return "\n".join(lines) + "\n"


def _nan(x) -> bool:
    return x != x


def _reports(eval_dirs) -> list[tuple[Path, dict]]:
    """(folder, summary.json) of each ``hushlab eval`` report given that exists, read once."""
    out = []
    for d in eval_dirs or []:
        f = Path(d) / "summary.json"
        if f.exists():
            out.append((Path(d), json.loads(f.read_text())))
    return out


def _eval_command(folder: Path, ev: dict) -> str:
    """The command that made a report (reports before they recorded it: rebuilt from it)."""
    if ev.get("command"):
        return f".venv/bin/{ev['command']}"
    procs = " ".join(ev["processors"])
    return f".venv/bin/hushlab eval {procs} --split {ev['split']} -n {ev['pairs']} --out {folder}"


def _chain(run: Path, name: str, cfg: dict, meta: dict, evals: list[str]) -> list[str]:
    """The commands from ``git clone`` to the run and its reports (the ship command follows)."""
    recipe = cfg.get("recipe") or {}
    config = recipe.get("config") or f"training/configs/{cfg.get('name')}.toml"
    overrides = " ".join(recipe.get("overrides") or [])
    stages = ", ".join(cfg.get("data", {}).get("opt_in") or []) or "none"
    out = [
        "git clone <this repository> hushlab && cd hushlab && make setup",
        f".venv/bin/hushlab corpus build            # opt-in stages heard: {stages}",
    ]
    if meta.get("teacher"):
        t = json.loads(meta["teacher"])
        out.append(f"# teacher: the shipped `{t.get('teacher')}` (its card has its own chain)")
    if cfg.get("init"):
        out.append(f"# starts from the shipped `{cfg['init']}` (its card has its own chain)")
    out.append(
        f".venv/bin/hushlab train --config {config}" + (f" {overrides}" if overrides else "")
    )
    return out + evals


def _headline_scores(name: str, reports: list[tuple[Path, dict]]) -> list[str]:
    """This model's means at each input SNR, per report."""
    lines = []
    for _, rep in reports:
        ev = rep["meta"]
        key = next((p for p in rep["summary"] if p == name or Path(p).parent.name == name), None)
        key = key or next((p for p in rep["summary"] if p not in ("noisy", "bypass")), None)
        if key is None:
            continue
        if not lines:
            lines += [
                "",
                "## Scores (`hushlab eval`; mean at each input SNR)",
                "| split | pairs | SNR (dB) | PESQ-WB | STOI | SI-SDR (dB) | noisy PESQ-WB |",
                "|---|---|---|---|---|---|---|",
            ]
        for snr, v in rep["summary"][key].items():
            noisy = rep["summary"].get("noisy", {}).get(snr, {}).get("pesq", {}).get("mean")
            lines.append(
                f"| {ev['split']} | {ev['pairs']} | {snr} | {v['pesq']['mean']:.3f} | "
                f"{v['stoi']['mean']:.3f} | {v['si_sdr']['mean']:.2f} | "
                + (f"{noisy:.3f} |" if noisy is not None else "- |")
            )
    return lines


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
    p.add_argument("--note", default="", help="a sentence for the card (how it was chosen)")
    p.add_argument(
        "--provenance",
        default="",
        help="where a model came out of a chain the recipes cannot remake, say so here",
    )
    p.add_argument("--hardware", default="a 2-core CPU", help="where it trained")
    p.add_argument("--fp32", action="store_true", help="store float32 weights (default float16)")
    p.add_argument("--dest", default=None, help="shipped-models folder (default: the package's)")
    p.add_argument(
        "--restate",
        action="store_true",
        help="rewrite the card of the model already shipped as NAME (RUN may be gone) from its"
        " checkpoint's record, --provenance and --eval",
    )
    a = p.parse_args(argv)
    run = Path(a.run)
    dst = Path(a.dest or SHIPPED_DIR) / a.name
    if not a.restate:  # copy the run's checkpoint in; --restate keeps the shipped file
        src = run / a.checkpoint
        dst.mkdir(parents=True, exist_ok=True)
        if a.fp32:
            shutil.copyfile(src, dst / "model.safetensors")
        else:  # float16 storage changes no score, fp32 or int8 (scripts/half_precision_check.sh)
            store_half(src, dst / "model.safetensors")
        (dst / INT8_CHECK_FILE).unlink(missing_ok=True)  # it was for the weights just replaced
    card = write_card(
        run,
        a.name,
        dst / "model.safetensors",
        [Path(e) for e in a.eval],
        a.note,
        a.provenance,
        a.hardware,
    )
    (dst / "card.md").write_text(card)
    print(card)
    if a.restate:
        return 0
    print(
        f"{a.name} streams with fp32 weights until the int8 check passes for these: hushlab eval"
        f" {a.name} --split valid -n 40 --backend onnx --out A, the same with --backend onnx-int8"
        " --out B, then python -m training.int8_check --fp32 A --int8 B",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
