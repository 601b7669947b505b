"""Ship a pre-trained teacher: ``models/teachers/<name>/`` with a model card.

    .venv/bin/python -m training.ship_teacher runs/teacher teacher [--how CMD ...]

Copies the run's ``save_pretrained`` folder, computes the per-layer normalisation statistics over
the corpus's clean training speech when the folder has none, runs the voicing probe
probes
(training/probe.py: cross-voice sentence identity, voicing) against an untrained teacher and
log-mel features, and writes the card: data,
steps, the pre-training curves (contrastive loss per masked frame, masked-frame accuracy) and the
probe table.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path

from models.teacher import STATS_FILE, TEACHERS_DIR, Teacher


def write_card(
    run: Path, name: str, dest: Path, probes: list[dict], how: list[str], hw: str
) -> str:
    from training.probe import probe_markdown

    cfg = json.loads((run / "config.json").read_text())
    hist = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines() if x.strip()]
    t = Teacher(dest)
    d = t.describe()
    chance = math.log(1 + cfg["num_negatives"])
    last = hist[-1]
    corpus = cfg.get("corpus") or "the bundled corpus"
    summary = Path(cfg["corpus"]) / "summary.json" if cfg.get("corpus") else None
    data = f"clean training speech of `{corpus}`"
    if summary and summary.exists():
        s = json.loads(summary.read_text())
        data += f" ({s['total_speech_hours']:.2f} h, {s['voices'].get('train', 0)} voices)"
    lines = [
        f"# Teacher card: `{name}`",
        "",
        f"A compact Wav2Vec2 ({d['parameters'] / 1e6:.2f} M parameters, {d['layers']} transformer"
        f" layers, {d['dim']}-d, the wav2vec2-base convolutional front end: 400-sample receptive"
        " field, 20 ms stride) pre-trained with the wav2vec 2.0 objective"
        " (`Wav2Vec2ForPreTraining`: masked spans, contrastive loss against"
        f" {cfg['num_negatives']} sampled negatives plus codebook diversity, Gumbel temperature"
        f" {cfg['gumbel_start']} -> {cfg['gumbel_end']}). Saved with `save_pretrained`; it loads"
        " through the same code as `facebook/wav2vec2-base` (`hushlab analyze --teacher DIR`)."
        " Default layer: the last." + _variant_text(cfg),
        "",
        "## How it was made",
        "```",
        *how,
        f".venv/bin/python -m training.ship_teacher {run} {name}" + " --how '...'" * bool(how),
        "```",
        f"Data: {data}; crops of {cfg['seconds']} s, batch {cfg['batch_size']}, AdamW lr"
        f" {cfg['lr']} with warm-up and cosine decay; {last['step']} steps,"
        f" {last['wall_s'] / 60:.1f} min on {hw}. Normalisation statistics"
        f" (`{STATS_FILE}`): every layer, over clean training speech of the full corpus.",
        "",
        "## Pre-training curves",
        "",
        f"Validation: {cfg['valid_clips']} fixed {cfg['seconds']} s crops of the valid split."
        f" Chance: contrastive loss {chance:.2f} per masked frame, accuracy"
        f" {1 / (1 + cfg['num_negatives']):.3f}.",
        "",
        *_curve_table(hist),
        "",
        "![pre-training curves](pretraining.png)",
        "",
        "## Probes: what the embeddings carry",
        "",
    ]
    for res in probes:
        lines += [probe_markdown(res), ""]
    return "\n".join(lines) + "\n"


def _variant_text(cfg: dict) -> str:
    parts = []
    if cfg.get("causal"):
        parts.append(
            " Streaming (`models/causal_teacher.py`): per-frame layer norms in the front end, a"
            " fixed input gain, a past-only positional convolution and causal attention over"
            f" {cfg.get('causal_context')} frames ({cfg.get('causal_context', 0) * 0.02:.2f} s);"
            " frame t depends on audio up to the end of frame t only."
        )
    if cfg.get("init"):
        parts.append(
            f" Warm-started from `{cfg['init']}` (every weight whose name and shape match)."
        )
    if cfg.get("distil_from"):
        parts.append(
            f" Besides the contrastive loss, every layer regresses `{cfg['distil_from']}`'s"
            " standardised hidden states of the same frame (L1 plus -log sigmoid(cosine),"
            f" weight {cfg.get('w_distil', 1.0)}), which that teacher computes from the whole clip."
        )
    return "".join(parts)


def _curve_table(hist: list[dict]) -> list[str]:
    distil = all("valid_distil" in h for h in hist)
    head = "| step | contrastive loss per masked frame | masked-frame accuracy |"
    rule = "|---|---|---|"
    if distil:
        head += " distillation loss |"
        rule += "---|"
    rows = [
        f"| {h['step']} | {h['valid_contrastive']:.3f} | {h['valid_accuracy']:.3f} |"
        + (f" {h['valid_distil']:.3f} |" if distil else "")
        for h in hist
    ]
    return [head, rule, *rows]


def main(argv=None) -> int:
    from training.corpus import default_corpus_dir
    from training.probe import probe, sentence_probe
    from training.teacher import corpus_stats, plot_history

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="pre-training output folder (with teacher/)")
    p.add_argument("name", help="shipped name, e.g. teacher")
    p.add_argument("--how", action="append", default=[], help="a command that made it")
    p.add_argument("--hardware", default="a 2-core CPU", help="where it trained")
    p.add_argument("--corpus", default="", help="corpus for statistics and the probe")
    p.add_argument("--probe-utterances", type=int, default=80)
    a = p.parse_args(argv)
    run = Path(a.run)
    dest = TEACHERS_DIR / a.name
    dest.mkdir(parents=True, exist_ok=True)
    for f in ("config.json", "model.safetensors", "preprocessor_config.json"):
        shutil.copyfile(run / "teacher" / f, dest / f)
    corpus = a.corpus or str(default_corpus_dir())
    teacher = Teacher(dest)
    stats = dest / STATS_FILE
    if stats.exists():
        from safetensors import safe_open

        with safe_open(str(stats), "pt") as f:
            if not teacher.matches(f.metadata().get("digest", "")):
                stats.unlink()
    if not stats.exists():
        corpus_stats(teacher, corpus)
    plot_history(run, dest / "pretraining.png")
    probes = [sentence_probe(teacher), probe(teacher, corpus, utterances=a.probe_utterances)]
    (dest / "probe.json").write_text(json.dumps(probes, indent=1))
    card = write_card(run, a.name, dest, probes, a.how, a.hardware)
    (dest / "card.md").write_text(card)
    print(card)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
