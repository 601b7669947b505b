"""The main window's widgets, their layout, keyboard shortcuts and persistent settings (QSettings:
devices, models, files and view options survive a restart)."""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from app.engine import list_devices
from app.model_combo import ModelCombo, default_pair, processor_choices
from app.spectrogram import SpectrogramView

FILE_SOURCE = "File as microphone"
NO_OUTPUT = "None (display only)"
COLORMAPS = ("inferno", "viridis", "magma", "plasma", "turbo", "CET-L1")
VIEW_MODES = ("input / output", "A / B")


class WindowLayout:
    """Mixed into :class:`app.gui.MainWindow`: builds the widgets and keeps the settings."""

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
        self.vmic_check = QtWidgets.QCheckBox("also as the virtual microphone 'Hushlab'")
        self.vmic_check.setToolTip(
            "Other applications can pick 'Hushlab' as their microphone and hear the active model"
            " (PulseAudio or PipeWire; removed when the audio stops)"
        )
        sl.addRow("", self.vmic_check)
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
        self.match_check = QtWidgets.QCheckBox("match loudness  [L]")
        self.match_check.setToolTip(
            "Play A, B, the dry signal and every test stimulus at one active speech level"
            " (-26 dBFS): a louder stimulus would otherwise be preferred for its level."
            " Metrics and recordings of the input are not affected."
        )
        self.match_check.toggled.connect(self._match_changed)
        al.addWidget(self.match_check, 3, 1)
        side.addWidget(ab)

        # model panel
        mp = QtWidgets.QGroupBox("Active model")
        ml = QtWidgets.QVBoxLayout(mp)
        self.model_info = QtWidgets.QLabel("-")
        self.model_info.setWordWrap(True)
        self.model_info.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        ml.addWidget(self.model_info)
        self.live_label = QtWidgets.QLabel("")  # live reference metrics (clean speech known)
        self.live_label.setWordWrap(True)
        ml.addWidget(self.live_label)
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
        self._build_mushra(side)
        self._build_follow(side)
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
        self.view_combo = QtWidgets.QComboBox()  # what the two views show  [V]
        self.view_combo.addItems(VIEW_MODES)
        self.view_combo.currentTextChanged.connect(self._view_mode_changed)
        for w in (
            self.view_combo,
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
            ("V", self.cycle_view),
            ("L", lambda: self.match_check.toggle()),
        ):
            sc = QtGui.QShortcut(QtGui.QKeySequence(key), self)
            sc.setContext(QtCore.Qt.ApplicationShortcut)
            sc.activated.connect(fn)
        for key, fn in (
            ("0", self.mushra_open_reference),
            ("Up", lambda: self.mushra_nudge(5)),
            ("Down", lambda: self.mushra_nudge(-5)),
            ("Return", self.mushra_submit),
            ("Enter", self.mushra_submit),
        ):
            sc = QtGui.QShortcut(QtGui.QKeySequence(key), self)
            sc.activated.connect(fn)
        for i in range(4):
            sc = QtGui.QShortcut(QtGui.QKeySequence(str(i + 1)), self)
            sc.activated.connect(lambda i=i: self.label_key(i))
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
            ("view", self.view_combo),
            ("scale", self.scale_combo),
        ):
            v = s.value(key)
            if v and combo.findText(v) >= 0:
                combo.setCurrentText(v)
        for key, combo in (("model_a", self.combo_a), ("model_b", self.combo_b)):
            v = s.value(key)
            if v and combo.findData(v) >= 0:
                combo.set_spec(v)
        for key, edit in (
            ("file", self.file_edit),
            ("noise", self.noise_edit),
            ("follow_run", self.follow_edit),
        ):
            v = s.value(key)
            if v:
                edit.setText(v)
        self.snr_slider.setValue(int(s.value("snr", 0)))
        self.match_check.setChecked(str(s.value("match_loudness", "false")).lower() == "true")
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
        s.setValue("view", self.view_combo.currentText())
        s.setValue("scale", self.scale_combo.currentText())
        s.setValue("file", self.file_edit.text())
        s.setValue("noise", self.noise_edit.text())
        s.setValue("follow_run", self.follow_edit.text())
        s.setValue("snr", self.snr_slider.value())
        s.setValue("match_loudness", self.match_check.isChecked())
        s.setValue("db_min", self.db_min.value())
        s.setValue("db_max", self.db_max.value())
        s.setValue("geometry", self.saveGeometry())

    def _apply_args(self, a) -> None:
        # the command line wins over persisted settings: a source given without --noise plays
        # as it is (a noise file remembered from the demo would be mixed into it, and the live
        # metrics would score a noisy file as the clean reference); --noise "" clears it
        noise = getattr(a, "noise", None)
        if getattr(a, "source", ""):
            self.input_combo.setCurrentText(FILE_SOURCE)
            self.file_edit.setText(a.source)
            self.noise_edit.setText(noise or "")
        elif noise is not None:
            self.noise_edit.setText(noise)
        if getattr(a, "snr", None) is not None:
            self.snr_slider.setValue(int(round(a.snr)))
        if getattr(a, "model_a", ""):
            self.combo_a.set_spec(a.model_a)
        if getattr(a, "model_b", ""):
            self.combo_b.set_spec(a.model_b)
        if getattr(a, "view", ""):
            self.view_combo.setCurrentIndex(1 if a.view == "ab" else 0)
        if getattr(a, "no_output", False):
            self.output_combo.setCurrentText(NO_OUTPUT)
