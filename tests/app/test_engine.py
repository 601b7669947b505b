import subprocess
import threading
import time
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from app.engine import Engine, EngineConfig, EngineError, FileSink, FileSource, resolve_device
from dsp.metrics import estimate_lag, si_sdr
from models.processor import Bypass, Processor, enhance_array, load_processor
from tests.conftest import speechlike


class Invert(Processor):
    """Polarity inversion: the worst case for a click when switching from bypass."""

    name = "invert"

    def __init__(self, sr=16000, hop=320, latency=80):
        self.sample_rate, self.hop, self.latency_samples = sr, hop, latency
        self._b = Bypass(sr, hop, latency)

    def init_state(self):
        return self._b.init_state()

    def step(self, block, state):
        y, state = self._b.step(block, state)
        return -y, state


class Gain(Invert):
    """A fixed gain: a stand-in for two models that leave speech at different levels."""

    def __init__(self, gain_db: float):
        super().__init__()
        self.name, self.g = f"gain{gain_db:+g}", np.float32(10 ** (gain_db / 20))

    def step(self, block, state):
        y, state = self._b.step(block, state)
        return self.g * y, state


def _run_fast(engine, x, rate, block=480):
    outs = []
    for i in range(0, len(x), block):
        outs.append(engine.process_block(x[i : i + block]))
    return np.concatenate(outs)


