"""Engine defects that a listening test cannot afford, each pinned by a test: model swaps that
stay time-aligned, one consumer of the output ring, recordings that never stop the audio, a
full-band dry path, and reproducible corpus plans."""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import soundfile as sf

from app.engine import Engine, EngineConfig, FileSink, FileSource
from dsp.metrics import estimate_lag, si_sdr
from models.processor import Bypass, load_processor
from tests.conftest import speechlike

RATE = 48000


class Probe(Engine):
    """An engine that keeps every slot's aligned output apart (what ``_mix`` is given)."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.taken: list[list[np.ndarray]] = []

    def _mix(self, n):
        taken = [self._take(s, n) for s in self.slots]
        self.taken.append(taken)
        return taken[0]


def _streams(eng):
    k = len(eng.taken[-1])
    return [np.concatenate([t[i] for t in eng.taken]) for i in range(k)]


def _noise(seconds, seed=0):
    import scipy.signal as ss

    x = np.random.default_rng(seed).standard_normal(int(seconds * RATE))
    sos = ss.butter(8, 6000, fs=RATE, output="sos")  # inside every slot's band
    return (0.1 * ss.sosfilt(sos, x)).astype(np.float32)


def _lag_after(a, b, start, n=RATE // 2):
    seg = slice(start, start + n)
    return estimate_lag(a[seg], b[seg], 400)


def test_replacements_stay_aligned_with_the_dry_signal():
    x = _noise(6.0)
    eng = Probe(
        [Bypass(16000, 320, 80), Bypass(16000, 320, 80)], EngineConfig(rate=RATE, realtime=False)
    )
    L = eng.latency_samples
    swaps = {
        60: (0, Bypass(16000, 320, 80)),  # bypass replacing the same bypass
        130: (1, Bypass(16000, 320, 0)),  # a shorter latency
        200: (0, Bypass(48000, 480, 0)),  # another rate
        270: (1, Bypass(16000, 160, 80)),  # another hop
        340: (0, Bypass(16000, 320, 80)),
    }
    for k, i in enumerate(range(0, len(x), 480)):
        if k in swaps:
            eng.replace_processor(*swaps[k])
        eng.process_block(x[i : i + 480])
    a, b, dry = _streams(eng)
    # the dry signal is the input delayed by exactly the common latency
    n = len(dry) - L
    np.testing.assert_allclose(dry[L : L + n], x[:n], atol=1e-6)
    for k in sorted(swaps):
        start = (k + 15) * 480  # past the swapped slot's resampler warm-up
        assert _lag_after(dry, a, start) == 0, k
        assert _lag_after(dry, b, start) == 0, k
    assert np.max(np.abs(a[-RATE:] - dry[-RATE:])) < 0.02
    assert np.max(np.abs(b[-RATE:] - dry[-RATE:])) < 0.02


def test_a_model_replaced_by_itself_stays_aligned(baseline_path):
    x = speechlike(5.0, RATE, seed=4) + 0.3 * _noise(5.0, 1)
    p = load_processor(baseline_path)
    eng = Probe([p, load_processor(baseline_path)], EngineConfig(rate=RATE, realtime=False))
    for k, i in enumerate(range(0, len(x), 480)):
        if k in (100, 250):
            eng.replace_processor(0, load_processor(baseline_path))
        eng.process_block(x[i : i + 480])
    a, b, _ = _streams(eng)
    for k in (100, 250):
        start = (k + 40) * 480  # the fresh model's state has warmed up
        assert _lag_after(b, a, start) == 0
    tail = slice(len(a) - RATE, len(a))
    assert si_sdr(b[tail], a[tail]) > 10  # the same model, warmed up: nearly the same output


def test_replacement_is_applied_by_the_worker_not_the_caller():
    eng = Engine([Bypass(16000, 320, 80)], EngineConfig(rate=RATE, realtime=False))
    before = eng.slots
    eng.replace_processor(0, Bypass(16000, 320, 80))
    assert eng.slots is before  # nothing the worker iterates over changed under it
    eng.process_block(np.zeros(480, np.float32))
    assert eng.slots is not before


def test_dry_path_is_full_band():
    t = np.arange(RATE) / RATE
    x = (0.3 * np.sin(2 * np.pi * 12000 * t)).astype(np.float32)  # above 8 kHz
    eng = Engine([Bypass(16000, 320, 80)], EngineConfig(rate=RATE, realtime=False))
    eng.set_wet(0.0)
    y = np.concatenate([eng.process_block(x[i : i + 480]) for i in range(0, len(x), 480)])
    L = eng.latency_samples
    np.testing.assert_allclose(y[L:], x[: len(y) - L], atol=1e-6)


def test_output_ring_has_one_reader_under_two_thread_stress():
    """The worker feeds the output ring with adaptive buffering while a callback-like thread
    reads it at an uneven pace: only that thread ever moves the read side, and what it reads
    is the written ramp in order (gaps where buffering dropped, never repeats)."""
    eng = Engine([Bypass(RATE, 480, 0)], EngineConfig(rate=RATE, realtime=False, block=480))
    eng._prefilled = False
    ring = eng.out_ring
    readers = set()
    for name in ("read_into", "discard", "read_available_into"):
        orig = getattr(ring, name)

        def spy(*a, _orig=orig, **k):
            readers.add(threading.current_thread().name)
            return _orig(*a, **k)

        setattr(ring, name, spy)
    stop = threading.Event()
    got = []

    def callback():
        buf = np.zeros(480, np.float32)
        rng = np.random.default_rng(0)
        while not stop.is_set():
            if ring.read_into(buf):
                got.append(buf.copy())
            else:
                eng.underruns += 1
            threading.Event().wait(float(rng.choice([0.0, 0.0005, 0.003])))

    th = threading.Thread(target=callback, name="callback")
    th.start()
    value = 1.0
    for k in range(3000):
        blk = value + np.arange(480, dtype=np.float32)
        value += 480
        eng._feed_output(blk)
        if k % 7 == 0:
            threading.Event().wait(0.002)
    stop.set()
    th.join()
    assert readers == {"callback"}
    seq = np.concatenate(got)
    seq = seq[seq > 0]  # the zeros of pre-fills and buffer growth
    assert len(seq) > 100_000 and np.all(np.diff(seq) > 0)


def test_fifty_recordings_while_streaming_never_stop_the_audio(tmp_path, monkeypatch):
    slow_write = sf.SoundFile.write

    def slow(self, data):  # a slow disk: each write takes 2 ms
        threading.Event().wait(0.002)
        return slow_write(self, data)

    monkeypatch.setattr(sf.SoundFile, "write", slow)
    src = FileSource(None, 16000, audio=speechlike(5.0, 16000), loop=True)
    eng = Engine([Bypass(16000, 320, 80)], EngineConfig(rate=16000, block=160, realtime=True))
    eng.start(src, [])
    lengths = []
    for i in range(50):
        sink = FileSink(tmp_path / f"o{i}.wav", 16000, record_input=str(tmp_path / f"i{i}.wav"))
        eng.add_sink(sink)
        threading.Event().wait(0.03)
        eng.remove_sink(sink)
        sink.close()  # at once, while the worker may still be writing to it
        lengths.append(sf.info(str(tmp_path / f"o{i}.wav")).frames)
    alive = not eng.finished.is_set()
    n0 = eng.samples_in
    threading.Event().wait(0.1)
    flowing = eng.samples_in > n0
    eng.stop()
    assert alive and flowing
    assert not any("engine stopped" in m for m in eng.health()["messages"])
    assert sum(x > 0 for x in lengths) >= 40


def test_latency_figure_counts_resamplers_and_queues():
    eng = Engine([Bypass(16000, 320, 80)], EngineConfig(rate=RATE, realtime=False))
    for _ in range(50):
        eng.process_block(np.zeros(480, np.float32))
    h = eng.health()
    assert h["queue_latency_ms"] > 0
    assert h["latency_ms"] >= h["algorithmic_latency_ms"] + h["queue_latency_ms"] - 1e-6


def test_corpus_plans_are_identical_across_hash_seeds():
    code = (
        "import hashlib, json; from pathlib import Path; from training import corpus as C; "
        "from training.text import sentences; "
        "jobs = C.corpus_plan.plan_tts(C.CorpusConfig(), Path('/c'), 'espeak', 0.05, "
        "C.engine_rng(0.25, 'espeak'), sentences(C.N_SENTENCES, seed=1)); "
        "print(hashlib.sha1(json.dumps(jobs, sort_keys=True).encode()).hexdigest())"
    )
    outs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        outs.add(res.stdout.strip())
    assert len(outs) == 1


@pytest.mark.parametrize("bad", ["closed", "full"])
def test_sink_errors_never_reach_the_worker(tmp_path, bad):
    sink = FileSink(tmp_path / "x.wav", 16000)
    if bad == "closed":
        sink.close()
        sink.write(np.zeros(10, np.float32))  # dropped, no exception
    else:
        sink._f.close()  # the file vanished under the writer
        sink.write(np.zeros(10, np.float32))
        sink.close()
        assert sink.error


def test_engine_keeps_a_and_b_spectrograms_apart():
    class Silence(Bypass):
        name = "silence"

        def step(self, block, state):
            return np.zeros_like(block), state

    t = np.arange(RATE) / RATE
    x = (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    eng = Engine([Bypass(16000, 320, 80), Silence(16000, 320, 80)], EngineConfig(rate=RATE))
    for i in range(0, len(x), 480):
        eng.process_block(x[i : i + 480])
    assert eng.spec_a.written == 0  # display work only when asked for
    eng.ab_display = True
    for i in range(0, len(x), 480):
        eng.process_block(x[i : i + 480])
    a, b = eng.spec_a.view()[-20:], eng.spec_b.view()[-20:]
    assert eng.spec_a.written > 40
    assert a[:, 32].mean() > b[:, 32].mean() + 60  # the tone is in A and not in B


class Gain(Bypass):
    """Bypass at a gain: tells which processor is heard."""

    def __init__(self, g):
        super().__init__(16000, 320, 80)
        self.g, self.name = g, f"x{g}"

    def step(self, block, state):
        y, state = super().step(block, state)
        return self.g * y, state


@pytest.mark.parametrize("swaps", [{60: 0.6}, {60: 0.6, 63: 0.4}], ids=["one", "two-in-warm-up"])
def test_replacing_the_audible_model_hands_over_without_a_gap_or_click(swaps):
    """The old processor plays until its successor has warmed up, then a 20 ms crossfade. A
    second change before the first one has warmed up (30 ms later) replaces that handover: the
    slot still plays what it played until the newest model is warm - no gap from the half-warm
    model in between."""
    t = np.arange(RATE * 2) / RATE
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    eng = Engine([Bypass(16000, 320, 80), Bypass(16000, 320, 80)], EngineConfig(rate=RATE))
    outs = []
    for k, i in enumerate(range(0, len(x), 480)):
        if k in swaps:
            eng.replace_processor(0, Gain(swaps[k]))  # the audible slot
        outs.append(eng.process_block(x[i : i + 480]))
    y = np.concatenate(outs)
    body = y[RATE // 10 :]
    assert np.max(np.abs(np.diff(body))) <= np.max(np.abs(np.diff(x))) + 1e-3  # no click
    env = np.abs(body[: len(body) // 480 * 480]).reshape(-1, 480).max(axis=1)
    last = swaps[max(swaps)]
    assert env.min() > 0.9 * 0.5 * last  # never a gap while the new one warms up
    L, n = eng.latency_samples, len(y)
    np.testing.assert_allclose(y[-RATE // 4 :], last * x[n - RATE // 4 - L : n - L], atol=0.02)
    assert not eng._handovers
