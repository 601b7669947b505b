"""scripts/gpu_train.sh: a time limit on the call still returns what the runs saved."""

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]


@pytest.mark.skipif(shutil.which("pgrep") is None, reason="pgrep (procps) is missing")
def test_time_limit_returns_saved_weights_and_logs(mini_corpus, tmp_path):
    work = tmp_path / "tree"
    work.mkdir()
    for d in ("app", "dsp", "models", "training", "scripts"):
        (work / d).symlink_to(REPO / d)
    (work / ".gpudata").mkdir()
    (work / ".gpudata" / "corpus").symlink_to(mini_corpus)
    name = f"tiny-limit-{os.getpid()}"
    config = tmp_path / f"{name}.toml"
    text = (REPO / "training/configs/tiny.toml").read_text()
    text = text.replace('name = "tiny"', f'name = "{name}"').replace("steps = 40", "steps = 100000")
    config.write_text(text)
    out = tmp_path / "out"
    env = {
        **os.environ,
        "OUT": str(out),
        "HUSHLAB_SKIP_WHEELS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    # Long enough for a few checkpoints of the tiny model, far too short for 100,000 steps.
    res = subprocess.run(
        ["timeout", "40", "bash", "scripts/gpu_train.sh", "train", str(config), "threads=1"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 124, res.stdout[-2000:] + res.stderr[-2000:]
    assert "time limit" in res.stdout
    assert (out / f"{name}.latest.safetensors").stat().st_size > 0
    with tarfile.open(out / f"{name}.tar") as tar:
        names = tar.getnames()
    assert "train_log.csv" in names and "config.json" in names
    # the trainer was stopped with the call, not left running
    left = subprocess.run(["pgrep", "-f", name], capture_output=True, text=True).stdout.split()
    assert left == []
    shutil.rmtree(f"/tmp/hushlab-run/{name}", ignore_errors=True)
    Path(f"/tmp/{name}.log").unlink(missing_ok=True)
