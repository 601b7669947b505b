"""Linear probes: do a teacher's embeddings carry speech structure?

Voicing task: classify every 20 ms frame of clean speech as silence, unvoiced or voiced speech.
Labels come from the waveform of the frame's own 25 ms window (energy relative to the utterance's
loudest frame; voicing from the normalised autocorrelation peak between 2.5 and 12.5 ms, i.e.
80-400 Hz). A multinomial logistic regression is fitted on the embeddings of utterances from one
half of the voices and scored (balanced accuracy; chance 1/3) on the other half, per layer. The
same probe runs on an untrained teacher of the same architecture and on 40 log-mel energies, so
the trained teacher's figure can be read against what architecture or plain acoustics give.

Sentence task (phonetic content across voices): N test-range sentences are spoken by two
espeak-ng voices that training never heard (the held-out accent, two held-out variants); a
probe fitted on voice A's speech frames must tell which sentence a frame of voice B came from.
Only what is said, not how, carries over from A to B; chance is 1/N.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np
import torch

from dsp.stft import DEFAULT_GEOMETRY
from training import CORPUS_RATE
from training.corpus import load_manifest
from training.data import AudioPool

CLASSES = ("silence", "unvoiced", "voiced")


def voicing_labels(x: np.ndarray) -> np.ndarray:
    """0 silence / 1 unvoiced / 2 voiced for each 400-sample window at a 320-sample hop."""
    g = DEFAULT_GEOMETRY
    n = (len(x) - g.win) // g.hop + 1
    frames = np.stack([x[t * g.hop : t * g.hop + g.win] for t in range(n)]).astype(np.float64)
    frames -= frames.mean(1, keepdims=True)
    energy = 10 * np.log10(np.mean(frames**2, 1) + 1e-12)
    lab = np.ones(n, dtype=np.int64)
    lab[(energy < energy.max() - 40) | (energy < -65)] = 0
    lo, hi = CORPUS_RATE // 400, CORPUS_RATE // 80
    for t in np.flatnonzero(lab):
        f = frames[t]
        ac = np.correlate(f, f, "full")[len(f) - 1 :]
        if ac[0] <= 0:
            continue
        # normalise each lag by the energies of the two overlapping parts
        c = np.cumsum(f**2)
        lags = np.arange(lo, hi + 1)
        head = c[len(f) - 1 - lags]  # f[: N - lag]
        tail = c[-1] - c[lags - 1]  # f[lag:]
        r = ac[lags] / np.maximum(np.sqrt(head * tail), 1e-12)
        if r.max() > 0.6:
            lab[t] = 2
    return lab


def log_mel(x: np.ndarray, n_mels: int = 40) -> np.ndarray:
    """[T, n_mels] log mel energies on the same frames."""
    from dsp.stft import stft

    spec = stft(torch.from_numpy(x[None].astype(np.float32)), DEFAULT_GEOMETRY)[0].abs() ** 2
    f = np.linspace(0, CORPUS_RATE / 2, spec.shape[-1])
    mel = 2595 * np.log10(1 + f / 700)
    edges = np.linspace(mel[0], mel[-1], n_mels + 2)
    fb = np.zeros((n_mels, len(f)))
    for m in range(n_mels):
        lo, c, hi = edges[m : m + 3]
        fb[m] = np.clip(np.minimum((mel - lo) / (c - lo), (hi - mel) / (hi - c)), 0, None)
    return np.log(spec.numpy() @ fb.T + 1e-8).astype(np.float32)


def fit_probe(
    xtr, ytr, xte, yte, steps: int = 200, wd: float = 1e-3, n_classes: int = len(CLASSES)
) -> float:
    """Balanced accuracy on (xte, yte) of a logistic regression fitted on (xtr, ytr)."""
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    a = torch.tensor((xtr - mu) / sd, dtype=torch.float32)
    b = torch.tensor((xte - mu) / sd, dtype=torch.float32)
    y = torch.tensor(ytr)
    k = n_classes
    counts = torch.bincount(y, minlength=k).float()
    weight = counts.sum() / (k * torch.clamp(counts, min=1))
    lin = torch.nn.Linear(a.shape[1], k)
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(lin(a), y, weight=weight)
        loss = loss + wd * (lin.weight**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        pred = lin(b).argmax(1).numpy()
    recalls = [np.mean(pred[yte == c] == c) for c in range(k) if np.any(yte == c)]
    return float(np.mean(recalls))


def _voice_half(voice: str) -> int:
    return int(hashlib.sha1(voice.encode()).hexdigest()[:8], 16) % 2


def probe(
    teacher,
    corpus: str | Path,
    split: str = "test",
    utterances: int = 80,
    seed: int = 0,
    random_teacher: bool = True,
) -> dict:
    """Balanced accuracy per layer for ``teacher``, an untrained copy and log-mel features."""
    rows = [r for r in load_manifest(corpus) if r["kind"] == "speech" and r["split"] == split]
    rng = np.random.default_rng(seed)
    rows = [rows[i] for i in rng.permutation(len(rows))[:utterances]]
    pool = AudioPool([Path(corpus) / r["path"] for r in rows])
    by_path = {str(Path(corpus) / r["path"]): r["voice"] for r in rows}
    clips = [
        (pool.get(i)[: 8 * CORPUS_RATE], _voice_half(by_path[str(p)]))
        for i, p in enumerate(pool.paths)
    ]
    labels = [voicing_labels(x) for x, _ in clips]
    half = np.concatenate([np.full(len(lab), h) for lab, (_, h) in zip(labels, clips, strict=True)])
    if len(set(half)) < 2:
        half = np.arange(len(half)) % 2  # one voice only: split frames instead
    y = np.concatenate(labels)

    def run(feats: list[np.ndarray]) -> float:
        x = np.concatenate(feats)
        return fit_probe(x[half == 0], y[half == 0], x[half == 1], y[half == 1])

    def layers_of(t) -> list[float]:
        hs = [t.hidden_states(x)[:, 0].numpy() for x, _ in clips]  # [L + 1, T, D] each
        return [run([h[layer] for h in hs]) for layer in range(t.n_layers + 1)]

    out = {
        "task": "silence / unvoiced / voiced per 20 ms frame; balanced accuracy, chance 0.333",
        "frames": int(len(y)),
        "class_share": {c: float(np.mean(y == i)) for i, c in enumerate(CLASSES)},
        "utterances": len(clips),
        "split": split,
        "teacher": layers_of(teacher),
        "log_mel": run([log_mel(x) for x, _ in clips]),
    }
    if random_teacher:
        out["untrained"] = layers_of(_untrained_copy(teacher, seed))
    return out


def sentence_probe(
    teacher, n_sentences: int = 12, voices=(("en-gb-x-gbcwmd", "f4"), ("en-gb-x-gbcwmd", "m6"))
) -> dict:
    """Cross-voice sentence identification per speech frame, per layer (and the untrained
    teacher and log-mel features), balanced accuracy."""
    from training.corpus import N_SENTENCES, SENTENCE_SPLIT, CorpusConfig
    from training.corpus_sources import _synth_espeak
    from training.text import sentences

    lo, hi = SENTENCE_SPLIT["test"]

    texts = sentences(N_SENTENCES, seed=CorpusConfig().seed)[lo:hi][:n_sentences]  # test range
    clips = {v: [] for v in voices}
    for v in voices:
        for text in texts:
            x = _synth_espeak(text, {"accent": v[0], "variant": v[1], "pitch": 50, "speed": 160})
            clips[v].append(x.astype(np.float32))

    def frames(feats_of):
        xs, ys = {}, {}
        for v in voices:
            f, y = [], []
            for k, x in enumerate(clips[v]):
                speech = voicing_labels(x) > 0
                e = feats_of(x)
                n = min(len(e), len(speech))
                f.append(e[:n][speech[:n]])
                y.append(np.full(int(speech[:n].sum()), k))
            xs[v], ys[v] = np.concatenate(f), np.concatenate(y)
        return xs, ys

    def score(xs, ys):
        a, b = voices
        return 0.5 * (
            fit_probe(xs[a], ys[a], xs[b], ys[b], n_classes=n_sentences)
            + fit_probe(xs[b], ys[b], xs[a], ys[a], n_classes=n_sentences)
        )

    def layers_of(t):
        cache = {id(x): t.hidden_states(x)[:, 0].numpy() for v in voices for x in clips[v]}
        return [score(*frames(lambda x, i=i: cache[id(x)][i])) for i in range(t.n_layers + 1)]

    out = {
        "task": f"which of {n_sentences} sentences a speech frame of an unseen voice came from,"
        f" fitted on another unseen voice; balanced accuracy, chance {1 / n_sentences:.3f}",
        "voices": [f"{a}+{v}" for a, v in voices],
        "teacher": layers_of(teacher),
        "log_mel": score(*frames(log_mel)),
        "untrained": layers_of(_untrained_copy(teacher)),
    }
    return out


def _untrained_copy(teacher, seed: int = 0):
    """The same architecture, randomly initialised, loaded through the folder path."""
    from transformers import Wav2Vec2Model

    from models.teacher import Teacher

    torch.manual_seed(seed)
    untrained = Wav2Vec2Model(teacher.model.config)
    d = tempfile.mkdtemp(prefix="hushlab-untrained-")
    untrained.save_pretrained(d)
    pre = Path(teacher.source) / "preprocessor_config.json"
    if pre.exists():
        (Path(d) / "preprocessor_config.json").write_text(pre.read_text())
    return Teacher(d)


def probe_markdown(res: dict) -> str:
    n = len(res["teacher"])
    if "voices" in res:
        head = f"Linear probe ({res['task']}; voices {' and '.join(res['voices'])}, each way):"
    else:
        head = (
            f"Linear probe ({res['task']}; {res['frames']} frames of {res['utterances']} unseen"
            f" '{res['split']}' utterances, fitted on half of the voices, scored on the other"
            " half):"
        )
    lines = [
        head,
        "",
        "| features | " + " | ".join(f"layer {i}" for i in range(n)) + " |",
        "|---|" + "---|" * n,
        "| trained teacher | " + " | ".join(f"{a:.3f}" for a in res["teacher"]) + " |",
    ]
    if "untrained" in res:
        lines.append(
            "| untrained teacher | " + " | ".join(f"{a:.3f}" for a in res["untrained"]) + " |"
        )
    lines.append(f"| 40 log-mel energies | {res['log_mel']:.3f} |" + " |" * (n - 1))
    return "\n".join(lines) + "\n"
