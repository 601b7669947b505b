"""The Hushlab desktop app (PySide6 + pyqtgraph).

The GUI thread only draws and reacts: the engine's worker thread does the audio work, a QTimer
(30 fps) pulls the display buffers, and models load on a background thread with a busy indicator.
Keys: Space start/stop, A / B / Tab switch, F freeze, R record, 1-4 blind labels, Shift+1-4 vote.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from app.blind_panel import BlindPanel
from app.engine import (
    DeviceSource,
    Engine,
    EngineConfig,
    FileSink,
    FileSource,
    LatencyTooLong,
    SpeakerSink,
    list_devices,
)
from app.loader import Loader
from app.model_combo import ModelCombo, default_pair, processor_choices, teacher_label
from app.spectrogram import SpectrogramView, hz_to_mel, mel_to_hz  # noqa: F401
from models.processor import load_processor

log = logging.getLogger(__name__)
ASSETS = Path(__file__).resolve().parent / "assets"
DEMO_CLEAN = ASSETS / "demo_clean.flac"
DEMO_NOISE = ASSETS / "demo_noise.flac"
FILE_SOURCE = "File as microphone"
NO_OUTPUT = "None (display only)"
COLORMAPS = ("inferno", "viridis", "magma", "plasma", "turbo", "CET-L1")


class MainWindow(BlindPanel, QtWidgets.QMainWindow):
    def __init__(self, args=None):
        super().__init__()
        self.setWindowTitle("Hushlab")
        self.args = args
        self.settings = QtCore.QSettings("Hushlab", "Hushlab")
        self.engine: Engine | None = None
        self.loader = Loader(self)
        self._loading = False  # processors for a start are being loaded
        self._procs_cache: dict[str, object] = {}
        self.recording: FileSink | None = None
        self.blind = None
        self._last_error = ""
        self._last_error_t = 0.0
        self._build_ui()
        self._restore_settings()
        if args is not None:
            self._apply_args(args)
        self.timer = QtCore.QTimer(self)
        self.timer.timeout.connect(self._refresh)
        self.timer.start(33)

    # -- layout --------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        central = QtWidgets.QWidget()
        self.setCentralWidget(central)
        root = QtWidgets.QHBoxLayout(central)
        side = QtWidgets.QVBoxLayout()
        root.addLayout(side, 0)
        views = QtWidgets.QVBoxLayout()
        root.addLayout(views, 1)

        # source
        src = QtWidgets.QGroupBox("Source")
        sl = QtWidgets.QFormLayout(src)
        self.input_combo = QtWidgets.QComboBox()
        self.output_combo = QtWidgets.QComboBox()
        self.device_note = QtWidgets.QLabel("")
        self.device_note.setWordWrap(True)
        self.device_note.setStyleSheet("color: #b36b00")
        self._fill_devices()
        self.file_edit = QtWidgets.QLineEdit()
        self.file_edit.setPlaceholderText("speech file (or the built-in demo)")
        fb = QtWidgets.QPushButton("…")
        fb.clicked.connect(lambda: self._browse(self.file_edit))
        frow = QtWidgets.QHBoxLayout()
        frow.addWidget(self.file_edit)
        frow.addWidget(fb)
        self.noise_edit = QtWidgets.QLineEdit()
        self.noise_edit.setPlaceholderText("optional noise file")
        nb = QtWidgets.QPushButton("…")
        nb.clicked.connect(lambda: self._browse(self.noise_edit))
        nrow = QtWidgets.QHBoxLayout()
        nrow.addWidget(self.noise_edit)
        nrow.addWidget(nb)
        self.snr_slider = QtWidgets.QSlider(QtCore.Qt.Horizontal)
        self.snr_slider.setRange(-10, 20)
        self.snr_slider.setValue(0)
        self.snr_label = QtWidgets.QLabel("0 dB")
        self.snr_slider.valueChanged.connect(lambda v: self.snr_label.setText(f"{v} dB"))
        srow = QtWidgets.QHBoxLayout()
        srow.addWidget(self.snr_slider)
        srow.addWidget(self.snr_label)
        self.loop_check = QtWidgets.QCheckBox("loop")
        self.loop_check.setChecked(True)
        sl.addRow("input", self.input_combo)
        sl.addRow("file", frow)
        sl.addRow("noise", nrow)
        sl.addRow("SNR", srow)
        sl.addRow("", self.loop_check)
        sl.addRow("output", self.output_combo)
        sl.addRow(self.device_note)
        self.demo_button = QtWidgets.QPushButton("Play the built-in demo")
        self.demo_button.clicked.connect(self.start_demo)
        sl.addRow(self.demo_button)
        side.addWidget(src)

        # transport
        tr = QtWidgets.QHBoxLayout()
        self.start_button = QtWidgets.QPushButton("Start  [Space]")
        self.start_button.clicked.connect(self.toggle_running)
        self.record_button = QtWidgets.QPushButton("Record  [R]")
        self.record_button.setCheckable(True)
        self.record_button.toggled.connect(self.toggle_record)
        tr.addWidget(self.start_button)
        tr.addWidget(self.record_button)
        side.addLayout(tr)
        self.busy = QtWidgets.QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setVisible(False)
        self.busy.setFormat("loading models…")
        side.addWidget(self.busy)

        # A/B
        ab = QtWidgets.QGroupBox("A/B  [A, B, Tab]")
        al = QtWidgets.QGridLayout(ab)
        choices = processor_choices()
        self.combo_a = ModelCombo(choices)  # editable: a checkpoint path can be typed in
        self.combo_b = ModelCombo(choices)
        for c in (self.combo_a, self.combo_b):
            c.activated.connect(self._models_changed)
        first_a, first_b = default_pair()
        self.combo_a.set_spec(first_a)
        self.combo_b.set_spec(first_b)
        self.button_a = QtWidgets.QPushButton("A")
        self.button_b = QtWidgets.QPushButton("B")
        for i, b in enumerate((self.button_a, self.button_b)):
            b.setCheckable(True)
            b.clicked.connect(lambda _=False, i=i: self.select(i))
        self.button_a.setChecked(True)
        al.addWidget(self.button_a, 0, 0)
        al.addWidget(self.combo_a, 0, 1)
        al.addWidget(self.button_b, 1, 0)
        al.addWidget(self.combo_b, 1, 1)
        self.wet_slider = QtWidgets.QSlider(QtCore.Qt.Horizontal)
        self.wet_slider.setRange(0, 100)
        self.wet_slider.setValue(100)
        self.wet_slider.valueChanged.connect(self._wet_changed)
        al.addWidget(QtWidgets.QLabel("dry/wet"), 2, 0)
        al.addWidget(self.wet_slider, 2, 1)
        side.addWidget(ab)

        # model panel
        mp = QtWidgets.QGroupBox("Active model")
        ml = QtWidgets.QVBoxLayout(mp)
        self.model_info = QtWidgets.QLabel("-")
        self.model_info.setWordWrap(True)
        self.model_info.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        ml.addWidget(self.model_info)
        side.addWidget(mp)

        # blind test
        bt = QtWidgets.QGroupBox("Blind listening test")
        bl = QtWidgets.QVBoxLayout(bt)
        self.blind_mode = QtWidgets.QComboBox()
        self.blind_mode.addItems(["A/B preference", "ABX"])
        self.blind_button = QtWidgets.QPushButton("Start blind test with A and B")
        self.blind_button.setCheckable(True)
        self.blind_button.toggled.connect(self.toggle_blind)
        self.blind_label = QtWidgets.QLabel("")
        self.blind_label.setWordWrap(True)
        bl.addWidget(self.blind_mode)
        bl.addWidget(self.blind_button)
        bl.addWidget(self.blind_label)
        side.addWidget(bt)
        side.addStretch(1)

        # view controls
        vc = QtWidgets.QHBoxLayout()
        self.cmap_combo = QtWidgets.QComboBox()
        self.cmap_combo.addItems(COLORMAPS)
        self.cmap_combo.currentTextChanged.connect(self._cmap_changed)
        self.db_min = QtWidgets.QSpinBox()
        self.db_min.setRange(-160, 0)
        self.db_min.setValue(-90)
        self.db_max = QtWidgets.QSpinBox()
        self.db_max.setRange(-100, 40)
        self.db_max.setValue(-10)
        for w in (self.db_min, self.db_max):
            w.setSuffix(" dBFS")
            w.valueChanged.connect(self._levels_changed)
        self.scale_combo = QtWidgets.QComboBox()
        self.scale_combo.addItems(["linear", "mel"])
        self.scale_combo.currentTextChanged.connect(self._scale_changed)
        self.freeze_check = QtWidgets.QCheckBox("freeze [F]")
        self.diff_check = QtWidgets.QCheckBox("difference")
        self.diff_check.toggled.connect(lambda on: self.view_diff.setVisible(on))
        for w in (
            QtWidgets.QLabel("colours"),
            self.cmap_combo,
            self.scale_combo,
            QtWidgets.QLabel("range"),
            self.db_min,
            self.db_max,
            self.freeze_check,
            self.diff_check,
        ):
            vc.addWidget(w)
        vc.addStretch(1)
        self.readout = QtWidgets.QLabel("")
        vc.addWidget(self.readout)
        views.addLayout(vc)
        cols = 400
        self.view_in = SpectrogramView("input", cols, 257, 0.02, 8000)
        self.view_out = SpectrogramView("output", cols, 257, 0.02, 8000)
        self.view_diff = SpectrogramView("input - output (dB removed)", cols, 257, 0.02, 8000)
        self.view_diff.levels = (0.0, 30.0)
        self.view_diff.setVisible(False)
        for v in (self.view_in, self.view_out, self.view_diff):
            views.addWidget(v, 1)
            v.scene().sigMouseMoved.connect(self._mouse_moved)

        # health bar
        self.health_label = QtWidgets.QLabel("stopped")
        self.statusBar().addPermanentWidget(self.health_label, 1)

        # keys
        for key, fn in (
            ("Space", self.toggle_running),
            ("A", lambda: self.select(0)),
            ("B", lambda: self.select(1)),
            ("Tab", self.toggle_ab),
            ("F", lambda: self.freeze_check.toggle()),
            ("R", lambda: self.record_button.toggle()),
        ):
            sc = QtGui.QShortcut(QtGui.QKeySequence(key), self)
            sc.setContext(QtCore.Qt.ApplicationShortcut)
            sc.activated.connect(fn)
        for i in range(4):
            sc = QtGui.QShortcut(QtGui.QKeySequence(str(i + 1)), self)
            sc.activated.connect(lambda i=i: self.blind_listen(i))
            sc2 = QtGui.QShortcut(QtGui.QKeySequence(f"Shift+{i + 1}"), self)
            sc2.activated.connect(lambda i=i: self.blind_vote(i))
        for w in self.findChildren(QtWidgets.QWidget):  # keys reach the window, not a widget
            if isinstance(w, (QtWidgets.QPushButton, QtWidgets.QCheckBox, QtWidgets.QSlider)):
                w.setFocusPolicy(QtCore.Qt.NoFocus)

    def _fill_devices(self) -> None:
        devs = list_devices()
        self.devices = devs
        self.input_combo.clear()
        self.output_combo.clear()
        for d in devs:
            label = f"{d['name']} ({d['hostapi']}, {d['rate']} Hz)"
            if d["inputs"]:
                self.input_combo.addItem(label, d["index"])
            if d["outputs"]:
                self.output_combo.addItem(label, d["index"])
        self.input_combo.addItem(FILE_SOURCE, None)
        self.output_combo.addItem(NO_OUTPUT, None)
        if not any(d["inputs"] for d in devs):
            self.input_combo.setCurrentText(FILE_SOURCE)
            self.output_combo.setCurrentText(NO_OUTPUT)
            self.device_note.setText(
                "No audio devices found (no sound card or sound server). "
                "Use a file as the microphone, or play the built-in demo."
            )

    # -- settings --------------------------------------------------------------------------------
    def _restore_settings(self) -> None:
        s = self.settings
        for key, combo in (
            ("input", self.input_combo),
            ("output", self.output_combo),
            ("colormap", self.cmap_combo),
            ("scale", self.scale_combo),
        ):
            v = s.value(key)
            if v and combo.findText(v) >= 0:
                combo.setCurrentText(v)
        for key, combo in (("model_a", self.combo_a), ("model_b", self.combo_b)):
            v = s.value(key)
            if v and combo.findData(v) >= 0:
                combo.set_spec(v)
        for key, edit in (("file", self.file_edit), ("noise", self.noise_edit)):
            v = s.value(key)
            if v:
                edit.setText(v)
        self.snr_slider.setValue(int(s.value("snr", 0)))
        self.db_min.setValue(int(s.value("db_min", -90)))
        self.db_max.setValue(int(s.value("db_max", -10)))
        geo = s.value("geometry")
        if geo is not None:
            self.restoreGeometry(geo)

    def _save_settings(self) -> None:
        s = self.settings
        s.setValue("input", self.input_combo.currentText())
        s.setValue("output", self.output_combo.currentText())
        s.setValue("model_a", self.combo_a.spec())
        s.setValue("model_b", self.combo_b.spec())
        s.setValue("colormap", self.cmap_combo.currentText())
        s.setValue("scale", self.scale_combo.currentText())
        s.setValue("file", self.file_edit.text())
        s.setValue("noise", self.noise_edit.text())
        s.setValue("snr", self.snr_slider.value())
        s.setValue("db_min", self.db_min.value())
        s.setValue("db_max", self.db_max.value())
        s.setValue("geometry", self.saveGeometry())

    def _apply_args(self, a) -> None:
        if getattr(a, "source", ""):
            self.input_combo.setCurrentText(FILE_SOURCE)
            self.file_edit.setText(a.source)
        if getattr(a, "noise", ""):
            self.noise_edit.setText(a.noise)
        if getattr(a, "snr", None) is not None:
            self.snr_slider.setValue(int(round(a.snr)))
        if getattr(a, "model_a", ""):
            self.combo_a.set_spec(a.model_a)
        if getattr(a, "model_b", ""):
            self.combo_b.set_spec(a.model_b)
        if getattr(a, "no_output", False):
            self.output_combo.setCurrentText(NO_OUTPUT)

    # -- actions ---------------------------------------------------------------------------------
    def _browse(self, edit: QtWidgets.QLineEdit) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Audio file", edit.text(), "Audio (*.wav *.flac *.ogg *.mp3)"
        )
        if path:
            edit.setText(path)

    def start_demo(self) -> None:
        """The shipped clean clip mixed with the shipped noise at the slider's SNR."""
        self.input_combo.setCurrentText(FILE_SOURCE)
        self.file_edit.setText(str(DEMO_CLEAN))
        self.noise_edit.setText(str(DEMO_NOISE))
        self.loop_check.setChecked(True)
        if self.engine is not None:
            self.stop()
        self.start()

    def toggle_running(self) -> None:
        if self.engine is not None or self._loading:
            self.stop()
        else:
            self.start()

    def _specs(self) -> list[str]:
        if self.blind is not None:
            return list(self.blind.names)
        return [self.combo_a.spec(), self.combo_b.spec()]

    def start(self) -> None:
        if self._loading:
            return
        specs = self._specs()
        self.busy.setVisible(True)
        self.start_button.setEnabled(False)
        self._loading = True
        self.loader.submit(lambda: self._load_processors(specs), self._finish_start)

    def _load_processors(self, specs):
        out = []
        for s in specs:
            if s not in self._procs_cache:
                like = out[0] if out and s == "bypass" else None
                self._procs_cache[s] = load_processor(s, bypass_like=like)
            out.append(self._procs_cache[s])
        return out

    def _finish_start(self, procs, error) -> None:
        if not self._loading:
            return
        self._loading = False
        self.busy.setVisible(False)
        self.start_button.setEnabled(True)
        try:
            if error is not None:
                raise error
            self._start_engine(procs)
        except Exception as exc:  # shown to the user; the app keeps running
            self.error(f"could not start: {exc}")
            self.engine = None
            return
        self.start_button.setText("Stop  [Space]")

    def _start_engine(self, procs) -> None:
        out_idx = self.output_combo.currentData()
        in_idx = self.input_combo.currentData()
        rate = 48000
        if in_idx is not None:
            rate = next(d["rate"] for d in self.devices if d["index"] == in_idx)
        elif out_idx is not None:
            rate = next(d["rate"] for d in self.devices if d["index"] == out_idx)
        eng = Engine(procs, EngineConfig(rate=rate, block=rate // 100, realtime=True))
        eng.set_wet(self.wet_slider.value() / 100)
        if in_idx is not None:
            source = DeviceSource(str(in_idx))
        else:
            path = self.file_edit.text().strip() or str(DEMO_CLEAN)
            noise = self.noise_edit.text().strip() or None
            if not self.file_edit.text().strip() and noise is None:
                noise = str(DEMO_NOISE)
            source = FileSource(
                path,
                rate,
                noise=noise,
                snr=float(self.snr_slider.value()),
                loop=self.loop_check.isChecked(),
                level_dbfs=-26.0,
            )
        sinks = [SpeakerSink(str(out_idx))] if out_idx is not None else []
        eng.start(source, sinks)
        self.engine = eng
        self.select(0 if self.blind is None else self.engine.active)
        self._show_model_info()

    def stop(self) -> None:
        if self.recording is not None:
            self.record_button.setChecked(False)
        if self.engine is not None:
            self.engine.stop()
            self.engine = None
        self.start_button.setText("Start  [Space]")
        self.health_label.setText("stopped")

    def select(self, i: int) -> None:
        if self.blind is not None:
            return  # in a blind test the labels switch, not A/B
        self.button_a.setChecked(i == 0)
        self.button_b.setChecked(i == 1)
        active = "QPushButton:checked { background: #2e7d32; color: white; font-weight: bold; }"
        self.button_a.setStyleSheet(active)
        self.button_b.setStyleSheet(active)
        if self.engine is not None:
            self.engine.request_active(i)
            self._show_model_info(i)

    def toggle_ab(self) -> None:
        cur = (
            self.engine._requested
            if self.engine is not None
            else (0 if self.button_a.isChecked() else 1)
        )
        self.select(1 - cur if cur in (0, 1) else 0)

    def _models_changed(self, *_):
        if self.engine is None or self.blind is not None:
            return
        specs = self._specs()
        self.busy.setVisible(True)

        def done(procs, error):
            self.busy.setVisible(False)
            if self.engine is None:  # stopped meanwhile
                return
            try:
                if error is not None:
                    raise error
                for i, p in enumerate(procs):
                    if self.engine.procs[i] is not p:
                        self.engine.replace_processor(i, p)
            except LatencyTooLong:  # a longer latency needs a restart: do it
                self.stop()
                self.start()
            except Exception as exc:  # shown to the user; the audio keeps playing
                self.error(f"could not load model: {exc}")
            self._show_model_info()

        self.loader.submit(lambda: self._load_processors(specs), done)

    def _wet_changed(self, v: int) -> None:
        if self.engine is not None:
            self.engine.set_wet(v / 100)

    def _cmap_changed(self, name: str) -> None:
        for v in (self.view_in, self.view_out, self.view_diff):
            v.set_colormap(name)

    def _scale_changed(self, scale: str) -> None:
        for v in (self.view_in, self.view_out, self.view_diff):
            v.set_scale(scale)

    def _levels_changed(self, *_):
        lv = (float(self.db_min.value()), float(self.db_max.value()))
        self.view_in.levels = self.view_out.levels = lv

    def toggle_record(self, on: bool) -> None:
        if on:
            if self.engine is None:
                self.record_button.setChecked(False)
                self.error("start the audio before recording")
                return
            stamp = time.strftime("%Y%m%d-%H%M%S")
            folder = Path(self.settings.value("record_dir", str(Path.home() / "hushlab")))
            folder.mkdir(parents=True, exist_ok=True)
            sink = FileSink(
                folder / f"{stamp}-output.wav",
                self.engine.cfg.rate,
                record_input=str(folder / f"{stamp}-input.wav"),
            )
            self.engine.add_sink(sink)
            self.recording = sink
            self.statusBar().showMessage(f"recording to {folder}", 5000)
        elif self.recording is not None:
            if self.engine is not None:
                self.engine.remove_sink(self.recording)
            self.recording.close()  # writes what is queued; later writes are dropped
            self.statusBar().showMessage(f"saved {self.recording.path}", 5000)
            self.recording = None

    # -- drawing ---------------------------------------------------------------------------
    def _refresh(self) -> None:
        eng = self.engine
        if eng is None:
            return
        if not self.freeze_check.isChecked():
            a = eng.spec_in.view()
            b = eng.spec_out.view()
            self.view_in.show_columns(a)
            self.view_out.show_columns(b)
            if self.view_diff.isVisible():
                self.view_diff.show_columns(np.clip(a - b, 0, None))
        h = eng.health()
        name = "hidden" if self.blind is not None else h["active"]
        self.health_label.setText(
            f"{name} | hop {h['ms_per_hop_p50']:.2f} ms (p99 {h['ms_per_hop_p99']:.2f}) | "
            f"RTF {h['rtf']:.3f} | latency {h['latency_ms']:.0f} ms | xruns "
            f"{h['input_xruns'] + h['output_xruns'] + h['underruns']} | in "
            f"{100 * h['input_fill']:.0f}% out {100 * h['output_fill']:.0f}% | "
            f"in {eng.level_in_db:.0f} dBFS out {eng.level_out_db:.0f} dBFS"
        )
        if h["messages"]:
            self.error(h["messages"][-1])
        if eng.finished.is_set() and eng.running:
            self.stop()

    def _mouse_moved(self, pos) -> None:
        for v in (self.view_in, self.view_out, self.view_diff):
            if v.isVisible():
                r = v.readout(pos)
                if r:
                    self.readout.setText(f"{v.plotItem.titleLabel.text}: {r}")
                    return

    def _show_model_info(self, i: int | None = None) -> None:
        if self.engine is None or self.blind is not None:
            return
        i = self.engine._requested if i is None else i
        p = self.engine.procs[i]
        d = p.describe()
        lines = [
            f"<b>{d['name']}</b> ({d['backend']})",
            f"{d['params'] / 1e6:.2f} M parameters, {d['megabytes']:.1f} MB",
            f"latency {d['latency_ms']:.0f} ms at {d['sample_rate']} Hz",
        ]
        meta = getattr(p, "meta", {}) or {}
        m = meta.get("metrics") or {}
        if m:
            lines.append(
                "validation: "
                + ", ".join(
                    f"{k.replace('valid_', '').replace('_', '-').upper()} {v:.2f}"
                    for k, v in m.items()
                    if k in ("valid_pesq", "valid_si_sdr") and isinstance(v, float) and v == v
                )  # (v == v: a metric not measured is NaN and is left out)
            )
        data = meta.get("data") or {}
        if data.get("corpus_summary"):
            cs = data["corpus_summary"]
            lines.append(
                f"trained on {cs.get('total_speech_hours', 0):.1f} h speech, "
                f"{cs.get('total_noise_hours', 0):.1f} h noise"
            )
        teacher = teacher_label(d["name"]).strip(" ·")
        if teacher:
            lines.append(teacher)
        card = (meta.get("extra") or {}).get("card")
        if card:
            lines.append(card)
        self.model_info.setText("<br>".join(lines))

    def error(self, text: str) -> None:
        """One status message per distinct error, at most every 3 s."""
        now = time.monotonic()
        if text == self._last_error and now - self._last_error_t < 30:
            return
        if now - self._last_error_t < 3:
            return
        self._last_error, self._last_error_t = text, now
        self.statusBar().showMessage(text, 8000)
        log.warning(text)

    def closeEvent(self, ev) -> None:  # noqa: N802 (Qt name)
        self._save_settings()
        self.stop()
        self.loader.shutdown()
        super().closeEvent(ev)
