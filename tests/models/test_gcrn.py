import numpy as np
import pytest
import torch

from models.gcrn import GCRN, GCRNConfig
from tests.conftest import switch_on_deep_filter

VARIANTS = {
    "baseline": GCRNConfig(),
    "direct_mapping": GCRNConfig(residual=False),
    "no_decoder_lstm": GCRNConfig(decoder_lstm=False),
    "raw_ri": GCRNConfig(compress=1.0),
    "distill": GCRNConfig(ssl_dim=32, distill_head=True),
    "deep_filter": GCRNConfig(df_taps=2),
    "lookahead": GCRNConfig(df_taps=2, lookahead=1),
    "lookahead_raw": GCRNConfig(df_taps=2, lookahead=2, compress=1.0),
}


def _speechlike_spec(seconds=5.0, seed=0):
    from dsp.stft import stft

    rng = np.random.default_rng(seed)
    sr = 16000
    t = np.arange(int(sr * seconds)) / sr
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.5 * t)
    ph = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * ph) / k for k in range(1, 30)) * (np.sin(2 * np.pi * 2.5 * t) > -0.3)
    x = 0.05 * x + 0.01 * rng.standard_normal(len(t))
    spec = stft(torch.from_numpy(x).float())
    return torch.stack([spec.real, spec.imag])[None]  # [1, 2, T, F]


def _model(cfg, seed=0):
    torch.manual_seed(seed)
    m = GCRN(cfg)
    # random, non-trivial BatchNorm statistics so eval-mode BN is exercised
    for h in m.heads:  # residual heads start at zero (identity); make the network matter
        torch.nn.init.normal_(h.weight, std=0.05)
        torch.nn.init.normal_(h.bias, std=0.05)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
    switch_on_deep_filter(m)
    return m.eval()


def _stream(m, x):
    st = m.init_state(x.shape[0])
    outs = []
    with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False):  # fast single frames
        for t in range(x.shape[2]):
            o, st = m.step(x[:, :, t : t + 1], st)
            outs.append(o)
    return torch.cat(outs, 2)


def test_size_matches_paper():
    m = GCRN()
    n = sum(p.numel() for p in m.parameters())
    assert 3.4e6 < n < 3.8e6
    assert n * 4 / 1e6 < 16
    assert m.config.freq_sizes == [257, 128, 63, 31, 15, 7]
    assert m.config.bottleneck_dim == 448


@pytest.mark.parametrize("name", sorted(VARIANTS))
@pytest.mark.parametrize("signal", ["random", "speechlike"])
def test_streaming_equals_offline(name, signal):
    m = _model(VARIANTS[name])
    if signal == "random":
        torch.manual_seed(1)
        x = torch.randn(1, 2, 250, 257) * 0.1  # 250 frames = 5 s
    else:
        x = _speechlike_spec()
    assert x.shape[2] >= 249
    with torch.no_grad():
        off = m(x)
    assert (off - _stream(m, x)).abs().max() < 1e-5


@pytest.mark.parametrize("name", ["baseline", "raw_ri", "deep_filter", "lookahead"])
def test_causal(name):
    m = _model(VARIANTS[name])
    torch.manual_seed(2)
    x = torch.randn(1, 2, 60, 257)
    t = 30
    x2 = x.clone()
    x2[:, :, t + 1 :] += torch.randn_like(x2[:, :, t + 1 :])
    with torch.no_grad():
        a, b = m(x), m(x2)
    assert (a[:, :, : t + 1] - b[:, :, : t + 1]).abs().max() == 0
    assert (a[:, :, t + 1 :] - b[:, :, t + 1 :]).abs().max() > 1e-3


def test_fresh_state_is_independent_of_earlier_calls():
    m = _model(VARIANTS["baseline"])
    x = torch.randn(1, 2, 20, 257)
    ref = _stream(m, x)
    _stream(m, torch.randn(1, 2, 40, 257))  # use the model on something else
    assert torch.equal(_stream(m, x), ref)
    s1 = m.init_state()
    s2 = m.init_state()
    pairs = zip(s1.tensors(), s2.tensors(), strict=True)
    assert all(a.data_ptr() != b.data_ptr() for a, b in pairs)


def test_bottleneck_hook_and_fusion():
    cfg = GCRNConfig(ssl_dim=24, fusion=True, distill_head=True)
    m = _model(cfg)
    x = torch.randn(2, 2, 10, 257)
    ssl = torch.randn(2, 10, 24)
    y, z = m(x, ssl=ssl, return_bottleneck=True)
    assert y.shape == x.shape and z.shape == (2, 10, 448)
    assert m.predict_ssl(z).shape == (2, 10, 24)
    with pytest.raises(ValueError, match="fuses SSL"):
        m(x)
    assert m.inference_parameters() < sum(p.numel() for p in m.parameters())


def test_config_roundtrip_and_unknown_keys():
    cfg = GCRNConfig(channels=(8, 8, 8, 8, 16), ssl_dim=8, distill_head=True)
    assert GCRNConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown GCRN config keys"):
        GCRNConfig.from_dict({"bogus": 1})


def test_residual_model_starts_as_identity():
    m = GCRN(GCRNConfig(residual=True)).eval()
    x = torch.randn(1, 2, 30, 257) * 0.1
    with torch.no_grad():
        assert (m(x) - x).abs().max() < 1e-5


def test_deep_filter_starts_as_the_model_it_extends():
    """A model with filter taps, from the weights of one without (``adapt_state``), computes
    the same; once its filter channels are trained it filters the past noisy frames."""
    base = _model(VARIANTS["baseline"])
    df = GCRN(GCRNConfig(df_taps=3)).eval()
    df.load_state_dict(df.adapt_state(base.state_dict()))
    x = _speechlike_spec(seconds=1.0)
    with torch.no_grad():
        assert (df(x) - base(x)).abs().max() < 1e-6
        switch_on_deep_filter(df)
        y = df(x)
        assert (y - base(x)).abs().max() > 1e-3
        # frame 0 has no past frames: the filter adds nothing there
        assert (y[:, :, 0] - base(x)[:, :, 0]).abs().max() < 1e-6
    assert df.state_dict()["decoders.0.4.conv.weight"].shape[0] == 4 * 4
    # a state dict that already fits passes through; one of another shape is refused
    assert df.adapt_state(df.state_dict()) is not None
    other = dict(base.state_dict())
    other["decoders.0.4.conv.weight"] = torch.zeros(6, 32, 2, 2)
    with pytest.raises(ValueError, match="does not fit"):
        df.adapt_state(other)
    with pytest.raises(ValueError, match="df_taps"):
        GCRN(GCRNConfig(df_taps=-1))


def test_lookahead_estimates_an_earlier_frame():
    """A model that looks ahead L frames starts (residual heads at zero, filter off) as the
    identity delayed by L frames, reports L more hops of latency, and must not exceed its taps."""
    m = GCRN(GCRNConfig(df_taps=2, lookahead=1)).eval()
    plain = GCRN(GCRNConfig(df_taps=2)).eval()
    assert m.latency_samples == plain.latency_samples + m.config.hop
    x = torch.randn(1, 2, 30, 257) * 0.1
    with torch.no_grad():
        y = m(x)
    assert y[:, :, 0].abs().max() < 1e-6  # nothing before the first frame
    assert (y[:, :, 1:] - x[:, :, :-1]).abs().max() < 1e-5
    with pytest.raises(ValueError, match="lookahead"):
        GCRN(GCRNConfig(df_taps=1, lookahead=2))
    with pytest.raises(ValueError, match="lookahead"):
        GCRN(GCRNConfig(lookahead=1))
