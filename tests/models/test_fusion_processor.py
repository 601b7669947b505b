"""A fusion model streams: GCRN step + streaming-teacher step in one processor, equal to the
offline forward, and it refuses a teacher other than the one it was trained with."""

import json

import numpy as np
import pytest
import torch
from transformers import Wav2Vec2Config

from dsp.errors import UserError
from dsp.stft import DEFAULT_GEOMETRY, StreamingIstft, stft
from models.checkpoint import save_checkpoint
from models.gcrn import GCRN, GCRNConfig
from models.processor import load_processor
from models.teacher import Teacher
from tests.conftest import TINY_TEACHER, speechlike, tiny_causal_teacher

G = DEFAULT_GEOMETRY


@pytest.fixture(scope="module")
def fusion(tmp_path_factory):
    root = tmp_path_factory.mktemp("fusion")
    teacher = tiny_causal_teacher(root, 16)
    model = GCRN(GCRNConfig(channels=(8, 8, 8, 8, 16), ssl_dim=32, fusion=True)).eval()
    for h in model.heads:
        torch.nn.init.normal_(h.weight, std=0.05)
    with torch.no_grad():
        model.fuse_logit.fill_(0.5)
    record = json.dumps({**teacher.describe(), "digest": teacher.digest})
    ck = save_checkpoint(root / "fusion.safetensors", model, teacher=record)
    return root, ck, model, teacher


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_fusion_streaming_equals_offline_forward(fusion, backend, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    _, ck, model, teacher = fusion
    proc = load_processor(str(ck), backend=backend)
    assert proc.backend == backend and proc.latency_samples == G.win - G.hop
    if backend == "onnx":  # the teacher's embedding is an input of the exported step
        assert "ssl" in proc._in_names
    assert proc.params > model.inference_parameters()  # the teacher's step counts too
    x = speechlike(1.5, 16000) + 0.01 * np.random.default_rng(1).standard_normal(24000)
    x = x[: (len(x) // G.hop) * G.hop].astype(np.float32)
    streamed = proc.process(x)
    padded = torch.from_numpy(np.concatenate([np.zeros(G.win - G.hop, np.float32), x]))[None]
    spec = stft(padded, G)  # [1, T, F]
    ssl = teacher.embed(padded, normalise=True)  # [1, T, D]
    with torch.no_grad():
        y = model(torch.stack([spec.real, spec.imag], 1), ssl=ssl)  # [1, 2, T, F]
    syn = StreamingIstft(G)
    frames = (y[0, 0] + 1j * y[0, 1]).numpy()
    offline = np.concatenate([syn.push(f) for f in frames])
    np.testing.assert_allclose(streamed, offline, atol=1e-4)
    # and the teacher matters: without its embedding the output differs
    with torch.no_grad():
        y0 = model(torch.stack([spec.real, spec.imag], 1), ssl=torch.zeros_like(ssl))
    assert float((y0 - y).abs().max()) > 1e-4


def test_a_different_teacher_is_refused(fusion, tmp_path):
    root, ck, model, teacher = fusion
    record = json.dumps({**teacher.describe(), "digest": "0" * 16, "weights_digest": "1" * 16})
    bad = save_checkpoint(tmp_path / "bad.safetensors", model, teacher=record)
    with pytest.raises(UserError, match="different weights, a different model"):
        load_processor(str(bad))
    record = json.dumps({**teacher.describe(), "digest": "0" * 16})  # same weights
    bad = save_checkpoint(tmp_path / "cfg.safetensors", model, teacher=record)
    with pytest.raises(UserError, match="same weights with another config"):
        load_processor(str(bad))
    record = json.dumps({**teacher.describe(), "teacher": "no-such-teacher", "source": ""})
    gone = save_checkpoint(tmp_path / "gone.safetensors", model, teacher=record)
    with pytest.raises(UserError, match="needs its teacher 'no-such-teacher'"):
        load_processor(str(gone))
    none = save_checkpoint(tmp_path / "none.safetensors", model)
    with pytest.raises(UserError, match="without a teacher record"):
        load_processor(str(none))


def test_a_bidirectional_teacher_cannot_stream(tmp_path):
    from transformers import Wav2Vec2Model

    Wav2Vec2Model(Wav2Vec2Config(**TINY_TEACHER)).save_pretrained(tmp_path / "bi")
    t = Teacher(tmp_path / "bi", cache_dir=tmp_path / "c")
    model = GCRN(GCRNConfig(channels=(8, 8, 8, 8, 16), ssl_dim=32, fusion=True))
    ck = save_checkpoint(
        tmp_path / "f.safetensors", model, teacher=json.dumps({**t.describe(), "digest": t.digest})
    )
    with pytest.raises(UserError, match="not causal"):
        load_processor(str(ck))


def test_distillation_head_is_absent_from_the_inference_graph(tmp_path):
    import onnx

    from models.processor import export_onnx

    torch.manual_seed(2)
    model = GCRN(GCRNConfig(channels=(8, 8, 8, 8, 16), ssl_dim=32, distill_head=True)).eval()
    with torch.no_grad():
        model.distill.weight.fill_(0.123)  # a value to look for
    graph = onnx.load(str(export_onnx(model, tmp_path)))
    names = [i.name for i in graph.graph.initializer]
    assert names and not any("distill" in n for n in names)
    d = model.distill.weight.shape
    for init in graph.graph.initializer:
        arr = onnx.numpy_helper.to_array(init)
        assert not (arr.shape == tuple(d) and np.allclose(arr, 0.123))
    base = GCRN(GCRNConfig(channels=(8, 8, 8, 8, 16)))
    assert model.inference_parameters() == sum(p.numel() for p in base.parameters())
