"""The MUSHRA panel of the main window: the models of A and B, a hidden clean reference and
the noisy anchor, rated on 0-100 sliders while the audio loops, all time-aligned. Keys: 1-4
listen to a hidden stimulus, 0 the open reference, Up/Down move the slider of the one playing,
Enter submits the trial. The logic and statistics live in ``app/mushra.py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtWidgets

from models.stream_base import Processor

MAX_STIMULI = 4  # A, B, the hidden reference and the anchor


class CleanReference(Processor):
    """The clean speech of a file source, played in step with the stream (the hidden and the
    open reference of a MUSHRA test). Runs at the engine's rate: no resampling, no delay."""

    name = "reference"
    backend = "numpy"
    latency_samples = 0

    def __init__(self, clean: np.ndarray, sample_rate: int, hop: int):
        self.clean = np.asarray(clean, np.float32)
        self.sample_rate, self.hop = sample_rate, hop
        self.params, self.megabytes = 0, 0.0

    def init_state(self):
        return {"pos": 0}

    def step(self, block, state):
        n = len(self.clean)
        idx = (state["pos"] + np.arange(self.hop)) % n
        state["pos"] = (state["pos"] + self.hop) % n
        return self.clean[idx], state


class MushraPanel:
    """Mixed into :class:`app.gui.MainWindow`."""

    def _build_mushra(self, side: QtWidgets.QVBoxLayout) -> None:
        box = QtWidgets.QGroupBox("MUSHRA test  [1-4, 0 reference, Up/Down, Enter]")
        lay = QtWidgets.QGridLayout(box)
        self.mushra = None
        self.listener_edit = QtWidgets.QLineEdit("listener")
        self.mushra_button = QtWidgets.QPushButton("Start MUSHRA with A and B")
        self.mushra_button.setCheckable(True)
        self.mushra_button.toggled.connect(self.toggle_mushra)
        lay.addWidget(QtWidgets.QLabel("listener"), 0, 0)
        lay.addWidget(self.listener_edit, 0, 1)
        lay.addWidget(self.mushra_button, 1, 0, 1, 2)
        self.mushra_sliders, self.mushra_values = [], []
        for k in range(MAX_STIMULI):
            s = QtWidgets.QSlider(QtCore.Qt.Horizontal)
            s.setRange(0, 100)
            s.setValue(50)
            v = QtWidgets.QLabel("50")
            s.valueChanged.connect(lambda x, v=v: v.setText(str(x)))
            b = QtWidgets.QPushButton(str(k + 1))
            b.clicked.connect(lambda _=False, k=k: self.mushra_listen(k))
            lay.addWidget(b, 2 + k, 0)
            lay.addWidget(s, 2 + k, 1)
            lay.addWidget(v, 2 + k, 2)
            self.mushra_sliders.append(s)
            self.mushra_values.append(v)
        self.mushra_label = QtWidgets.QLabel("")
        self.mushra_label.setWordWrap(True)
        lay.addWidget(self.mushra_label, 2 + MAX_STIMULI, 0, 1, 3)
        box.setVisible(True)
        side.addWidget(box)
        self._mushra_playing = 0

    def toggle_mushra(self, on: bool) -> None:
        from app.mushra import MushraTest

        if on:
            if self.blind is not None:
                self.error("end the blind test first")
                self.mushra_button.setChecked(False)
                return
            csv_path = self.results_path("mushra", ".csv")
            names = list(dict.fromkeys([self.combo_a.spec(), self.combo_b.spec()]))
            try:
                self.mushra = MushraTest(names, self.listener_edit.text() or "listener", csv_path)
            except ValueError as exc:
                self.error(str(exc))
                self.mushra_button.setChecked(False)
                return
            self.stop()
            self.start()
            self.mushra_button.setText("End MUSHRA test")
            self._next_mushra_trial()
        else:
            if self.mushra is not None and self.mushra.results:
                self.mushra_label.setText(self._mushra_summary_text())
            self.mushra = None
            self.mushra_button.setText("Start MUSHRA with A and B")

    def mushra_stimuli_procs(self, procs: list, source, rate: int, block: int) -> list:
        """The engine's processors for a MUSHRA test, in the test's stimulus order."""
        clean = getattr(source, "clean", None)
        if clean is None:
            raise ValueError(
                "a MUSHRA test needs the clean reference: play a file with a noise file mixed"
                " in, or the demo"
            )
        # procs holds the models and, last, the bypass that serves as the noisy anchor
        *models, anchor = procs
        return [*models, CleanReference(clean, rate, block), anchor]

    def _next_mushra_trial(self) -> None:
        t = self.mushra.start_trial(f"{Path(self.file_edit.text() or 'demo').name}")
        for s in self.mushra_sliders:
            s.setValue(50)
        for k, s in enumerate(self.mushra_sliders):
            s.setEnabled(k < len(self.mushra.labels))
        self.mushra_label.setText(
            f"Trial {t.number}: rate every stimulus (1-{len(self.mushra.labels)}), 0 = open"
            " reference, Enter = next"
        )
        self.model_info.setText("hidden during the MUSHRA test")
        self.mushra_listen(0)

    def mushra_listen(self, k: int) -> None:
        m = self.mushra
        if m is None or self.engine is None or m.trial is None or k >= len(m.labels):
            return
        self._mushra_playing = k
        self.engine.request_active(m.stimuli.index(m.stimulus_for(m.labels[k])))

    def mushra_open_reference(self) -> None:
        if self.mushra is not None and self.engine is not None:
            from app.mushra import REFERENCE

            self.engine.request_active(self.mushra.stimuli.index(REFERENCE))

    def mushra_nudge(self, delta: int) -> None:
        if self.mushra is not None:
            s = self.mushra_sliders[self._mushra_playing]
            s.setValue(s.value() + delta)

    def mushra_submit(self) -> None:
        m = self.mushra
        if m is None or m.trial is None:
            return
        ratings = {lab: self.mushra_sliders[k].value() for k, lab in enumerate(m.labels)}
        m.rate(ratings, self._loudness_matched())
        self._next_mushra_trial()

    def _mushra_summary_text(self) -> str:
        s = self.mushra.summary()
        parts = [
            f"{name}: {v['mean']:.0f} ± {v['ci95']:.0f}"
            for name, v in sorted(s["stimuli"].items(), key=lambda kv: -kv[1]["mean"])
        ]
        flagged = [w for w, v in s["listeners"].items() if v["flagged"]]
        text = "MUSHRA means (95 % CI): " + "; ".join(parts)
        if flagged:
            text += f". Post-screening flags: {', '.join(flagged)}"
        return text
