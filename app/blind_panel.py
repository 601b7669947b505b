"""The blind-test panel of the main window (A/B preference or ABX): labels shuffled every trial,
keys 1-4 listen, Shift+1-4 vote; the logic and statistics live in ``app/blind.py``."""

from __future__ import annotations


class BlindPanel:
    """Mixed into :class:`app.gui.MainWindow` (uses its engine, combos and labels)."""

    def toggle_blind(self, on: bool) -> None:
        from app.blind import BlindTest

        if on:
            names = [self.combo_a.spec(), self.combo_b.spec()]
            mode = "abx" if self.blind_mode.currentIndex() == 1 else "ab"
            csv_path = self.results_path("blind", ".csv")
            try:
                self.blind = BlindTest(names, mode, csv_path)
            except ValueError as exc:
                self.error(str(exc))
                self.blind_button.setChecked(False)
                return
            self.stop()
            self.start()
            self.blind_button.setText("End blind test")
            self.blind_listen(0)
        else:
            if self.blind is not None:
                s = self.blind.summary()
                self.blind_label.setText(self._blind_summary_text(s))
            self.blind = None
            self.blind_button.setText("Start blind test with A and B")

    def _blind_summary_text(self, s: dict) -> str:
        if s["mode"] == "ab":
            counts = ", ".join(f"{k}: {v}" for k, v in s["counts"].items())
            return f"{s['trials']} trials; preferred {counts}; p = {s['p_value']:.3g}"
        return f"{s['trials']} trials; {s['correct']} correct; p = {s['p_value']:.3g}"

    def blind_listen(self, i: int) -> None:
        if self.blind is None or self.engine is None:
            return
        labels = self.blind.labels
        if i >= len(labels):
            return
        self.engine.request_active(self.blind.processor_for(labels[i]))
        t = self.blind.trial
        ask = (
            "Which is X? Shift+1 = A, Shift+2 = B"
            if self.blind.mode == "abx"
            else f"Prefer? Shift+1..{len(self.blind.names)}"
        )
        keys = ", ".join(f"{k + 1} = {lab}" for k, lab in enumerate(labels))
        self.blind_label.setText(f"Trial {t.number}: listening to {labels[i]}\n{keys}\n{ask}")
        self.model_info.setText("hidden during the blind test")

    def blind_vote(self, i: int) -> None:
        if self.blind is None:
            return
        from app.blind import LABELS

        try:
            self.blind.vote(LABELS[i], self._loudness_matched())
        except ValueError as exc:
            self.statusBar().showMessage(str(exc), 3000)
            return
        self.blind_listen(0)
