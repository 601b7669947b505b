"""The paper's embedding analysis: how far noise moves Wav2Vec2 embeddings.

For clean utterances and their noisy versions at several SNRs, per teacher layer:

- per-frame **cosine similarity** and **Euclidean distance** between the noisy and the clean
  embedding of the same frame (distance also relative to the clean embedding's norm), and the
  ratio of their norms (do magnitudes stay alike across the utterance?);
- the **correlation of the two embedding sequences over windows** of 1 to 10 frames (20-200 ms):
  non-overlapping blocks of ``w`` frames, each flattened and Pearson-correlated after removing
  the clean utterance's per-dimension mean (so a constant offset shared by all frames does not
  count as agreement), averaged over blocks;
- the correlation of noisy frame ``t`` with clean frame ``t + k`` for lags ``k`` of 0 to 9 frames
  (how long an embedding stays informative about its neighbourhood);
- the same against a **different utterance** (clean) as a floor.

Writes ``analysis.json``, ``analysis.md`` and PNG plots.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from dsp.errors import UserError
from dsp.mixing import fit_length, mix_at_snr
from training import CORPUS_RATE
from training.data import AudioPool, DataConfig, balanced_noise_weights, list_sources

FLOOR = "other utterance"


@dataclass
class AnalysisConfig:
    teacher: str | None = None  # folder, shipped name or hub id (default: the shipped teacher)
    corpus: str = ""
    split: str = "test"
    utterances: int = 24
    snrs: list[float] = field(default_factory=lambda: [-5.0, 0.0, 5.0, 10.0])
    windows: list[int] = field(default_factory=lambda: list(range(1, 11)))
    max_lag: int = 9
    min_seconds: float = 1.5
    max_seconds: float = 6.0
    seed: int = 0
    out: str = "runs/analysis"


def _centred_block_corr(a: np.ndarray, b: np.ndarray, mean: np.ndarray, w: int) -> float:
    """Mean Pearson r of non-overlapping ``w``-frame blocks of a and b ([T, D]) after removing
    ``mean`` ([D]) from both."""
    a, b = a - mean, b - mean
    rs = []
    for s in range(0, len(a) - w + 1, w):
        x, y = a[s : s + w].ravel(), b[s : s + w].ravel()
        x, y = x - x.mean(), y - y.mean()
        den = np.sqrt((x**2).sum() * (y**2).sum())
        if den > 0:
            rs.append(float((x * y).sum() / den))
    return float(np.mean(rs)) if rs else float("nan")


def _lag_corr(a: np.ndarray, b: np.ndarray, mean: np.ndarray, k: int) -> float:
    """Mean over t of Pearson r between a[t] and b[t + k] (centred by ``mean``)."""
    a, b = a - mean, b - mean
    if k >= len(a):
        return float("nan")
    x, y = a[: len(a) - k], b[k:]
    x = x - x.mean(1, keepdims=True)
    y = y - y.mean(1, keepdims=True)
    den = np.sqrt((x**2).sum(1) * (y**2).sum(1))
    ok = den > 0
    return float(np.mean((x * y).sum(1)[ok] / den[ok])) if ok.any() else float("nan")


def frame_metrics(e_ref: np.ndarray, e: np.ndarray, windows, max_lag: int) -> dict:
    """Metrics of one embedding sequence ``e`` against the clean ``e_ref`` (both [T, D])."""
    n = min(len(e_ref), len(e))
    r, x = e_ref[:n].astype(np.float64), e[:n].astype(np.float64)
    nr, nx = np.linalg.norm(r, axis=1), np.linalg.norm(x, axis=1)
    cos = (r * x).sum(1) / np.maximum(nr * nx, 1e-12)
    dist = np.linalg.norm(r - x, axis=1)
    mean = r.mean(0)
    return {
        "cosine": float(cos.mean()),
        "euclidean": float(dist.mean()),
        "relative_distance": float((dist / np.maximum(nr, 1e-12)).mean()),
        "norm_ratio": float(nx.mean() / max(nr.mean(), 1e-12)),
        "window_corr": {int(w): _centred_block_corr(x, r, mean, int(w)) for w in windows},
        "lag_corr": {k: _lag_corr(x, r, mean, k) for k in range(max_lag + 1)},
        "cosine_per_frame": cos.astype(np.float32),
    }


def _pick_clips(cfg: AnalysisConfig):
    speech, noise = list_sources(DataConfig(corpus=cfg.corpus), cfg.split)
    rng = np.random.default_rng(cfg.seed)
    pool = AudioPool([speech[i] for i in rng.permutation(len(speech))[: cfg.utterances * 3]])
    clean = []
    for i in range(len(pool)):
        x = pool.get(i)
        if len(x) >= cfg.min_seconds * CORPUS_RATE:
            clean.append(x[: int(cfg.max_seconds * CORPUS_RATE)])
        if len(clean) == cfg.utterances:
            break
    if len(clean) < 2:
        raise UserError(f"split '{cfg.split}' has fewer than 2 utterances of {cfg.min_seconds} s")
    noise_pool = AudioPool(noise)
    w = balanced_noise_weights(noise_pool.paths)
    noises = [noise_pool.get(int(rng.choice(len(noise_pool), p=w))) for _ in clean]
    return clean, noises, rng


def analyze(cfg: AnalysisConfig, teacher=None, progress: bool = True) -> dict:
    """Run the analysis; writes its files to ``cfg.out`` and returns the summary."""
    from dsp.progress import progress as tqdm
    from models.teacher import Teacher

    teacher = teacher or Teacher(cfg.teacher)
    clean, noises, rng = _pick_clips(cfg)
    conds = [f"{s:+g} dB" for s in cfg.snrs] + [FLOOR]
    layers = teacher.n_layers + 1
    acc = {c: [[] for _ in range(layers)] for c in conds}
    example = None
    for i in tqdm(range(len(clean)), desc="analyze", unit="utt", disable=not progress):
        c = clean[i]
        other = fit_length(clean[(i + 1) % len(clean)], len(c))
        variants = {FLOOR: other}
        v = fit_length(noises[i], len(c), rng)  # the same noise segment at every SNR
        ref = c
        for k, snr in enumerate(cfg.snrs):
            noisy, scaled, _ = mix_at_snr(c, v, snr, level_dbfs=-25.0)
            variants[f"{snr:+g} dB"] = noisy
            if k == 0:
                ref = scaled  # the clean reference at the first mixture's level
        h_clean = teacher.hidden_states(ref)[:, 0].numpy()  # [L + 1, T, D]
        for cond, wave in variants.items():
            h = teacher.hidden_states(wave)[:, 0].numpy()
            for layer in range(layers):
                acc[cond][layer].append(
                    frame_metrics(h_clean[layer], h[layer], cfg.windows, cfg.max_lag)
                )
        if example is None:
            example = {
                cond: acc[cond][teacher.layer][-1]["cosine_per_frame"].tolist() for cond in conds
            }
            example["clean_norm"] = np.linalg.norm(h_clean[teacher.layer], axis=1).tolist()
    summary = {
        "teacher": teacher.describe(),
        "config": asdict(cfg),
        "utterances": len(clean),
        "conditions": conds,
        "layers": {},
        "example": example,
    }
    for layer in range(layers):
        summary["layers"][layer] = {c: _mean_metrics(acc[c][layer]) for c in conds}
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "analysis.json").write_text(json.dumps(summary, indent=1))
    (out / "analysis.md").write_text(markdown(summary))
    plot(summary, out)
    return summary


def _mean_metrics(items: list[dict]) -> dict:
    keys = ("cosine", "euclidean", "relative_distance", "norm_ratio")
    m = {k: float(np.mean([x[k] for x in items])) for k in keys}
    m["cosine_ci95"] = float(1.96 * np.std([x["cosine"] for x in items]) / math.sqrt(len(items)))
    for key in ("window_corr", "lag_corr"):
        m[key] = {k: float(np.nanmean([x[key][k] for x in items])) for k in items[0][key]}
    return m


def _ms(frames: int) -> int:
    return 20 * frames


def markdown(s: dict) -> str:
    t = s["teacher"]
    sel = s["layers"][t["layer"]]
    ws = list(next(iter(sel.values()))["window_corr"])
    lines = [
        "# Embedding analysis",
        "",
        f"Teacher: `{t['teacher']}` ({t['parameters'] / 1e6:.1f} M parameters, {t['layers']}"
        f" layers, {t['dim']}-d), layer {t['layer']} below unless stated; {s['utterances']}"
        f" utterances of the '{s['config']['split']}' split.",
        "",
        "| condition | cosine | Euclidean | relative distance | norm ratio | "
        + " | ".join(f"corr {_ms(int(w))} ms" for w in ws)
        + " |",
        "|---|---|---|---|---|" + "---|" * len(ws),
    ]
    for c, m in sel.items():
        lines.append(
            f"| {c} | {m['cosine']:.3f} ± {m['cosine_ci95']:.3f} | {m['euclidean']:.2f} | "
            f"{m['relative_distance']:.3f} | {m['norm_ratio']:.3f} | "
            + " | ".join(f"{m['window_corr'][w]:.3f}" for w in ws)
            + " |"
        )
    lines += _layer_table(
        s,
        "cosine",
        "Cosine similarity of noisy and clean embeddings per layer (0 = transformer input):",
    )
    lines += _layer_table(
        s,
        "relative_distance",
        "Euclidean distance of noisy and clean embeddings per layer, relative to the clean"
        " embedding's norm:",
    )
    lags = list(next(iter(sel.values()))["lag_corr"])
    lines += [
        "",
        f"Correlation of noisy frame t with clean frame t + k (layer {t['layer']}):",
        "",
        "| condition | " + " | ".join(f"{_ms(int(k))} ms" for k in lags) + " |",
        "|---|" + "---|" * len(lags),
    ]
    for c, m in sel.items():
        lines.append(f"| {c} | " + " | ".join(f"{m['lag_corr'][k]:.3f}" for k in lags) + " |")
    return "\n".join(lines) + "\n"


def _layer_table(s: dict, key: str, title: str) -> list[str]:
    lines = ["", title, "", "| layer | " + " | ".join(s["conditions"]) + " |"]
    lines.append("|---|" + "---|" * len(s["conditions"]))
    for layer, d in s["layers"].items():
        lines.append(
            f"| {layer} | " + " | ".join(f"{d[c][key]:.3f}" for c in s["conditions"]) + " |"
        )
    return lines


def plot(s: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = s["teacher"]
    layers = sorted(s["layers"])
    sel = s["layers"][t["layer"]]
    conds = s["conditions"]
    colors = {c: plt.cm.viridis(i / max(1, len(conds) - 2)) for i, c in enumerate(conds[:-1])}
    colors[FLOOR] = "grey"
    paths = []

    fig, ax = plt.subplots(1, 3, figsize=(14, 4))
    for c in conds:
        ls = "--" if c == FLOOR else "-"
        for a, key in ((ax[0], "window_corr"), (ax[1], "lag_corr")):
            xs = [_ms(int(k)) for k in sel[c][key]]
            a.plot(xs, list(sel[c][key].values()), ls, marker="o", color=colors[c], label=c)
        ax[2].plot(
            [int(x) for x in layers],
            [s["layers"][x][c]["cosine"] for x in layers],
            ls,
            marker="o",
            color=colors[c],
            label=c,
        )
    ax[0].set(
        xlabel="window (ms)",
        ylabel="correlation noisy vs clean",
        title=f"windowed correlation, layer {t['layer']}",
    )
    ax[1].set(
        xlabel="lag k (ms)",
        ylabel="corr(noisy[t], clean[t+k])",
        title=f"lagged frame correlation, layer {t['layer']}",
    )
    ax[2].set(xlabel="layer", ylabel="cosine similarity", title="per-frame cosine by layer")
    for a in ax:
        a.grid(alpha=0.3)
    ax[2].legend(fontsize=8)
    fig.suptitle(
        f"Teacher '{t['teacher']}': noisy vs clean embeddings ({s['utterances']} utterances)"
    )
    fig.tight_layout()
    p = out / "analysis.png"
    fig.savefig(p, dpi=100)
    plt.close(fig)
    paths.append(p)

    ex = s["example"]
    fig, ax = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    for c in conds:
        y = ex[c]
        ax[0].plot(
            np.arange(len(y)) * 20, y, "--" if c == FLOOR else "-", color=colors[c], label=c, lw=1
        )
    ax[0].set(ylabel="cosine noisy vs clean", title="one utterance, frame by frame")
    ax[0].legend(fontsize=8, ncol=len(conds))
    ax[1].plot(np.arange(len(ex["clean_norm"])) * 20, ex["clean_norm"], color="k", lw=1)
    ax[1].set(xlabel="time (ms)", ylabel="clean embedding norm")
    for a in ax:
        a.grid(alpha=0.3)
    fig.tight_layout()
    p = out / "timeline.png"
    fig.savefig(p, dpi=100)
    plt.close(fig)
    paths.append(p)
    return paths


__all__ = ["AnalysisConfig", "analyze", "frame_metrics"]