def test_file_to_file_matches_offline_enhance(baseline_path, tmp_path):
    rate = 48000
    x = speechlike(4.0, rate) + 0.02 * np.random.default_rng(0).standard_normal(4 * rate)
    x = x.astype(np.float32)
    proc = load_processor(baseline_path)
    eng = Engine([proc], EngineConfig(rate=rate, realtime=False))
    y = _run_fast(eng, x, rate)
    ref = enhance_array(load_processor(baseline_path), x, rate)
    L = eng.latency_samples
    n = min(len(y) - L, len(ref)) - rate // 10
    assert si_sdr(ref[rate // 10 : n], y[L + rate // 10 : L + n]) > 25


def test_ab_switching_has_no_clicks():
    rate = 48000
    t = np.arange(rate * 4) / rate
    rng = np.random.default_rng(1)
    x = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
    eng = Engine([Bypass(16000, 320, 80), Invert()], EngineConfig(rate=rate, realtime=False))
    outs, which = [], 0
    for k, i in enumerate(range(0, len(x), 480)):
        if k and k % 50 == 0:  # every 0.5 s
            which = 1 - which
            eng.request_active(which)
        outs.append(eng.process_block(x[i : i + 480]))
    y = np.concatenate(outs)[rate // 10 :]
    assert np.max(np.abs(np.diff(y))) <= np.max(np.abs(np.diff(x))) + 1e-6
    # and it really did switch: both polarities are present
    assert np.max(y) > 0.4 and np.min(y) < -0.4


def test_without_crossfade_the_same_switch_would_click():
    rate = 48000
    t = np.arange(rate) / rate
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    eng = Engine(
        [Bypass(16000, 320, 80), Invert()],
        EngineConfig(rate=rate, realtime=False, crossfade_ms=0.01),
    )
    outs = []
    for k, i in enumerate(range(0, len(x), 480)):
        if k == 50:
            eng.request_active(1)
        outs.append(eng.process_block(x[i : i + 480]))
    y = np.concatenate(outs)
    assert np.max(np.abs(np.diff(y))) > 2 * np.max(np.abs(np.diff(x)))


def test_slots_of_different_rates_and_latencies_are_time_aligned(baseline_path):
    rate = 48000
    x = speechlike(3.0, rate, seed=2)
    like_dfn = Bypass(48000, 480, 1440)  # DeepFilterNet3's geometry
    model = load_processor(baseline_path)
    eng = Engine([model, Bypass(16000, 320, 80), like_dfn], EngineConfig(rate=rate))
    outs = {i: [] for i in range(3)}
    for i in range(0, len(x), 480):
        for slot in eng.slots:  # what process_block does, keeping each slot's output apart
            eng._run_slot(slot, x[i : i + 480])
        n = min(s.out_len for s in eng.slots)
        for k in range(3):
            outs[k].append(eng._take(eng.slots[k], n))
        eng._take(eng.slots[3], n)
    a, b, c = (np.concatenate(outs[k]) for k in range(3))
    assert estimate_lag(b, c, 200) == 0
    assert np.max(np.abs(b[rate // 5 :] - c[rate // 5 :])) < 0.02
    if "shipped" in baseline_path:  # a trained model's output lines up with its bypass
        assert abs(estimate_lag(b, a, 200)) <= 1


def test_level_match_plays_a_and_b_at_one_level_and_leaves_metrics_raw():
    rate = 48000
    x = (0.5 * speechlike(10.0, rate, seed=8)).astype(np.float32)
    seen = []

    class Tap:  # the live metrics' tap: what the engine hands it
        def push(self, pos, dry, a, b):
            seen.append((a.copy(), b.copy()))

    eng_gains = []

    def play(match: bool) -> tuple[float, float]:
        eng = Engine([Gain(-12.0), Gain(+3.0)], EngineConfig(rate=rate, realtime=False))
        eng.level_match = match
        eng.ref_tap = Tap()
        outs = []
        for k, i in enumerate(range(0, len(x), 480)):
            if k == len(x) // 480 - 300:  # A for the first 7 s, B for the last 3 s
                eng.request_active(1)
            outs.append(eng.process_block(x[i : i + 480]))
        y = np.concatenate(outs)
        eng_gains[:] = eng.match_gains_db()
        return tuple(
            10 * np.log10(np.mean(seg.astype(np.float64) ** 2))
            for seg in (y[5 * rate : 7 * rate], y[8 * rate :])
        )

    a_db, b_db = play(False)
    assert abs((b_db - a_db) - 15.0) < 0.5  # unmatched: B is 15 dB louder
    seen.clear()
    a_db, b_db = play(True)
    assert abs(b_db - a_db) < 1.0  # matched: one level, near the target's
    assert -31.0 < a_db < -24.0
    assert eng_gains[0] - eng_gains[1] == pytest.approx(15.0, abs=1.0)  # A raised, B lowered
    a_raw, b_raw = (np.concatenate(v[-200:]) for v in zip(*seen, strict=True))
    ratio = 20 * np.log10(np.std(b_raw) / np.std(a_raw))
    assert abs(ratio - 15.0) < 0.1  # the metrics see the models' own levels


def test_failing_processor_is_muted_not_fatal():
    class Broken(Bypass):
        name = "broken"

        def step(self, block, state):
            raise RuntimeError("boom")

    eng = Engine([Broken(16000, 320, 80), Bypass(16000, 320, 80)], EngineConfig(rate=16000))
    y = _run_fast(eng, speechlike(1.0), 16000, 320)
    assert np.all(y == 0) and any("boom" in m for m in eng.health()["messages"])
    eng.request_active(1)
    y2 = _run_fast(eng, speechlike(1.0), 16000, 320)
    assert np.max(np.abs(y2)) > 0.01


def test_headless_threaded_file_run_and_soak(baseline_path, tmp_path):
    """10 minutes of audio, as fast as possible, through the worker thread: memory stays flat
    and nothing is lost."""
    rate = 16000
    src = FileSource(None, rate, audio=speechlike(10.0, rate, seed=3), loop=True)
    eng = Engine(
        [load_processor(baseline_path), Bypass(16000, 320, 80)],
        EngineConfig(rate=rate, block=320, realtime=False),
    )
    out = tmp_path / "soak.wav"
    sink = FileSink(out, rate)
    tracemalloc.start()
    eng.start(src, [sink])
    snaps = []
    deadline = time.monotonic() + 900  # a stalled worker fails here instead of hanging CI
    while eng.samples_in < rate * 600:
        assert time.monotonic() < deadline, f"the soak stalled at {eng.samples_in / rate:.0f} s"
        assert all(t.is_alive() for t in eng._threads), "the engine's threads stopped early"
        threading.Event().wait(0.5)
        snaps.append(tracemalloc.get_traced_memory()[0])
        if eng.samples_in > rate * 300 and len(snaps) % 20 == 0:
            eng.request_active(len(snaps) // 20 % 2)
    eng.stop()
    tracemalloc.stop()
    mid, end = snaps[len(snaps) // 2], snaps[-1]
    assert end < mid + 2_000_000  # no growth beyond a couple of MB in the second half
    info = sf.info(str(out))
    assert abs(info.frames - eng.samples_out) == 0 and eng.samples_out > rate * 599


def test_realtime_file_source_runs_through_the_rings_without_loss(baseline_path):
    """At real-time pace the file feeder and the worker meet in the input ring: nothing is
    dropped and every input sample is processed."""
    rate = 16000
    x = speechlike(3.0, rate, seed=8)
    eng = Engine(
        [load_processor(baseline_path), Bypass(16000, 320, 80)],
        EngineConfig(rate=rate, block=160, realtime=True),
    )
    eng.start(FileSource(None, rate, audio=x), [])
    assert eng.wait(30)
    eng.stop()
    h = eng.health()
    assert eng.in_ring._read == eng.in_ring._write == len(x)  # all of it, through the ring
    assert h["dropped_input_samples"] == 0 and h["input_xruns"] == 0
    assert eng.in_ring.underflows == 0 and eng.in_ring.overflows == 0


def test_no_devices_is_a_clear_message(monkeypatch):
    import app.endpoints as E

    monkeypatch.setattr(E, "list_devices", lambda: [])
    with pytest.raises(EngineError, match="no audio input devices"):
        resolve_device("mic", "input")


@pytest.mark.audio
def test_virtual_microphone_to_file_matches_enhance(pulse, baseline_path, tmp_path):
    """Play noisy speech into a PulseAudio null sink, stream its monitor through the engine with
    the model to a file at real-time pace, and compare with offline enhancement."""
    rate = 48000
    rng = np.random.default_rng(5)
    clean = np.concatenate([speechlike(3.0, rate, seed=s) for s in range(7)])
    noisy = (clean + 0.03 * rng.standard_normal(len(clean))).astype(np.float32)
    pad = np.zeros(rate // 2, np.float32)
    played = np.concatenate([pad, noisy, pad])
    wav = tmp_path / "play.wav"
    sf.write(wav, played, rate)
    dev = resolve_device("default", "input")
    from app.engine import DeviceSource

    eng = Engine([load_processor(baseline_path)], EngineConfig(rate=rate))
    sink = FileSink(tmp_path / "out.wav", rate, record_input=str(tmp_path / "in.wav"))
    eng.start(DeviceSource(str(dev["index"])), [sink])
    threading.Event().wait(0.3)
    subprocess.run(["paplay", "--device=vsink", str(wav)], check=True, timeout=60)
    threading.Event().wait(0.3)
    eng.stop()
    h = eng.health()
    assert h["input_xruns"] == 0 and h["dropped_input_samples"] == 0
    recorded, _ = sf.read(tmp_path / "in.wav", dtype="float32")
    out, _ = sf.read(tmp_path / "out.wav", dtype="float32")
    assert len(recorded) > 20 * rate
    # what the engine heard, enhanced offline, must match what it produced live
    ref = enhance_array(load_processor(baseline_path), recorded, rate)
    L = eng.latency_samples
    n = min(len(out) - L, len(ref))
    seg = slice(rate, n - rate)
    assert si_sdr(ref[seg], out[L:][seg]) > 25


def test_stalled_input_device_is_reported_not_hung(monkeypatch):
    """A device that stops delivering audio (unplugged) gives one message; stop() still works."""
    import app.engine as E

    class FakeDevice(E.DeviceSource):
        def __init__(self):
            self.device = {"index": 0, "name": "fake mic", "rate": 16000}
            self.name = "fake mic"

    monkeypatch.setattr(E.Engine, "_open_input", lambda self, src: None)
    eng = Engine([Bypass(16000, 320, 80)], EngineConfig(rate=16000, block=160))
    eng.start(FakeDevice(), [])
    threading.Event().wait(2.6)
    msgs = eng.health()["messages"]
    eng.stop(timeout=2)
    assert any("stopped delivering audio" in m for m in msgs)
    assert not any(t.is_alive() for t in eng._threads)


@pytest.mark.audio
def test_virtual_microphone_carries_the_enhanced_stream(pulse, baseline_path, tmp_path):
    """`hushlab stream --output virtual-mic`: a recorder that picks the 'Hushlab' microphone
    gets what offline enhancement gives; the microphone is gone after the stream ends."""
    import os
    import sys

    from dsp.audio_io import load_audio

    src = "app/assets/demo_clean.flac"
    stream = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.cli",
            "stream",
            "--input",
            src,
            "--output",
            "virtual-mic",
            "--model",
            baseline_path,
            "--rate",
            "48000",
            "--seconds",
            "7",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert "virtual microphone 'Hushlab' is live" in stream.stdout.readline()
    rec = tmp_path / "rec.npy"
    code = (
        "import sys, numpy as np, sounddevice as sd; "
        "y = sd.rec(48000 * 4, samplerate=48000, channels=1, dtype='float32', device='pulse'); "
        "sd.wait(); np.save(sys.argv[1], y[:, 0])"
    )
    env = {**os.environ, "PULSE_SOURCE": "Hushlab"}
    subprocess.run([sys.executable, "-c", code, str(rec)], env=env, check=True, timeout=60)
    stream.wait(timeout=60)
    assert stream.returncode == 0
    y = np.load(rec)
    x, _ = load_audio(src, 48000)
    ref = enhance_array(load_processor(baseline_path), x, 48000)
    # each tenth of a second of the recording, found in the offline output (under load, an
    # output underrun can shift what follows it, so windows are aligned one by one; short ones
    # so that some fall between the underruns of a busy machine)
    from scipy.signal import correlate

    w = 4800
    energy = np.concatenate([[0.0], np.cumsum(ref.astype(np.float64) ** 2)])
    ref_norm = np.sqrt(np.maximum(energy[w:] - energy[:-w], 1e-12))  # of each window of ref
    corrs = []
    for start in range(48000, len(y) - w, w):
        seg = y[start : start + w]
        if np.std(seg) < 1e-3:
            continue
        c = correlate(ref, seg, mode="valid", method="fft") / ref_norm
        k = int(np.argmax(c))
        a = ref[k : k + w]
        corrs.append(float(np.dot(a, seg) / (np.linalg.norm(a) * np.linalg.norm(seg) + 1e-9)))
    # sample-exact copies (a window with an underrun in it, on a loaded machine, may not be)
    assert sum(c > 0.98 for c in corrs) >= 5, corrs
    sources = subprocess.run(["pactl", "list", "short", "sources"], capture_output=True, text=True)
    assert "Hushlab" not in sources.stdout
