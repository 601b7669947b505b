"""The one-frame step that the ONNX export runs computes GCRN.step from the same weights."""

import numpy as np
import pytest
import torch

from models.gcrn import GCRN, GCRNConfig
from models.step_graph import LeanStep
from tests.conftest import switch_on_deep_filter


def _trained_looking(cfg: GCRNConfig) -> GCRN:
    """A GCRN whose BatchNorms and heads are not at their initial values (folding must matter)."""
    torch.manual_seed(0)
    model = GCRN(cfg)
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)
        if isinstance(m, torch.nn.LayerNorm):
            m.weight.data.copy_(torch.rand(m.normalized_shape, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.normalized_shape, generator=g) * 0.1)
    for h in model.heads:
        torch.nn.init.normal_(h.weight, std=0.05)
        torch.nn.init.normal_(h.bias, std=0.05)
    switch_on_deep_filter(model)
    return model.eval()


@pytest.mark.parametrize(
    "cfg",
    [
        GCRNConfig(),
        GCRNConfig(channels=(8, 8, 12, 12, 16), decoder_lstm=False, compress=1.0),
        GCRNConfig(channels=(8, 8, 12, 12, 16), lstm_groups=4, lstm_layers=3, residual=False),
        GCRNConfig(ssl_dim=32, distill_head=True),
        GCRNConfig(df_taps=3),
        GCRNConfig(channels=(8, 8, 12, 12, 16), df_taps=1, compress=1.0),
        GCRNConfig(df_taps=3, lookahead=1),
        GCRNConfig(channels=(8, 8, 12, 12, 16), df_taps=2, lookahead=2, compress=1.0),
    ],
    ids=[
        "default",
        "no-decoder-lstm-raw",
        "four-groups-three-layers",
        "distill-head",
        "deep-filter",
        "deep-filter-one-tap-raw",
        "lookahead",
        "lookahead-two-raw",
    ],
)
def test_lean_step_equals_the_model_step(cfg):
    model = _trained_looking(cfg)
    lean = LeanStep(model)
    st, lst = model.init_state(1), lean.init_state()
    rng = np.random.default_rng(0)
    worst = 0.0
    with torch.no_grad():
        for _ in range(40):
            frame = torch.from_numpy(rng.standard_normal((1, 2, 1, 257)).astype(np.float32))
            ref, st = model.step(frame, st)
            out, *lst = lean(frame, *lst)
            scale = ref.abs().max().item()
            worst = max(worst, (out - ref).abs().max().item() / scale)
    assert worst < 1e-5


def test_lean_step_of_a_fusion_model_mixes_the_embedding_in():
    cfg = GCRNConfig(channels=(8, 8, 12, 12, 16), ssl_dim=24, fusion=True)
    model = _trained_looking(cfg)
    with torch.no_grad():
        model.fuse_logit.fill_(0.3)
    lean = LeanStep(model)
    st, lst = model.init_state(1), lean.init_state()
    rng = np.random.default_rng(1)
    with torch.no_grad():
        for _ in range(20):
            frame = torch.from_numpy(rng.standard_normal((1, 2, 1, 257)).astype(np.float32))
            ssl = torch.from_numpy(rng.standard_normal((1, 1, 24)).astype(np.float32))
            ref, st = model.step(frame, st, ssl=ssl)
            out, *lst = lean(frame, ssl, *lst)
            assert (out - ref).abs().max() <= 1e-5 * ref.abs().max()
