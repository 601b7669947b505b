"""Make the app's built-in demo clips from the bundled corpus's *test* split (voices and noises
that no model trained on): app/assets/demo_clean.flac and demo_noise.flac, 16 kHz mono.

    .venv/bin/python scripts/make_demo_assets.py [--corpus DIR]
"""

import argparse
import json
from pathlib import Path

import numpy as np

from dsp.audio_io import load_audio, save_audio
from training.corpus import default_corpus_dir

p = argparse.ArgumentParser()
p.add_argument("--corpus", default=str(default_corpus_dir()))
p.add_argument("--seconds", type=float, default=14.0)
a = p.parse_args()
root = Path(a.corpus)
rows = [json.loads(x) for x in (root / "manifest.jsonl").read_text().splitlines()]
test = [r for r in rows if r["split"] == "test"]
speech = sorted((r for r in test if r["source"] == "asterisk-en"), key=lambda r: r["path"])
parts, total = [], 0
for r in speech:
    x, _ = load_audio(root / r["path"])
    parts += [x, np.zeros(8000, np.float32)]
    total += len(x) + 8000
    if total > a.seconds * 16000:
        break
clean = np.concatenate(parts)[: int(a.seconds * 16000)]
crowd = next(r for r in test if r["source"] == "synthetic" and r["voice"] == "crowd")
fan = next(r for r in test if r["source"] == "synthetic" and r["voice"] == "fan")
n1, _ = load_audio(root / crowd["path"])
n2, _ = load_audio(root / fan["path"])
n = len(clean)
noise = np.resize(n1, n) / np.std(n1) + 0.5 * np.resize(n2, n) / np.std(n2)
noise = (0.3 * noise / np.max(np.abs(noise))).astype(np.float32)
out = Path(__file__).resolve().parent.parent / "app" / "assets"
save_audio(out / "demo_clean.flac", clean * (0.5 / np.max(np.abs(clean))), 16000)
save_audio(out / "demo_noise.flac", noise, 16000)
print("clean:", [r["path"] for r in speech[: len(parts) // 2]])
print("noise:", crowd["path"], fan["path"])
