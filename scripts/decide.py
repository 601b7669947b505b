#!/usr/bin/env python3
"""Round fifteen's decision rule for a new baseline, applied to eval reports mechanically.

    python scripts/decide.py --real-valid runs/eval-real-valid-r19 \
        --real-voices runs/eval-real-voices-r19 --valid runs/eval-valid-r19 \
        --models runs/baseline-df4-scratch/best.safetensors[,...] [--reference baseline]

The rule every baseline round since the fifteenth has written in its config before any score
(training/configs/baseline-df4-cont.toml): paired against the reference on real-valid and
real-voices, a candidate qualifies if

1. no PESQ-WB difference is significantly negative at any SNR on either split,
2. the mean STOI difference is >= -0.01 and the mean SI-SDR difference >= -0.3 dB at every SNR
   on both splits,
3. the mean PESQ-WB difference at -5 dB is positive on both splits, and significantly positive on
   at least one of them or on their pairs pooled (as scripts/pooled.py pools them),
4. on the synthetic valid split no PESQ-WB difference is significantly negative at any SNR, and
5. on valid's music mixtures (scripts/by_noise.py: all SNRs together) the mean PESQ-WB
   difference is >= -0.02.

Of the qualifiers, the one with the larger pooled -5 dB PESQ-WB gain is chosen. Prints every
check of every candidate, then the verdict; exits 0 whether or not one qualifies (2 on bad
input). Significance is the 95 % paired-bootstrap interval of ``training.evaluate``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.by_noise import noise_kind  # noqa: E402
from scripts.pooled import load  # noqa: E402
from training.evaluate import paired_differences  # noqa: E402

STOI_MIN = -0.01
SISDR_MIN = -0.3
MUSIC_MIN = -0.02
CORPUS = Path("~/.cache/hushlab/corpus").expanduser()


def _diffs(reports: list[Path], reference: str, models: list[str]) -> dict:
    rows = load(reports, {reference, *models})
    if not any(r["processor"] == reference for r in rows):
        raise SystemExit(
            f"no scores of the reference '{reference}' in {', '.join(map(str, reports))}"
        )
    diffs = paired_differences(rows, reference)
    for m in models:
        if m not in diffs:
            raise SystemExit(f"no paired scores of '{m}' in {', '.join(map(str, reports))}")
    return diffs


def music_difference(report: Path, corpus: Path, reference: str, model: str) -> tuple[float, int]:
    """Mean PESQ-WB difference (model - reference) over the report's music mixtures, all SNRs."""
    meta = json.loads((report / "summary.json").read_text())["meta"]
    mixes = json.loads((corpus / "mixtures" / f"{meta['split']}.json").read_text())["mixtures"]
    music = {m["id"] for m in mixes if noise_kind(m["noise"]) == "music"}
    rows = load([report], {reference, model})
    by = {(r["processor"], r["id"]): r.get("pesq") for r in rows}
    d = [
        float(by[(model, i)]) - float(by[(reference, i)])
        for p, i in by
        if p == reference and i in music and by.get((model, i)) and by[(reference, i)]
    ]
    if not d:
        raise SystemExit(f"{report}: no music mixtures scored for '{model}'")
    return sum(d) / len(d), len(d)


def _sig_neg(c: dict) -> bool:
    return c["hi"] < 0


def _fmt(c: dict, digits: int = 3) -> str:
    star = "*" if c["lo"] > 0 or c["hi"] < 0 else ""
    return f"{c['mean']:+.{digits}f}{star} [{c['lo']:+.{digits}f}, {c['hi']:+.{digits}f}]"


def decide(
    real_valid: Path,
    real_voices: Path,
    valid: Path,
    models: list[str],
    reference: str = "baseline",
    corpus: Path = CORPUS,
) -> tuple[str | None, list[str]]:
    """(the chosen model or None, the report's lines)."""
    per = {
        "real-valid": _diffs([real_valid], reference, models),
        "real-voices": _diffs([real_voices], reference, models),
    }
    pooled = _diffs([real_valid, real_voices], reference, models)
    synth = _diffs([valid], reference, models)
    lines, qualified = [], {}
    for m in models:
        fails = []
        lines.append(f"## {m} (against {reference})")
        for split, d in per.items():
            for snr, c in sorted(d[m].items(), key=lambda kv: float(kv[0])):
                p, s, q = c["pesq"], c["stoi"], c["si_sdr"]
                lines.append(
                    f"- {split} {snr} dB: PESQ-WB {_fmt(p)}, STOI {_fmt(s)}, SI-SDR {_fmt(q, 2)}"
                )
                if _sig_neg(p):
                    fails.append(f"1. {split} {snr} dB PESQ-WB significantly lower")
                if s["mean"] < STOI_MIN:
                    fails.append(f"2. {split} {snr} dB STOI {s['mean']:+.3f} < {STOI_MIN}")
                if q["mean"] < SISDR_MIN:
                    fails.append(f"2. {split} {snr} dB SI-SDR {q['mean']:+.2f} < {SISDR_MIN}")
        gains = {split: d[m]["-5"]["pesq"] for split, d in per.items()}
        pool = pooled[m]["-5"]["pesq"]
        lines.append(f"- pooled -5 dB ({pool['n']} pairs): PESQ-WB {_fmt(pool)}")
        if any(g["mean"] <= 0 for g in gains.values()):
            fails.append("3. -5 dB PESQ-WB not higher on both real splits")
        elif not any(g["lo"] > 0 for g in (*gains.values(), pool)):
            fails.append("3. -5 dB PESQ-WB significantly higher on neither split nor pooled")
        for snr, c in sorted(synth[m].items(), key=lambda kv: float(kv[0])):
            lines.append(f"- valid {snr} dB: PESQ-WB {_fmt(c['pesq'])}")
            if _sig_neg(c["pesq"]):
                fails.append(f"4. valid {snr} dB PESQ-WB significantly lower")
        music, n = music_difference(valid, corpus, reference, m)
        lines.append(f"- valid music ({n} mixtures, all SNRs): PESQ-WB {music:+.3f}")
        if music < MUSIC_MIN:
            fails.append(f"5. valid music PESQ-WB {music:+.3f} < {MUSIC_MIN}")
        if fails:
            lines += ["- **does not qualify**:", *(f"  - {f}" for f in fails)]
        else:
            lines.append("- **qualifies**")
            qualified[m] = pool["mean"]
        lines.append("")
    chosen = max(qualified, key=qualified.get) if qualified else None
    lines.append(
        f"Verdict: ship {chosen} (pooled -5 dB PESQ-WB {qualified[chosen]:+.3f})"
        if chosen
        else "Verdict: none qualifies; nothing is shipped"
    )
    return chosen, lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--real-valid", type=Path, required=True, help="report folder")
    p.add_argument("--real-voices", type=Path, required=True, help="report folder")
    p.add_argument("--valid", type=Path, required=True, help="report folder")
    p.add_argument("--models", required=True, help="comma-separated processor names")
    p.add_argument("--reference", default="baseline")
    p.add_argument("--corpus", type=Path, default=CORPUS)
    a = p.parse_args(argv)
    for folder in (a.real_valid, a.real_voices, a.valid):
        if not (folder / "scores.csv").is_file():
            print(f"error: {folder} is not a hushlab eval report (no scores.csv)", file=sys.stderr)
            return 2
    _, lines = decide(
        a.real_valid, a.real_voices, a.valid, a.models.split(","), a.reference, a.corpus
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
