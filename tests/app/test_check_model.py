"""`hushlab check-model`: a processor that keeps its streaming contract passes; each way of
breaking it (a wrong declared latency, an offline trick, shared state, NaN) fails by name."""

import numpy as np

from app.cli import main as hushlab
from app.cmd_check_model import run_checks
from models.processor import Bypass


def _verdicts(proc):
    return {c.name: c.ok for c in run_checks(proc, seconds=2.0)}


class Delayed(Bypass):
    """Declares no latency but delays by one hop."""

    def __init__(self):
        super().__init__(16000, 320, 0)

    def init_state(self):
        return np.zeros(320, np.float32)

    def step(self, block, state):
        return state, np.asarray(block, np.float32).copy()


class PeakNormalised(Bypass):
    """Scales the whole signal by its peak: fine offline, impossible in a stream."""

    def process(self, x):
        return (0.3 * x / np.max(np.abs(x))).astype(np.float32)


class Shared(Bypass):
    """Keeps its memory on the processor, not in the state: two streams bleed into each other."""

    def __init__(self):
        super().__init__(16000, 320, 0)
        self.last = np.zeros(320, np.float32)

    def init_state(self):
        self.last = np.zeros(320, np.float32)
        return None

    def step(self, block, state):
        y = 0.5 * (np.asarray(block, np.float32) + self.last)
        self.last = np.asarray(block, np.float32).copy()
        return y, state


class Broken(Bypass):
    def step(self, block, state):
        return np.full(len(block), np.nan, np.float32), state


def test_bypass_keeps_its_contract():
    assert all(v is not False for v in _verdicts(Bypass(16000, 320, 80)).values())


def test_each_way_of_breaking_the_contract_is_named():
    assert _verdicts(Delayed())["latency"] is False
    assert _verdicts(PeakNormalised(16000, 320, 0))["causality"] is False
    assert _verdicts(Shared())["independent streams"] is False
    v = _verdicts(Broken(16000, 320, 0))
    assert v["output"] is False and v["level"] is False


def test_the_command_on_a_shipped_model(capsys):
    assert hushlab(["check-model", "baseline", "--backend", "torch", "--seconds", "2"]) == 0
    out = capsys.readouterr().out
    assert "PASS  streaming == offline" in out and "keeps its streaming contract" in out
    assert "declared 400 samples" in out and "measured 400" in out
