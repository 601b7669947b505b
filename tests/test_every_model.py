"""Every name ``hushlab models`` lists works on whatever is installed: each processor enhances the
demo mixture through ``hushlab enhance`` and through the engine, and each teacher embeds it (the
streaming one frame by frame too). A fresh install on newer library releases fails here, not in a
user's hands - as a ``transformers`` minor release once broke ``fusion``'s teacher check."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import soundfile as sf

from app.cmd_models import listed_names
from app.engine import Engine, EngineConfig
from dsp.audio_io import load_audio
from dsp.metrics import si_sdr
from dsp.mixing import mix_at_snr
from models.processor import ProcessorUnavailable, load_processor
from models.teacher import shipped_teachers

PROCESSORS, TEACHERS = listed_names()
SECONDS = 4.0


@pytest.fixture(scope="module")
def demo_mixture(tmp_path_factory):
    """The app's demo speech and noise at 0 dB, 48 kHz (the engine's rate), 4 s."""
    from app.gui import DEMO_CLEAN, DEMO_NOISE

    rate = 48000
    clean = load_audio(DEMO_CLEAN, rate)[0][: int(SECONDS * rate)]
    noise = load_audio(DEMO_NOISE, rate)[0][: len(clean)]
    noisy, clean, _ = mix_at_snr(clean, noise, 0.0)
    path = tmp_path_factory.mktemp("demo") / "demo_mix.wav"
    sf.write(path, noisy, rate, subtype="FLOAT")
    return path, noisy, clean, rate


def test_the_listing_holds_the_shipped_models_teachers_and_peers():
    for name in ("baseline", "kd", "pretrain", "fusion", "bypass", "rnnoise", "gtcrn"):
        assert name in PROCESSORS
    assert {"teacher", "teacher-causal"} <= set(TEACHERS)


def _load(name):
    try:
        return load_processor(name)
    except ProcessorUnavailable as exc:  # a peer whose optional package is not installed
        pytest.skip(f"{name}: {exc}")


@pytest.mark.slow
@pytest.mark.parametrize("name", PROCESSORS)
def test_every_listed_processor_enhances_the_demo(name, demo_mixture, tmp_path):
    from app.cmd_enhance import run as enhance

    path, noisy, clean, rate = demo_mixture
    _load(name)
    out = tmp_path / "out.wav"
    assert (
        enhance(argparse.Namespace(input=str(path), output=str(out), model=name, backend="auto"))
        == 0
    )
    y, sr = sf.read(out, dtype="float32")
    assert sr == rate and y.shape == noisy.shape and np.isfinite(y).all()
    skip = rate // 4  # the first frames fill each model's state
    gain = si_sdr(clean[skip:], y[skip:]) - si_sdr(clean[skip:], noisy[skip:])
    if name == "bypass":
        assert abs(gain) < 0.5
    else:  # a real enhancer on real speech in real noise at 0 dB (DeepFilterNet3: +0.6)
        assert gain > 0.3, f"{name}: SI-SDR {gain:+.2f} dB over the input"

    # the engine (the app's path) plays the same stream, delayed by its latency
    eng = Engine([_load(name)], EngineConfig(rate=rate, realtime=False))
    blocks = [eng.process_block(noisy[i : i + 480]) for i in range(0, len(noisy) - 479, 480)]
    z = np.concatenate(blocks)
    lat = eng.latency_samples
    n = len(z) - lat
    assert np.isfinite(z).all()
    assert si_sdr(y[skip:n], z[lat + skip : lat + n]) > 20, f"{name}: engine != enhance"


@pytest.mark.slow
@pytest.mark.parametrize("name", TEACHERS)
def test_every_listed_teacher_embeds_the_demo(name, demo_mixture):
    import torch

    from dsp.resample import resample
    from models.teacher import Teacher

    _, noisy, _, rate = demo_mixture
    x = resample(noisy, rate, 16000)
    t = Teacher(name)
    assert t.source == str(shipped_teachers()[name])
    e = t.embed(x, normalise=True)[0]  # [T, D], its stored statistics found and used
    assert e.shape[1] == t.dim and np.isfinite(e.numpy()).all()
    assert 0.3 < float(e.std()) < 3.0
    if t.causal:  # its streaming step is its offline forward (80 zeros in front), frame by frame
        state, frames = t.model.init_state(1), []
        with torch.no_grad():
            for i in range(0, len(x) - 319, 320):
                hidden, state = t.model.step(torch.from_numpy(x[i : i + 320])[None], state)
                frames.append(hidden[t.layer][0])
        offline = t.embed(np.concatenate([np.zeros(80, np.float32), x]))[0]
        assert len(frames) == len(offline)
        assert float((torch.stack(frames) - offline).abs().max()) < 1e-3
