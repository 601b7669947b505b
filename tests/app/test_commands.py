"""Smoke tests of the commands themselves: `hushlab app` (offscreen, file source) and
`hushlab stream` (file to file keeps rate, length and alignment), run as a user runs them."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.conftest import speechlike

REPO = Path(__file__).resolve().parents[2]


def _hushlab(*args, timeout=240, env=None):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_app_command_plays_a_file_and_quits_cleanly(tmp_path):
    src = tmp_path / "noisy.wav"
    x = speechlike(3.0, 16000) + 0.01 * np.random.default_rng(0).standard_normal(48000)
    sf.write(src, x.astype(np.float32), 16000)
    shot = tmp_path / "shot.png"
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "HOME": str(tmp_path)}
    res = _hushlab(
        "app",
        "--source",
        str(src),
        "--model-a",
        "baseline",
        "--model-b",
        "bypass",
        "--no-output",
        "--screenshot",
        str(shot),
        "--screenshot-after",
        "2",
        "--quit-after",
        "3",
        env=env,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Traceback" not in res.stderr and "Error" not in res.stderr, res.stderr[-2000:]
    assert shot.exists() and shot.stat().st_size > 10_000


def test_stream_file_to_file_keeps_rate_length_and_alignment(tmp_path):
    rate = 16000
    x = (speechlike(2.5, rate, seed=3) * 2).astype(np.float32)
    src, out = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, x, rate)
    res = _hushlab("stream", "--input", str(src), "--output", str(out), "--model", "bypass")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    y, sr = sf.read(out, dtype="float32")
    assert sr == rate and len(y) == len(x)
    np.testing.assert_allclose(y, x, atol=2e-3)  # bypass: the input itself, not delayed
    assert "streamed" in res.stdout
    # level-matched: the same input brought to -26 dBFS active level (it plays near -15)
    quiet = tmp_path / "quiet.wav"
    res = _hushlab(
        "stream",
        "--input",
        str(src),
        "--output",
        str(quiet),
        "--model",
        "bypass",
        "--match-loudness",
    )
    assert res.returncode == 0, res.stderr[-2000:]
    q, _ = sf.read(quiet, dtype="float32")
    gain_db = 20 * np.log10(np.std(q[rate:]) / np.std(x[rate:]))
    assert -13.0 < gain_db < -9.5  # -11.5 dB when fully matched


def test_stream_bad_input_is_a_clear_error(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEjunk")
    res = _hushlab("stream", "--input", str(bad), "--output", str(tmp_path / "o.wav"))
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "broken.wav" in res.stderr


def test_app_closes_cleanly_on_ctrl_c_and_sigterm(tmp_path):
    """A terminal's Ctrl-C (or a SIGTERM) closes the window as its close button does: the
    settings are written and the process exits with 128 + the signal, with no traceback."""
    import signal
    import time

    src = tmp_path / "noisy.wav"
    sf.write(src, speechlike(3.0, 16000).astype(np.float32), 16000)
    for sig in (signal.SIGINT, signal.SIGTERM):
        cfg = tmp_path / f"cfg{sig}"
        env = {
            **os.environ,
            "QT_QPA_PLATFORM": "offscreen",
            "XDG_CONFIG_HOME": str(cfg),
            "HOME": str(tmp_path),
        }
        shot = tmp_path / f"shot{sig}.png"  # written once the event loop runs
        args = ["app", "--source", str(src), "--model-b", "bypass", "--no-output"]
        args += ["--screenshot", str(shot), "--screenshot-after", "1"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args, "--model-a", "baseline"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        t0 = time.monotonic()
        while not shot.exists() and proc.poll() is None and time.monotonic() - t0 < 120:
            time.sleep(0.2)
        assert shot.exists(), "the app did not come up"
        proc.send_signal(sig)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"signal {sig} did not close the app") from None
        assert proc.returncode == 128 + sig, err[-2000:]
        assert "Traceback" not in err, err[-2000:]
        assert list(cfg.rglob("*.conf")) or list(cfg.rglob("*.ini")), "settings not saved"


def test_models_lists_the_shipped_models_peers_and_suffixes(capsys):
    from app.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    rows = {r.split("|")[1].strip(): r for r in out.splitlines() if r.startswith("| ")}
    for name in ("baseline", "kd", "pretrain", "fusion"):
        assert "shipped GCRN" in rows[name] and "PESQ" in rows[name]
    assert "dry signal" in rows["bypass"] and "rnnoise" in rows
    assert "@limN" in out and "@pfBETA" in out


def _stream_args(*argv):
    from app.cli import build_parser

    parser, _ = build_parser()
    return parser.parse_args(["stream", *argv])


def test_stream_releases_what_it_opened_when_a_later_step_fails(tmp_path, monkeypatch):
    """A failure after some outputs were opened (a second file that cannot be written, an
    engine that does not start) closes the files already open, so nothing is left behind."""
    import pytest

    import app.cmd_stream as cs
    import app.engine as eng

    src = tmp_path / "in.wav"
    sf.write(src, speechlike(1.0, 16000), 16000)
    made = []

    class Recorded(eng.FileSink):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            made.append(self)

    monkeypatch.setattr(eng, "FileSink", Recorded)
    good, bad = tmp_path / "a.wav", tmp_path / "no" / "such" / "dir" / "b.wav"
    from dsp.errors import UserError

    with pytest.raises(UserError, match="cannot write a recording there"):
        cs.build_engine(
            _stream_args("--input", str(src), "--output", f"{good},{bad}", "--model", "bypass")
        )
    assert len(made) == 1 and made[0].closed and not made[0]._thread.is_alive()

    made.clear()

    def no_start(self, source, sinks):
        raise RuntimeError("device vanished")

    monkeypatch.setattr(eng.Engine, "start", no_start)
    with pytest.raises(RuntimeError, match="device vanished"):
        cs.run(_stream_args("--input", str(src), "--output", str(good), "--model", "bypass"))
    assert len(made) == 1 and made[0].closed
