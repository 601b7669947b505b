"""Portable slices of a built corpus (``hushlab corpus subset``), for a machine the whole corpus
cannot be sent to."""

from __future__ import annotations

import json
import os
import random
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np

from dsp.audio_io import load_audio
from dsp.errors import UserError
from training import CORPUS_RATE
from training.corpus_real import speech_split
from training.corpus_sources import _sha1, _write_flac


def _round_robin(
    rows: list[dict], key, budget_s: float, rng: random.Random, max_s: float = 0.0
) -> list[dict]:
    """Rows taken one per group in turn (groups and rows shuffled) until ``budget_s`` seconds,
    counting at most ``max_s`` seconds of a file when it is set."""
    groups = defaultdict(list)
    for r in rows:
        groups[key(r)].append(r)
    queues = [rng.sample(g, len(g)) for _, g in sorted(groups.items())]
    rng.shuffle(queues)
    out, total = [], 0.0
    while total < budget_s and any(queues):
        for q in queues:
            if q and total < budget_s:
                r = q.pop()
                out.append(r)
                total += min(r["duration"], max_s) if max_s else r["duration"]
    return out


def requantise(x: np.ndarray, bits: int) -> np.ndarray:
    """``x`` as 16-bit samples whose lowest ``16 - bits`` bits are zero: what FLAC then stores
    in about ``bits`` bits a sample."""
    step = 2 ** (16 - bits)
    q = np.round(np.clip(x, -1, 1) * 32768 / step) * step
    return np.clip(q, -32768, 32768 - step).astype(np.int16)


def subset(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    speech_hours: float,
    noise_hours: float,
    valid_pairs: int = 40,
    seed: int = 0,
    max_file_seconds: float = 0.0,
    bits: int = 16,
) -> dict:
    """Copy a portable slice of a built corpus: training speech and noise taken source by source
    in the full corpus's proportions and, within a source, evenly across voices (noise
    families), and the validation files that the first
    ``valid_pairs`` stored validation mixtures use (with that mixture list; for ``valid`` and,
    when stored, ``real-valid`` and ``real-voices``). With
    ``max_file_seconds``, a training file longer than that is cut to a random excerpt of that
    length, so the same bytes hold more voices and noises. With ``bits`` below 16, training
    files keep only that many significant bits (their samples rounded to multiples of
    2^(16-bits) LSB; the corpus stores files peak-normalised, so 9 bits leave the rounding noise
    about 40 dB under the signal) and FLAC stores the rest as wasted bits: about 2.7x fewer
    bytes at 9 bits. Validation files are copied exactly. The test split is never copied.
    For training on a machine the whole corpus cannot be sent to."""
    from training.corpus import load_manifest, summarise, summary_markdown

    if not 4 <= bits <= 16:
        raise UserError(f"bits must be between 4 and 16, not {bits}")
    src, dst = Path(src), Path(dst)
    rows = load_manifest(src)
    if dst.exists() and any(dst.iterdir()):
        raise UserError(f"{dst} exists and is not empty")
    rng = random.Random(seed)
    train = [r for r in rows if r["split"] == "train"]
    chosen = []
    for kind, hours, key in (
        ("speech", speech_hours, lambda r: r["voice"]),
        ("noise", noise_hours, lambda r: r["voice"]),
    ):
        by_source = defaultdict(list)
        for r in train:
            if r["kind"] == kind:
                by_source[r["source"]].append(r)
        total = sum(r["duration"] for g in by_source.values() for r in g) or 1.0
        for _, group in sorted(by_source.items()):
            share = sum(r["duration"] for r in group) / total  # each source keeps its share
            chosen += _round_robin(group, key, hours * 3600 * share, rng, max_file_seconds)
    # the stored validation mixtures of every split that has them (valid, and real-valid and
    # real-voices when the corpus has real recordings): their first ``valid_pairs`` pairs and the
    # files they use (real-voices' speech is real-valid's)
    stored_lists = {}
    for split in ("valid", "real-valid", "real-voices"):
        mix_path = src / "mixtures" / f"{split}.json"
        if not mix_path.exists():
            if split == "valid":
                raise UserError(f"{mix_path}: no stored validation mixtures (run a training once)")
            continue
        stored = json.loads(mix_path.read_text())
        n_snr = len(stored["key"]["snrs"])
        mixes = stored["mixtures"][: valid_pairs * n_snr]
        used = {m["speech"] for m in mixes} | {m["noise"] for m in mixes}
        have = {r["path"] for r in chosen}
        chosen += [
            r
            for r in rows
            if r["split"] in (split, speech_split(split)) and r["path"] in used - have
        ]
        stored_lists[split] = (stored["key"]["snrs"], mixes)
    for r in chosen:
        (dst / r["path"]).parent.mkdir(parents=True, exist_ok=True)
        cut = max_file_seconds and r["split"] == "train" and r["duration"] > max_file_seconds
        if cut or (bits < 16 and r["split"] == "train"):
            x, _ = load_audio(src / r["path"], CORPUS_RATE)
            if cut:
                n = int(max_file_seconds * CORPUS_RATE)
                start = rng.randrange(0, max(1, len(x) - n))
                x = x[start : start + n]
            _write_flac(dst / r["path"], requantise(x, bits))
            r.update(duration=round(len(x) / CORPUS_RATE, 3), sha1=_sha1(dst / r["path"]))
        else:
            shutil.copyfile(src / r["path"], dst / r["path"])
    # Validation noise files are whole recordings of which a mixture uses a few seconds: keep
    # only the span the mixtures read, and shift their offsets (the audio rendered is the same).
    (dst / "mixtures").mkdir(parents=True, exist_ok=True)
    for split, (snrs, mixes) in stored_lists.items():
        mixes = [dict(m) for m in mixes]
        for path in {m["noise"] for m in mixes}:
            ms = [m for m in mixes if m["noise"] == path]
            x, _ = load_audio(src / path, CORPUS_RATE)
            offsets = [m["noise_offset"] for m in ms]
            lo = 0 if max(offsets) >= len(x) else min(offsets)  # past the end reads it all
            hi = max(m["noise_offset"] + m["n_samples"] for m in ms)
            _write_flac(dst / path, x[lo:hi])
            for m in ms:
                m["noise_offset"] -= lo
            for r in chosen:
                if r["path"] == path:
                    r["duration"] = round(len(x[lo:hi]) / CORPUS_RATE, 3)
        key = {"n": valid_pairs, "snrs": snrs}
        (dst / "mixtures" / f"{split}.json").write_text(json.dumps({"key": key, "mixtures": mixes}))
    with open(dst / "manifest.jsonl", "w") as f:
        for r in chosen:
            f.write(json.dumps(r) + "\n")
    summary = summarise(chosen)
    summary["subset_of"] = {
        "corpus": str(src),
        "speech_hours": speech_hours,
        "noise_hours": noise_hours,
        "valid_pairs": valid_pairs,
        "seed": seed,
        "max_file_seconds": max_file_seconds,
        "bits": bits,
    }
    (dst / "summary.json").write_text(json.dumps(summary, indent=2))
    (dst / "summary.md").write_text(summary_markdown(summary))
    return summary
