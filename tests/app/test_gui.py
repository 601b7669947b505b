import csv
import json
import threading
import time

import numpy as np
import pytest
import pytestqt  # noqa: E402,F401  (installed by the set-up: a missing one is an error)
import soundfile as sf
from PySide6 import QtCore  # noqa: E402

from app.gui import MainWindow  # noqa: E402


class Args:
    def __init__(self, **kw):
        self.source = kw.get("source", "")
        self.noise = kw.get("noise", "")
        self.snr = kw.get("snr")
        self.model_a = kw.get("model_a", "")
        self.model_b = kw.get("model_b", "bypass")
        self.no_output = True


@pytest.fixture
def tone_file(tmp_path):
    sr = 16000
    t = np.arange(sr * 3) / sr
    path = tmp_path / "tone.wav"
    sf.write(path, (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), sr)
    return path


@pytest.fixture
def window(qtbot, tmp_path, baseline_path, tone_file, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    QtCore.QSettings.setDefaultFormat(QtCore.QSettings.IniFormat)
    QtCore.QSettings.setPath(
        QtCore.QSettings.IniFormat, QtCore.QSettings.UserScope, str(tmp_path / "cfg")
    )
    win = MainWindow(Args(source=str(tone_file), model_a=baseline_path))
    win.settings.setValue("record_dir", str(tmp_path / "rec"))
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    win.activateWindow()
    yield win
    win.stop()


def _wait_running(qtbot, win):
    win.start()
    qtbot.waitUntil(
        lambda: win.engine is not None and win.engine.spec_in.written > 30, timeout=30000
    )


def test_spectrogram_shows_the_tone_at_1khz(qtbot, window):
    _wait_running(qtbot, window)
    first = window.view_in.data.copy()
    qtbot.wait(500)
    cols = window.view_in.data
    assert not np.array_equal(first, cols)  # the image moves
    recent = cols[-20:]
    row = int(np.median(np.argmax(recent, axis=1)))
    assert abs(row * 8000 / 256 - 1000) < 40
    assert recent[:, row].mean() > recent[:, 100:].mean() + 40
    window.scale_combo.setCurrentText("mel")  # the mel view puts the tone at 1 kHz too
    qtbot.wait(100)
    img = window.view_in.img.image[-20:]
    mel_row = int(np.median(np.argmax(img, axis=1)))
    assert abs(window.view_in._mel_hz[mel_row] - 1000) < 60


def test_keys_switch_the_active_processor(qtbot, window):
    _wait_running(qtbot, window)
    eng = window.engine
    qtbot.keyClick(window, QtCore.Qt.Key_B)
    qtbot.waitUntil(lambda: eng.active == 1, timeout=3000)
    qtbot.keyClick(window, QtCore.Qt.Key_A)
    qtbot.waitUntil(lambda: eng.active == 0, timeout=3000)
    qtbot.keyClick(window, QtCore.Qt.Key_Tab)
    qtbot.waitUntil(lambda: eng.active == 1, timeout=3000)
    assert window.button_b.isChecked() and not window.button_a.isChecked()


def test_blind_test_writes_results_with_hidden_assignment(qtbot, window, tmp_path):
    window.blind_button.setChecked(True)
    qtbot.waitUntil(lambda: window.engine is not None, timeout=30000)
    for k in range(4):
        qtbot.keyClick(window, QtCore.Qt.Key_2)
        qtbot.keyClick(window, QtCore.Qt.Key_1)
        window.blind_vote(k % 2)
    files = list((tmp_path / "rec").glob("blind-*.csv"))
    assert len(files) == 1
    rows = list(csv.DictReader(open(files[0])))
    assert len(rows) == 4
    for r in rows:
        names = set(json.loads(r["assignment"]).values())
        assert names == {window.blind.names[0], window.blind.names[1]}
        assert r["chosen_processor"] in names
        assert r["loudness_matched"] == "0"  # the condition heard, written with each vote
    window.blind_button.setChecked(False)
    assert "4 trials" in window.blind_label.text()


def test_start_stop_cycles_leave_no_threads(qtbot, window):
    before = {t.ident for t in threading.enumerate()}
    for _ in range(3):
        _wait_running(qtbot, window)
        window.stop()
    time.sleep(0.2)
    left = [
        t
        for t in threading.enumerate()
        if t.ident not in before and t.is_alive() and t.name.startswith("hushlab")
    ]
    assert not left


def test_model_lists_show_teachers_and_the_default_pair(qtbot, tmp_path, monkeypatch):
    import models.checkpoint as ck
    from app import model_combo as mc
    from models.gcrn import GCRN, GCRNConfig

    shipped = tmp_path / "shipped"
    small = GCRNConfig(channels=(4, 4, 8, 8, 16))
    ck.save_checkpoint(shipped / "baseline" / "model.safetensors", GCRN(small))
    record = json.dumps({"teacher": "teacher", "layer": 4, "causal": False, "digest": "ab" * 8})
    kd = GCRN(GCRNConfig(channels=(4, 4, 8, 8, 16), ssl_dim=8, distill_head=True))
    ck.save_checkpoint(shipped / "kd" / "model.safetensors", kd, teacher=record)
    monkeypatch.setattr(ck, "SHIPPED_DIR", shipped)
    monkeypatch.setattr(mc, "SHIPPED_DIR", shipped)
    assert mc.default_pair() == ("baseline", "bypass")  # no choice recorded yet
    (shipped / "default_ab.json").write_text(json.dumps({"a": "baseline", "b": "kd"}))
    assert mc.default_pair() == ("baseline", "kd")
    combo = mc.ModelCombo(["baseline", "kd", "bypass"])
    qtbot.addWidget(combo)
    labels = [combo.itemText(i) for i in range(combo.count())]
    assert labels[0] == "baseline" and labels[1] == "kd  ·  teacher: teacher, layer 4"
    combo.set_spec("kd")
    assert combo.spec() == "kd" and combo.currentText().startswith("kd  ·")
    combo.set_spec("/some/run/best.safetensors")  # a typed-in checkpoint path
    assert combo.spec() == "/some/run/best.safetensors"


def test_a_against_b_views(qtbot, window):
    _wait_running(qtbot, window)
    eng = window.engine
    qtbot.keyClick(window, QtCore.Qt.Key_V)  # input/output -> A/B
    assert window.view_combo.currentText() == "A / B"
    assert window.view_in.getPlotItem().titleLabel.text.startswith("A: ")
    qtbot.waitUntil(lambda: eng.ab_display and eng.spec_b.written > 10, timeout=10000)
    window.diff_check.setChecked(True)
    qtbot.wait(300)
    # B (bypass) carries the source's steady 1 kHz tone; A (the model) removes it as noise
    row = round(1000 * 256 / 8000)
    assert eng.spec_b.view()[-5:, row].mean() > eng.spec_a.view()[-5:, row].mean() + 20
    assert window.view_diff.data[-5:, row].mean() > 20  # |A - B| shows where they differ
    qtbot.keyClick(window, QtCore.Qt.Key_V)
    qtbot.waitUntil(lambda: not eng.ab_display, timeout=3000)
    assert window.view_in.getPlotItem().titleLabel.text == "input"


def test_a_b_titles_follow_the_chosen_models(qtbot, window):
    window.view_combo.setCurrentIndex(1)  # A / B before starting
    window.combo_b.set_spec("kd")  # as --model-b does: no user activation
    _wait_running(qtbot, window)
    assert window.view_out.getPlotItem().titleLabel.text == "B: kd"
    window.combo_b.set_spec("bypass")
    window.combo_b.activated.emit(window.combo_b.currentIndex())  # the user picks another
    assert window.view_out.getPlotItem().titleLabel.text == "B: bypass"


def test_b_follows_a_training_run(qtbot, window, tmp_path):
    import torch

    from models.checkpoint import save_checkpoint
    from models.gcrn import GCRN, GCRNConfig

    run = tmp_path / "run"
    run.mkdir()
    cfg = GCRNConfig(channels=(4, 4, 8, 8, 16))
    _wait_running(qtbot, window)
    window.follow_edit.setText(str(run))
    window.follow_check.setChecked(True)
    assert "waiting for" in window.follow_label.text()
    torch.manual_seed(1)
    save_checkpoint(run / "best.safetensors", GCRN(cfg), metrics={"step": 250})
    window.check_run()
    eng = window.engine
    qtbot.waitUntil(lambda: "step 250" in window.follow_label.text(), timeout=20000)
    step = lambda: (getattr(eng.procs[1], "meta", None) or {}).get("metrics", {}).get("step")  # noqa: E731
    qtbot.waitUntil(lambda: step() == 250, timeout=5000)
    first = eng.procs[1]
    torch.manual_seed(2)  # the run writes a better checkpoint
    save_checkpoint(run / "best.safetensors", GCRN(cfg), metrics={"step": 500})
    window.check_run()
    qtbot.waitUntil(lambda: eng.procs[1] is not first, timeout=20000)
    assert step() == 500 and eng.running
    assert not any("engine stopped" in m for m in eng.health()["messages"])


@pytest.mark.audio
def test_virtual_microphone_toggle(qtbot, window, pulse, monkeypatch):
    import subprocess

    monkeypatch.delenv("XDG_CONFIG_HOME")  # the sound server's cookie lives in the real one
    window.vmic_check.setChecked(True)
    _wait_running(qtbot, window)
    sources = subprocess.run(["pactl", "list", "short", "sources"], capture_output=True, text=True)
    assert "Hushlab" in sources.stdout
    window.stop()
    sources = subprocess.run(["pactl", "list", "short", "sources"], capture_output=True, text=True)
    assert "Hushlab" not in sources.stdout


def test_live_reference_metrics(qtbot, tmp_path, baseline_path, monkeypatch):
    """With a noise file mixed in, the clean reference is known: the app scores input, A and B
    over the last seconds, and the model beats the input."""
    from tests.conftest import speechlike

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    clean, noise = tmp_path / "clean.wav", tmp_path / "noise.wav"
    sf.write(clean, speechlike(6.0, 16000, seed=3), 16000)
    sf.write(noise, np.random.default_rng(0).standard_normal(16000 * 6).astype(np.float32), 16000)
    win = MainWindow(Args(source=str(clean), noise=str(noise), snr=0, model_a=baseline_path))
    qtbot.addWidget(win)
    win.show()
    win.start()
    qtbot.waitUntil(lambda: "SI-SDR" in win.live_label.text(), timeout=30000)
    text = win.live_label.text()
    assert "input: SI-SDR" in text and "A - B" in text
    tap = win.engine.ref_tap
    from app.live_metrics import scores

    s = scores(tap.snapshot(), win.engine.cfg.rate)
    assert abs(s["input"]["si_sdr"]) < 1.0  # a 0 dB mixture, aligned with its reference
    assert s["B"]["si_sdr"] == pytest.approx(s["input"]["si_sdr"], abs=0.5)  # B is bypass
    win.stop()


def test_mushra_run_with_hidden_reference_and_anchor(qtbot, tmp_path, baseline_path, monkeypatch):
    from tests.conftest import speechlike

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    clean, noise = tmp_path / "clean.wav", tmp_path / "noise.wav"
    sf.write(clean, speechlike(4.0, 16000, seed=5), 16000)
    sf.write(noise, 0.3 * np.random.default_rng(1).standard_normal(64000).astype(np.float32), 16000)
    win = MainWindow(Args(source=str(clean), noise=str(noise), snr=0, model_a=baseline_path))
    win.settings.setValue("record_dir", str(tmp_path / "rec"))
    qtbot.addWidget(win)
    win.show()
    win.mushra_button.setChecked(True)
    qtbot.waitUntil(lambda: win.engine is not None and win.engine.running, timeout=30000)
    eng = win.engine
    assert [p.name for p in eng.procs][2:] == ["reference", "bypass"]
    m = win.mushra
    for _ in range(2):
        for k in range(4):  # listen to each hidden stimulus and rate it
            win.label_key(k)
            qtbot.waitUntil(lambda k=k: eng.active == m.stimuli.index(m.stimulus_for(str(k + 1))))
            name = m.stimulus_for(str(k + 1))
            target = {"reference": 100, "bypass": 10}.get(name, 60)
            win.mushra_sliders[k].setValue(target)
        win.mushra_submit()
    win.mushra_button.setChecked(False)
    rows = list(csv.DictReader(open(next((tmp_path / "rec").glob("mushra-*.csv")))))
    assert len(rows) == 8 and {r["stimulus"] for r in rows} >= {"reference", "anchor"}
    assert "reference: 100" in win.mushra_label.text()
    # the hidden reference really plays the clean speech, time-aligned with the others
    ref_slot = eng.procs[2]
    assert ref_slot.latency_samples == 0 and ref_slot.sample_rate == eng.cfg.rate
    win.stop()


def test_a_model_that_loads_after_the_window_closed_never_starts(qtbot, window, monkeypatch):
    """Closing while the models load: the load's late result must not start an engine that
    nobody stops (its threads would run native code while the process exits, which aborts)."""
    release = threading.Event()
    load = window._load_processors

    def slow_load(specs):
        release.wait(10)
        return load(specs)

    monkeypatch.setattr(window, "_load_processors", slow_load)
    before = {t.ident for t in threading.enumerate()}
    window.start()
    window.close()
    release.set()
    qtbot.wait(1500)  # the loaded result arrives through the event loop
    assert window.engine is None
    left = [
        t
        for t in threading.enumerate()
        if t.ident not in before and t.is_alive() and t.name.startswith("hushlab")
    ]
    assert not left
    window.start()  # a closed window starts nothing either
    qtbot.wait(500)
    assert window.engine is None and not window._loading


def test_stop_while_loading_calls_the_start_off(qtbot, window, monkeypatch):
    """Space while the models load cancels that start; a start after it runs the models
    chosen then, not the cancelled start's."""
    release = threading.Event()
    load = window._load_processors
    seen = []

    def slow_load(specs):
        seen.append(list(specs))
        release.wait(10)
        return load(specs)

    monkeypatch.setattr(window, "_load_processors", slow_load)
    window.start()
    window.toggle_running()  # stop: called off
    assert not window._loading and window.start_button.isEnabled()
    window.combo_b.setCurrentText(window.combo_a.spec())  # B: the baseline too, this time
    window.start()
    release.set()
    qtbot.waitUntil(lambda: window.engine is not None, timeout=30000)
    qtbot.wait(300)
    assert len(seen) == 2 and not window._loading
    assert seen[0][1] == "bypass" and seen[1][1] == seen[1][0]
    assert [p.name for p in window.engine.procs] == [window._procs_cache[s].name for s in seen[1]]


def test_views_are_black_before_any_audio(qtbot, window):
    """Nothing played yet: every view is at the floor of its colour range (black), not at its
    top (0 dBFS would draw as the loudest colour)."""
    for v in (window.view_in, window.view_out):
        assert v.data.max() <= v.levels[0]


def test_a_missing_or_corrupt_source_file_is_said_before_any_model_loads(qtbot, window, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not audio")
    for path, why in ((tmp_path / "gone.wav", "no such file"), (bad, "cannot read audio")):
        window._last_error_t = 0.0  # (one status message every 3 s at most)
        window.file_edit.setText(str(path))
        window.start()
        assert not window._loading and window.engine is None
        assert why in window.statusBar().currentMessage()


def test_match_loudness_key_reaches_the_running_engine_and_persists(qtbot, window):
    _wait_running(qtbot, window)
    eng = window.engine
    assert not window.match_check.isChecked() and not eng.level_match
    qtbot.keyClick(window, QtCore.Qt.Key_L)
    assert window.match_check.isChecked() and eng.level_match
    qtbot.waitUntil(lambda: "matched A " in window.health_label.text(), timeout=5000)
    window.stop()
    _wait_running(qtbot, window)  # a new engine starts matched
    assert window.engine is not eng and window.engine.level_match
    window._save_settings()
    window.match_check.setChecked(False)
    window._restore_settings()
    assert window.match_check.isChecked()


def test_command_line_wins_over_a_remembered_noise_file(qtbot, tmp_path, tone_file, monkeypatch):
    """After the demo played once (its noise file remembered), `--source F` without `--noise`
    plays F as it is, and `--noise ""` clears the remembered one."""
    QtCore.QSettings.setDefaultFormat(QtCore.QSettings.IniFormat)
    QtCore.QSettings.setPath(
        QtCore.QSettings.IniFormat, QtCore.QSettings.UserScope, str(tmp_path / "cfg")
    )
    first = MainWindow(Args(source=str(tone_file), noise=str(tone_file)))
    qtbot.addWidget(first)
    assert first.noise_edit.text() == str(tone_file)
    first._save_settings()
    args = Args(source=str(tone_file))
    args.noise = None  # not given
    win = MainWindow(args)
    qtbot.addWidget(win)
    assert win.noise_edit.text() == "" and win.file_edit.text() == str(tone_file)
    win._save_settings()
    kept = Args()
    kept.noise = None
    again = MainWindow(kept)
    qtbot.addWidget(again)
    assert again.noise_edit.text() == ""  # what was saved last: none
    first._save_settings()
    cleared = Args()
    cleared.noise = ""
    last = MainWindow(cleared)
    qtbot.addWidget(last)
    assert last.noise_edit.text() == ""


def test_every_distinct_error_is_logged_and_shown_repeats_are_not(qtbot, window, caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="app.gui"):
        window.error("first thing failed")
        window.error("second thing failed")  # within 3 s of the first: joins it
        window.error("second thing failed")  # the same again: neither logged nor shown twice
    logged = [r.getMessage() for r in caplog.records if r.name == "app.gui"]
    assert logged == ["first thing failed", "second thing failed"]
    shown = window.statusBar().currentMessage()
    assert "first thing failed" in shown and shown.count("second thing failed") == 1


def test_a_recording_that_failed_is_not_reported_as_saved(qtbot, window, tmp_path):
    from app.endpoints import FileSink

    sink = FileSink(tmp_path / "out.wav", 16000)

    def full_disk(data):
        raise OSError(28, "No space left on device")

    sink._f.write = full_disk  # the writer thread meets a full disk
    sink.write(np.zeros(320, np.float32))
    window.recording = sink
    window.toggle_record(False)
    shown = window.statusBar().currentMessage()
    assert "recording failed" in shown and "No space left" in shown and "saved" not in shown
    ok = FileSink(tmp_path / "fine.wav", 16000)
    ok.write(np.zeros(320, np.float32))
    window.recording = ok
    window.toggle_record(False)
    assert window.statusBar().currentMessage() == f"saved {ok.path}"
