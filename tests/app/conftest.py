import os
import shutil
import subprocess
import time

import pytest
import torch

from models.checkpoint import save_checkpoint, shipped_models
from models.gcrn import GCRN, GCRNConfig


@pytest.fixture(scope="session")
def baseline_path(tmp_path_factory):
    """The shipped baseline when present, else a small randomly initialised GCRN checkpoint."""
    shipped = shipped_models()
    if "baseline" in shipped:
        return str(shipped["baseline"])
    torch.manual_seed(0)
    m = GCRN(GCRNConfig(channels=(8, 8, 8, 8, 16))).eval()
    for h in m.heads:  # residual heads start at zero (identity): make the network matter
        torch.nn.init.normal_(h.weight, std=0.05)
    return str(save_checkpoint(tmp_path_factory.mktemp("ck") / "m.safetensors", m))


@pytest.fixture(scope="session")
def pulse():
    """A PulseAudio null sink whose monitor is a real PortAudio input (the virtual microphone)."""
    if shutil.which("pulseaudio") is None:
        pytest.skip("pulseaudio not installed (the README set-up installs it)")
    started = False
    if subprocess.run(["pulseaudio", "--check"]).returncode != 0:
        subprocess.run(
            [
                "pulseaudio",
                "-D",
                "--system=false",
                "--exit-idle-time=-1",
                "--disallow-exit",
                "-n",
                "-L",
                "module-native-protocol-unix",
                "-L",
                "module-null-sink sink_name=vsink sink_properties=device.description=VSink",
                "-L",
                "module-always-sink",
            ],
            check=True,
            capture_output=True,
        )
        started = True
        for _ in range(50):
            if subprocess.run(["pulseaudio", "--check"]).returncode == 0:
                break
            time.sleep(0.1)
    import sounddevice as sd

    sd._terminate()  # re-scan devices now that the server runs
    sd._initialize()
    os.environ.setdefault("PULSE_SINK", "vsink")
    yield sd
    if started:
        subprocess.run(["pulseaudio", "-k"], capture_output=True)
        sd._terminate()
        sd._initialize()
