"""End-to-end latency of `hushlab stream` through real PortAudio devices, measured with clicks.

Two PulseAudio null sinks stand in for a sound card: the engine records the monitor of `vsink`
(its microphone) and plays to `vout` (its speaker). A probe plays clicks into `vsink` and, in
the same full-duplex stream, records the monitor of `vout`; the delay of the clicks is the
whole path: the engine's input device, its processing and buffering, its output device, plus
the probe's own loopback, which a second run without the engine (probe records `vsink`'s
monitor directly) measures and which is subtracted.

    python scripts/measure_latency.py [--model baseline] [--json runs/latency.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RATE = 48000
REPO = Path(__file__).resolve().parents[1]


def clicks(seconds: float, every: float = 0.5) -> np.ndarray:
    """Short band-limited clicks every ``every`` seconds, 0.5 s of silence first."""
    x = np.zeros(int(seconds * RATE), np.float32)
    t = np.arange(48) / RATE
    click = (0.5 * np.sin(2 * np.pi * 2000 * t) * np.hanning(48)).astype(np.float32)
    for k in range(int(0.5 * RATE), len(x) - 48, int(every * RATE)):
        x[k : k + 48] = click
    return x


def probe(sink: str, source: str, signal: np.ndarray) -> np.ndarray:
    """Play ``signal`` into ``sink`` while recording ``source`` (one full-duplex stream, in a
    child process so that PulseAudio routes by environment)."""
    code = (
        "import sys, numpy as np, sounddevice as sd; "
        "x = np.load(sys.argv[1]); "
        f"y = sd.playrec(x, samplerate={RATE}, channels=1, dtype='float32', device='pulse'); "
        "sd.wait(); np.save(sys.argv[2], y[:, 0])"
    )
    tmp = REPO / "runs"
    tmp.mkdir(exist_ok=True)
    np.save(tmp / "probe_in.npy", signal)
    env = {**os.environ, "PULSE_SINK": sink, "PULSE_SOURCE": source}
    subprocess.run(
        [sys.executable, "-c", code, str(tmp / "probe_in.npy"), str(tmp / "probe_out.npy")],
        env=env,
        check=True,
        timeout=120,
    )
    return np.load(tmp / "probe_out.npy")


def delays(played: np.ndarray, recorded: np.ndarray, max_ms: float = 600.0) -> list[float]:
    """Delay (ms) of each click: cross-correlation in a window after each one."""
    starts = np.flatnonzero(np.diff((np.abs(played) > 0).astype(int)) == 1)
    out, span = [], int(max_ms / 1000 * RATE)
    for s in starts:
        seg_p = played[s : s + 48]
        seg_r = recorded[s : s + span + 48]
        if len(seg_r) < span:
            break
        c = np.correlate(seg_r, seg_p, mode="valid")
        k = int(np.argmax(np.abs(c)))
        if np.abs(c[k]) > 0.2 * np.sum(seg_p**2):  # the click arrived (not lost or muted)
            out.append(1000 * k / RATE)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="baseline")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--json", default="runs/latency.json")
    args = p.parse_args()
    for name in ("vsink", "vout"):
        listed = subprocess.run(["pactl", "list", "short", "sinks"], capture_output=True, text=True)
        if name not in listed.stdout:
            subprocess.run(
                ["pactl", "load-module", "module-null-sink", f"sink_name={name}"], check=True
            )
    sig = clicks(args.seconds)
    base = delays(sig, probe("vsink", "vsink.monitor", sig))
    env = {**os.environ, "PULSE_SOURCE": "vsink.monitor", "PULSE_SINK": "vout"}
    health = REPO / "runs" / "latency-stream.json"
    eng = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.cli",
            "stream",
            "--input",
            "default",
            "--output",
            "speaker",
            "--model",
            args.model,
            "--rate",
            str(RATE),
            "--seconds",
            str(args.seconds + 4),
            "--json",
            str(health),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    time.sleep(2.5)  # model loaded, streams open
    through = delays(sig, probe("vsink", "vout.monitor", sig))
    eng.wait(timeout=120)
    h = json.loads(health.read_text())
    res = {
        "model": args.model,
        "probe_loopback_ms": float(np.median(base)) if base else None,
        "through_engine_ms": float(np.median(through)) if through else None,
        "clicks_played": int(np.sum(np.diff((np.abs(sig) > 0).astype(int)) == 1)),
        "clicks_heard": len(through),
        "computed_latency_ms": h["latency_ms"],
        "algorithmic_latency_ms": h["algorithmic_latency_ms"],
    }
    if base and through:
        res["measured_latency_ms"] = res["through_engine_ms"] - res["probe_loopback_ms"]
        res["spread_ms"] = float(np.percentile(through, 90) - np.percentile(through, 10))
    Path(args.json).write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))
    return 0 if base and through else 1


if __name__ == "__main__":
    sys.exit(main())
