"""Following a training run: slot B plays the newest ``best.safetensors`` of a run folder while
``hushlab train`` writes it, swapped in (warmed up, crossfaded) without stopping the audio."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6 import QtCore, QtWidgets

from models.processor import load_processor

CHECK_MS = 3000
SLOT = 1  # B follows the run; A stays as the reference


class FollowRun:
    """Mixed into :class:`app.gui.MainWindow` (uses its engine, loader and status bar)."""

    def _build_follow(self, side: QtWidgets.QVBoxLayout) -> None:
        box = QtWidgets.QGroupBox("Follow a training run (B)")
        lay = QtWidgets.QVBoxLayout(box)
        row = QtWidgets.QHBoxLayout()
        self.follow_edit = QtWidgets.QLineEdit()
        self.follow_edit.setPlaceholderText("run folder, e.g. runs/baseline")
        pick = QtWidgets.QPushButton("…")
        pick.clicked.connect(self._pick_run)
        row.addWidget(self.follow_edit)
        row.addWidget(pick)
        self.follow_check = QtWidgets.QCheckBox("B plays its newest best checkpoint")
        self.follow_check.toggled.connect(self._follow_toggled)
        self.follow_label = QtWidgets.QLabel("")
        self.follow_label.setWordWrap(True)
        lay.addLayout(row)
        lay.addWidget(self.follow_check)
        lay.addWidget(self.follow_label)
        side.addWidget(box)
        self._follow_seen: tuple | None = None
        self._follow_timer = QtCore.QTimer(self)
        self._follow_timer.timeout.connect(self.check_run)

    def _pick_run(self) -> None:
        d = QtWidgets.QFileDialog.getExistingDirectory(self, "Run folder", self.follow_edit.text())
        if d:
            self.follow_edit.setText(d)

    def _follow_toggled(self, on: bool) -> None:
        self._follow_seen = None
        if on:
            self._follow_timer.start(CHECK_MS)
            self.check_run()
        else:
            self._follow_timer.stop()
            self.follow_label.setText("")

    def check_run(self) -> None:
        """Swap the run's best checkpoint into B when it is new (or B plays something else)."""
        if not self.follow_check.isChecked():
            return
        run = Path(self.follow_edit.text().strip())
        best = run / "best.safetensors"
        if not best.exists():
            self.follow_label.setText(f"waiting for {best}")
            return
        stat = best.stat()
        key = (str(best), stat.st_mtime_ns, stat.st_size)
        if key == self._follow_seen or self.engine is None or self.blind is not None:
            return
        self._follow_seen = key

        def done(proc, error):
            if error is not None:
                self._follow_seen = None  # try again at the next check
                self.follow_label.setText(f"could not load {best}: {error}")
                return
            if self.engine is None:
                return
            try:
                self.engine.replace_processor(SLOT, proc)
            except Exception as exc:  # e.g. a run of a model with a longer latency
                self.follow_label.setText(f"cannot play {best} here: {exc}")
                return
            self.follow_label.setText(_describe(run, proc))
            self._show_model_info()

        self.loader.submit(lambda: load_processor(str(best)), done)


def _describe(run: Path, proc) -> str:
    m = (getattr(proc, "meta", {}) or {}).get("metrics") or {}
    text = f"B = {run.name}/best.safetensors"
    if "step" in m:
        text += f", step {m['step']}"
    if isinstance(m.get("valid_si_sdr"), float):
        text += f", validation SI-SDR {m['valid_si_sdr']:.2f} dB"
    hist = run / "history.jsonl"
    if hist.exists():
        lines = [x for x in hist.read_text().splitlines() if x.strip()]
        if lines:
            text += f" (run at step {json.loads(lines[-1]).get('step')})"
    return text
