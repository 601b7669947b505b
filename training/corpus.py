"""The bundled corpus: clean speech and noise built from what the package registries carry.

Sources (see README): recorded telephony prompts in three languages (Debian's asterisk core
sounds, G.722), neural TTS (Piper, one US voice), formant TTS (espeak-ng, every English accent
with its variants), real effects/music/voice recordings from Debian game data packages, and
sixteen families of synthesised noise. Every voice, prompt, sentence and noise file belongs to one
split; the test split holds voices and noise files that training never sees.

The build is seeded (same arguments -> same files) and resumable: each item is written atomically
and skipped when it already exists; per-source manifests are assembled into ``manifest.jsonl``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from dsp.audio_io import AudioError, load_audio  # noqa: F401  (re-exported)
from dsp.errors import UserError
from training import corpus_plan, corpus_real, corpus_sources  # noqa: F401
from training.corpus_plan import (  # noqa: F401  (re-exported: the corpus's public names)
    N_SENTENCES,
    NOISE_DEBS,
    SENTENCE_SPLIT,
    SPEECH_DEBS,
    engine_rng,
)
from training.corpus_sources import (  # noqa: F401
    ALL_SPLITS,
    SPLITS,
    Row,
    debs_dir,
    default_corpus_dir,
    fetch_deb,
    run_job,
    unpack_deb,
)
from training.corpus_subset import requantise, subset  # noqa: F401
from training.text import sentences

log = logging.getLogger(__name__)
CORPUS_VERSION = 2


@dataclass
class CorpusConfig:
    out: str = ""
    hours: float = 6.0  # clean speech, all splits
    noise_hours: float = 0.0  # 0: max(1, hours / 4) hours of real + synthetic noise
    seed: int = 1234
    workers: int = max(1, min(4, os.cpu_count() or 1))
    use_piper: bool = True
    use_espeak: bool = True
    use_asterisk: bool = True
    use_real_noise: bool = True
    use_real_speech: bool = True  # recorded words/letters of many speakers, and the real splits
    music_max_seconds: float = 60.0

    def resolved_out(self) -> Path:
        return Path(self.out) if self.out else default_corpus_dir()


# -- build -------------------------------------------------------------------------------------


def _run_jobs(jobs: list[dict], workers: int, desc: str) -> list[dict]:
    from dsp.progress import progress as tqdm

    rows = []
    if workers <= 1:
        for job in tqdm(jobs, desc=desc, unit="item", dynamic_ncols=True):
            rows.append(run_job(job))
    else:
        with ProcessPoolExecutor(workers) as ex:
            it = ex.map(run_job, jobs, chunksize=4)
            for row in tqdm(it, total=len(jobs), desc=desc, unit="item", dynamic_ncols=True):
                rows.append(row)
    return [r for r in rows if r is not None]


def _stage(root: Path, name: str, make_jobs, workers: int) -> list[dict]:
    """Run one resumable stage; its rows are cached in parts/<name>.jsonl when complete, and
    the time it took in parts/<name>.seconds (a resumed build adds up the time of every run)."""
    part = root / "parts" / f"{name}.jsonl"
    if part.exists():
        return [json.loads(line) for line in part.read_text().splitlines() if line.strip()]
    t0 = time.time()
    jobs = make_jobs()
    rows = _run_jobs(jobs, workers, name)
    part.parent.mkdir(parents=True, exist_ok=True)
    tmp = part.with_suffix(".part")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, part)
    (root / "parts" / f"{name}.seconds").write_text(f"{time.time() - t0:.1f}\n")
    return rows


def build(cfg: CorpusConfig) -> Path:
    """Build (or finish building) the corpus; returns its root folder."""
    root = cfg.resolved_out()
    root.mkdir(parents=True, exist_ok=True)
    cfg_path = root / "config.json"
    want = {**asdict(cfg), "out": str(root), "version": CORPUS_VERSION}
    if cfg_path.exists():
        have = json.loads(cfg_path.read_text())
        if {k: v for k, v in have.items() if k != "workers"} != {
            k: v for k, v in want.items() if k != "workers"
        }:
            raise UserError(
                f"{root} holds a corpus built with other settings; use another --out or delete it"
            )
    cfg_path.write_text(json.dumps(want, indent=2))
    rng = random.Random(cfg.seed)
    texts = sentences(N_SENTENCES, seed=cfg.seed)
    (root / "sentences.txt").write_text("".join(f"{i}\t{t}\n" for i, t in enumerate(texts)))
    h = cfg.hours
    rows: list[dict] = []
    shares = _speech_shares(cfg)
    if cfg.use_asterisk:
        rows += _stage(
            root,
            "asterisk",
            lambda: corpus_plan.plan_asterisk(
                cfg, root, h * shares["asterisk"], random.Random(rng.random())
            ),
            cfg.workers,
        )
    have = sum(r["duration"] for r in rows) / 3600
    rest = max(0.0, h - have)
    engines = [e for e, on in (("piper", cfg.use_piper), ("espeak", cfg.use_espeak)) if on]
    for e in engines:
        hours_e = rest * (
            0.55 if e == "piper" and len(engines) == 2 else 0.45 if len(engines) == 2 else 1.0
        )
        rows += _stage(
            root,
            e,
            lambda e=e, hours_e=hours_e: corpus_plan.plan_tts(
                cfg, root, e, hours_e, engine_rng(rng.random(), e), texts
            ),
            cfg.workers,
        )
    speech_rows = list(rows)
    if not speech_rows:
        raise UserError("no speech source is enabled")
    noise_h = cfg.noise_hours or max(1.0, h / 4)
    if cfg.use_real_noise:
        rows += _stage(
            root,
            "real_noise",
            lambda: corpus_plan.plan_real_noise(cfg, root, random.Random(cfg.seed + 1)),
            cfg.workers,
        )
    real_noise_h = sum(r["duration"] for r in rows if r["kind"] == "noise") / 3600
    synth_h = max(noise_h * 0.3, noise_h - real_noise_h)
    rows += _stage(
        root,
        "synthetic",
        lambda: corpus_plan.plan_synthetic(
            cfg, root, synth_h, random.Random(cfg.seed + 2), speech_rows
        ),
        cfg.workers,
    )
    if cfg.use_real_speech:
        rows += _stage(
            root,
            "real_speech",
            lambda: corpus_real.plan_real_speech(
                root,
                {d: corpus_plan.unpacked(d) for d in corpus_real.REAL_SPEECH_DEBS},
                random.Random(cfg.seed + 3),
            ),
            cfg.workers,
        )
        rows += _stage(
            root,
            "real_noise_extra",
            lambda: corpus_plan.plan_real_noise(cfg, root, random.Random(cfg.seed + 4), extra=True),
            cfg.workers,
        )
        rows += _stage(
            root,
            "real_voices",
            lambda: corpus_real.plan_voice_noise(
                root,
                {
                    d: corpus_real.voice_lines(corpus_plan.unpacked(d), d)
                    for d in corpus_real.VOICE_NOISE_DEBS
                },
                random.Random(cfg.seed + 5),
            ),
            cfg.workers,
        )
        rows += _stage(
            root,
            "real_noise_more",
            lambda: corpus_plan.plan_real_noise(cfg, root, random.Random(cfg.seed + 6), more=True),
            cfg.workers,
        )
        rows += _stage(root, "real_wide", lambda: _plan_wide(cfg, root), cfg.workers)
    manifest = root / "manifest.jsonl"
    tmp = manifest.with_suffix(".part")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, manifest)
    summary = summarise(rows)
    summary["screened_out_words"] = corpus_real.screened_out(root)
    summary["build_seconds"] = round(
        sum(float(p.read_text()) for p in (root / "parts").glob("*.seconds")), 1
    )
    (root / "summary.json").write_text(json.dumps(summary, indent=2))
    (root / "summary.md").write_text(summary_markdown(summary))
    return root


def _plan_wide(cfg: CorpusConfig, root: Path) -> list[dict]:
    """The stage ``real_wide``: the sources of ``corpus_real.WIDE_SPEECH_DEBS`` and
    ``WIDE_NOISE_DEBS`` (training uses them only when a config opts in)."""
    unpacked = {d: corpus_plan.unpacked(d) for d in corpus_real.WIDE_SPEECH_DEBS}
    speech = corpus_real.plan_real_speech(
        root,
        unpacked,
        random.Random(cfg.seed + 7),
        files=corpus_real.syllable_speech_files(unpacked),
    )
    return speech + corpus_plan.plan_real_noise(cfg, root, random.Random(cfg.seed + 8), wide=True)


def _speech_shares(cfg: CorpusConfig) -> dict[str, float]:
    return {"asterisk": 0.3}


def summarise(rows: list[dict]) -> dict:
    """Hours per source and split, distinct speakers (voices) per source, real vs synthetic."""
    out: dict = {
        "speech_hours": {},
        "noise_hours": {},
        "speakers": {},
        "real": {},
        "voices": {},
        "noise_families": {},
        "files": len(rows),
    }
    voices = defaultdict(set)
    speakers = defaultdict(lambda: defaultdict(set))
    fams = defaultdict(set)
    for r in rows:
        key = "speech_hours" if r["kind"] == "speech" else "noise_hours"
        d = out[key].setdefault(r["source"], {s: 0.0 for s in ALL_SPLITS})
        d[r["split"]] += r["duration"] / 3600
        out["real"][r["source"]] = corpus_real.is_real_source(r["source"])
        if r["kind"] == "speech":
            voices[r["split"]].add(r["voice"])
            # a warped copy is an apparent voice, not another speaker
            speakers[r["source"]][r["split"]].add(r["voice"].split("-w")[0])
        else:
            fams[r["split"]].add(f"{r['source']}:{r['voice']}")
    for key in ("speech_hours", "noise_hours"):
        for d in out[key].values():
            for s in list(d):
                d[s] = round(d[s], 3)
                if d[s] == 0 and s in corpus_real.REAL_SPLITS:
                    del d[s]
    out["speakers"] = {src: {s: len(v) for s, v in d.items()} for src, d in speakers.items()}
    out["voices"] = {s: len(v) for s, v in voices.items()}
    out["unseen_test_voices"] = len(voices["test"] - voices["train"])
    out["noise_families"] = {s: sorted(v) for s, v in fams.items()}
    out["unseen_test_noise_files"] = sum(
        1 for r in rows if r["kind"] == "noise" and r["split"] == "test"
    )
    out["total_speech_hours"] = round(sum(sum(d.values()) for d in out["speech_hours"].values()), 3)
    out["total_noise_hours"] = round(sum(sum(d.values()) for d in out["noise_hours"].values()), 3)
    train_speech = {src: d.get("train", 0.0) for src, d in out["speech_hours"].items()}
    real_train = sum(h for src, h in train_speech.items() if out["real"][src])
    out["real_train_speech_hours"] = round(real_train, 3)
    out["real_train_speakers"] = sum(
        d.get("train", 0) for src, d in out["speakers"].items() if out["real"][src]
    )
    return out


def summary_markdown(s: dict) -> str:
    real_splits = [
        sp
        for sp in corpus_real.REAL_SPLITS
        if any(sp in d for key in ("speech_hours", "noise_hours") for d in s[key].values())
    ]
    cols = list(SPLITS) + real_splits
    lines = [
        "# Hushlab corpus summary",
        "",
        f"Clean speech: {s['total_speech_hours']:.2f} h; noise: {s['total_noise_hours']:.2f} h;"
        f" {s['files']} files.",
        "",
        "| kind | source | real | " + " | ".join(f"{c} h" for c in cols) + " | speakers | share |",
        "|---|---|---|" + "---|" * len(cols) + "---|---|",
    ]
    for key, label, total in (
        ("speech_hours", "speech", s["total_speech_hours"]),
        ("noise_hours", "noise", s["total_noise_hours"]),
    ):
        for src, d in sorted(s[key].items()):
            share = sum(d.values()) / total if total else 0
            real = "yes" if s.get("real", {}).get(src, corpus_real.is_real_source(src)) else "no"
            spk = s.get("speakers", {}).get(src, {}) if label == "speech" else {}
            spk_txt = " / ".join(f"{spk.get(c, 0)}" for c in cols) if spk else ""
            lines.append(
                f"| {label} | {src} | {real} | "
                + " | ".join(f"{d.get(c, 0.0):.2f}" for c in cols)
                + f" | {spk_txt} | {share:.0%} |"
            )
    lines += [
        "",
        f"Speakers are counted per split ({' / '.join(cols)}); a TTS voice or a time-warped "
        "copy counts as a voice of its source."
        + "".join(
            f" {a} mixes {b}'s speakers with its own noise."
            for a, b in corpus_real.SPEECH_SPLIT.items()
            if a in cols
        ),
        f"Voices per split: {s['voices']}; test voices never heard in training: "
        f"{s['unseen_test_voices']}.",
        f"Noise families (train): {len(s['noise_families'].get('train', []))}; "
        f"test noise files (all unseen in training): {s['unseen_test_noise_files']}.",
    ]
    if "real_train_speech_hours" in s:
        lines.append(
            f"Real recorded speech in training: {s['real_train_speech_hours']:.2f} h from "
            f"{s['real_train_speakers']} speakers; words screened out as noisy or narrowband: "
            f"{s.get('screened_out_words', 0)}."
        )
    lines.append("")
    if "build_seconds" in s:
        lines.append(f"Built in {s['build_seconds'] / 60:.1f} min (every stage, resumed or not).")
    return "\n".join(lines) + "\n"


def load_manifest(root: str | os.PathLike) -> list[dict]:
    root = Path(root)
    path = root / "manifest.jsonl"
    if not path.exists():
        raise UserError(
            f"no corpus at {root} (missing manifest.jsonl): run 'hushlab corpus build'"
            f" or pass a DNS-layout folder"
        )
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


__all__ = ["CorpusConfig", "build", "load_manifest", "default_corpus_dir", "AudioError"]
