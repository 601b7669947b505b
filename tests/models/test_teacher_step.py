"""The exportable step of a streaming teacher equals its PyTorch step, also past its context."""

import numpy as np
import pytest
import torch

from models.causal_teacher import HOP
from models.teacher_step import TeacherStep, export_teacher_step, teacher_initial_state
from tests.conftest import tiny_causal_teacher


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return tiny_causal_teacher(tmp_path_factory.mktemp("tstep"), 8, layer=1)


def _reference(teacher, blocks):
    st = teacher.model.init_state(1)
    out = []
    with torch.no_grad():
        for b in blocks:
            hidden, st = teacher.model.step(torch.from_numpy(b)[None], st)
            out.append(teacher.normalise(hidden[teacher.layer], teacher.layer)[0].numpy())
    return np.stack(out)


def test_fixed_cache_step_equals_the_growing_cache_step(teacher):
    rng = np.random.default_rng(1)
    blocks = [(rng.standard_normal(HOP) * 0.1).astype(np.float32) for _ in range(20)]  # > 8
    ref = _reference(teacher, blocks)
    step = TeacherStep(teacher)
    st = step.init_state()
    got = []
    with torch.no_grad():
        for b in blocks:
            e, *st = step(torch.from_numpy(b)[None], *st)
            got.append(e[0, 0].numpy())
    np.testing.assert_allclose(np.stack(got), ref, atol=1e-4)


def test_exported_teacher_step_equals_pytorch(teacher, tmp_path):
    import onnxruntime as ort

    rng = np.random.default_rng(2)
    blocks = [(rng.standard_normal(HOP) * 0.1).astype(np.float32) for _ in range(20)]
    ref = _reference(teacher, blocks)
    sess = ort.InferenceSession(str(export_teacher_step(teacher, tmp_path)))
    names = [i.name for i in sess.get_inputs()]
    st = teacher_initial_state(teacher)
    got = []
    for b in blocks:
        e, *st = sess.run(None, dict(zip(names, [b[None], *st], strict=True)))
        got.append(e[0, 0])
    np.testing.assert_allclose(np.stack(got), ref, atol=1e-4)
