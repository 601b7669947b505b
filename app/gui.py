"""The Hushlab desktop app (PySide6 + pyqtgraph).

The GUI thread only draws and reacts: the engine's worker thread does the audio work, a QTimer
(30 fps) pulls the display buffers, and models load on a background thread with a busy indicator.
Keys: Space start/stop, A / B / Tab switch, F freeze, V input-output or A-B views, R record,
1-4 blind labels, Shift+1-4 vote.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtWidgets

from app.blind_panel import BlindPanel
from app.engine import (
    DeviceSource,
    Engine,
    EngineConfig,
    FileSink,
    FileSource,
    LatencyTooLong,
    SpeakerSink,
)
from app.follow import FollowRun
from app.layout import COLORMAPS, FILE_SOURCE, NO_OUTPUT, WindowLayout  # noqa: F401
from app.loader import Loader
from app.model_combo import teacher_label
from app.mushra_panel import MushraPanel
from app.spectrogram import SpectrogramView, hz_to_mel, mel_to_hz  # noqa: F401
from dsp.audio_io import AudioError, check_audio_file
from models.processor import load_processor

log = logging.getLogger(__name__)
ASSETS = Path(__file__).resolve().parent / "assets"
DEMO_CLEAN = ASSETS / "demo_clean.flac"
DEMO_NOISE = ASSETS / "demo_noise.flac"


class MainWindow(WindowLayout, BlindPanel, MushraPanel, FollowRun, QtWidgets.QMainWindow):
    def __init__(self, args=None):
        super().__init__()
        self.setWindowTitle("Hushlab")
        self.args = args
        self.settings = QtCore.QSettings("Hushlab", "Hushlab")
        self.engine: Engine | None = None
        self.loader = Loader(self)
        self._loading = False  # processors for a start are being loaded
        self._closed = False  # closed for good (its loaders shut down): nothing starts
        self._start_id = 0  # which start a finished load belongs to
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
        self.metrics_loader = Loader(self)  # live metrics, off the audio and GUI threads
        self.metrics_timer = QtCore.QTimer(self)
        self.metrics_timer.timeout.connect(self.update_live_metrics)
        self.metrics_timer.start(1000)

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
        if getattr(self, "mushra", None) is not None:  # the models, then the noisy anchor
            return [*self.mushra.stimuli[:-2], "bypass"]
        return [self.combo_a.spec(), self.combo_b.spec()]

    def start(self) -> None:
        if self._loading or self._closed:
            return
        if self.input_combo.currentData() is None:  # a file as the microphone: said at once,
            try:  # not after the models have loaded
                for path in (self.file_edit.text().strip(), self.noise_edit.text().strip()):
                    if path:
                        check_audio_file(path)
            except AudioError as exc:
                self.error(f"could not start: {exc}")
                return
        self._view_mode_changed()  # titles for what is about to play (arguments may change it)
        specs = self._specs()
        self.busy.setVisible(True)
        self.start_button.setEnabled(False)
        self._loading = True
        self._start_id += 1
        sid = self._start_id  # a start called off (stop, close, a newer start) starts nothing
        self.loader.submit(
            lambda: self._load_processors(specs),
            lambda procs, error: self._finish_start(procs, error, sid),
        )

    def _load_processors(self, specs):
        out = []
        for s in specs:
            if s not in self._procs_cache:
                like = out[0] if out and s == "bypass" else None
                self._procs_cache[s] = load_processor(s, bypass_like=like)
            out.append(self._procs_cache[s])
        return out

    def _finish_start(self, procs, error, sid: int) -> None:
        if not self._loading or sid != self._start_id:
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
        if self.mushra is not None:  # + the hidden clean reference, in the test's order
            procs = self.mushra_stimuli_procs(procs, source, rate, rate // 100)
        eng = Engine(procs, EngineConfig(rate=rate, block=rate // 100, realtime=True))
        eng.set_wet(self.wet_slider.value() / 100)
        eng.level_match = self.match_check.isChecked()
        sinks = [SpeakerSink(str(out_idx))] if out_idx is not None else []
        if self.vmic_check.isChecked():  # the processed stream as a microphone for other apps
            from app.virtual_mic import VirtualMic

            self.vmic = VirtualMic().open()
            try:
                sinks = [SpeakerSink("pulse")]
            except Exception:
                self.vmic.close()
                self.vmic = None
                raise
            self.statusBar().showMessage("virtual microphone 'Hushlab' is live", 5000)
        try:
            eng.start(source, sinks)
        except Exception:
            self._close_vmic()
            raise
        self.engine = eng
        self.select(0 if self.blind is None else self.engine.active)
        self._show_model_info()

    def stop(self) -> None:
        if self._loading:  # a start still loading its models is called off: it starts nothing
            self._loading = False
            self.busy.setVisible(False)
            self.start_button.setEnabled(True)
        if self.recording is not None:
            self.record_button.setChecked(False)
        if self.engine is not None:
            self.engine.stop()
            self.engine = None
        self._close_vmic()
        self.start_button.setText("Start  [Space]")
        self.health_label.setText("stopped")

    def label_key(self, i: int) -> None:
        """Keys 1-4: a hidden stimulus of the MUSHRA test or of the blind test."""
        if self.mushra is not None:
            self.mushra_listen(i)
        else:
            self.blind_listen(i)

    def _close_vmic(self) -> None:
        if getattr(self, "vmic", None) is not None:
            self.vmic.close()
            self.vmic = None

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
        self._view_mode_changed()  # the A/B views' titles name the chosen models
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

    def _match_changed(self, on: bool) -> None:
        if self.engine is not None:
            self.engine.level_match = on

    def _match_text(self, eng) -> str:
        """The matching gains of A and B (never in a blind or MUSHRA test: they would tell)."""
        if not eng.level_match or self.blind is not None or self.mushra is not None:
            return ""
        gains = eng.match_gains_db()
        return " | matched " + ", ".join(
            f"{k} {g:+.1f} dB" for k, g in zip("AB", gains, strict=False)
        )

    def _loudness_matched(self) -> bool:
        """Whether what the listener heard was level-matched (written with each answer)."""
        return self.engine is not None and self.engine.level_match

    def _cmap_changed(self, name: str) -> None:
        for v in (self.view_in, self.view_out, self.view_diff):
            v.set_colormap(name)

    def _scale_changed(self, scale: str) -> None:
        for v in (self.view_in, self.view_out, self.view_diff):
            v.set_scale(scale)

    def _levels_changed(self, *_):
        lv = (float(self.db_min.value()), float(self.db_max.value()))
        self.view_in.levels = self.view_out.levels = lv

    def results_path(self, prefix: str, suffix: str) -> Path:
        """A new file for test results in the recordings folder: PREFIX-<date-time>SUFFIX."""
        folder = Path(self.settings.value("record_dir", str(Path.home() / "hushlab")))
        return folder / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}{suffix}"

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
            rec, self.recording = self.recording, None
            try:
                rec.close()  # writes what is queued; later writes are dropped
            except Exception as exc:  # the file could not be finished
                rec.error = rec.error or f"{rec.path}: {type(exc).__name__}: {exc}"
            if rec.error:  # the writer thread hit an error (a full disk, a removed folder)
                self.error(f"recording failed: {rec.error} (what came before it is kept)")
            else:
                self.statusBar().showMessage(f"saved {rec.path}", 5000)

    def update_live_metrics(self) -> None:
        """Score the last seconds of input, A and B against the clean reference (when the
        source knows it); hidden during a blind test."""
        eng = self.engine
        tap = getattr(eng, "ref_tap", None)
        if tap is None or self.blind is not None or self.mushra is not None:
            self.live_label.setText("")
            return
        snap = tap.snapshot()
        if snap is None or self.metrics_loader.pending:
            return
        names = tuple(self._specs())
        rate = eng.cfg.rate
        from app.live_metrics import describe, scores

        def done(res, error):
            if error is None and self.engine is eng:
                self.live_label.setText(describe(res, names))

        self.metrics_loader.submit(lambda: scores(snap, rate), done)

    def _view_mode_changed(self, *_):
        """Input/output, or both processors' outputs (A and B run all the time)."""
        ab = self.view_combo.currentIndex() == 1
        names = self._specs() if ab else ("input", "output")
        label = ("A: ", "B: ") if ab else ("", "")
        self.view_in.setTitle(label[0] + names[0])
        self.view_out.setTitle(label[1] + names[1])
        self.view_diff.setTitle("|A - B| (dB)" if ab else "input - output (dB removed)")
        if self.engine is not None:
            self.engine.ab_display = ab

    def cycle_view(self) -> None:
        self.view_combo.setCurrentIndex(1 - self.view_combo.currentIndex())

    # -- drawing ---------------------------------------------------------------------------
    def _refresh(self) -> None:
        eng = self.engine
        if eng is None:
            return
        if not self.freeze_check.isChecked():
            # (never in a blind test: the two views would tell which processor is which)
            ab = (
                self.view_combo.currentIndex() == 1
                and len(eng.procs) > 1
                and self.blind is None
                and self.mushra is None
            )
            eng.ab_display = ab
            a = (eng.spec_a if ab else eng.spec_in).view()
            b = (eng.spec_b if ab else eng.spec_out).view()
            self.view_in.show_columns(a)
            self.view_out.show_columns(b)
            if self.view_diff.isVisible():  # removed by the processor, or A and B apart
                self.view_diff.show_columns(np.abs(a - b) if ab else np.clip(a - b, 0, None))
        h = eng.health()
        name = "hidden" if self.blind is not None else h["active"]
        self.health_label.setText(
            f"{name} | hop {h['ms_per_hop_p50']:.2f} ms (p99 {h['ms_per_hop_p99']:.2f}) | "
            f"RTF {h['rtf']:.3f} | latency {h['latency_ms']:.0f} ms | xruns "
            f"{h['input_xruns'] + h['output_xruns'] + h['underruns']} | in "
            f"{100 * h['input_fill']:.0f}% out {100 * h['output_fill']:.0f}% | "
            f"in {eng.level_in_db:.0f} dBFS out {eng.level_out_db:.0f} dBFS" + self._match_text(eng)
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
        if self.engine is None or self.blind is not None or self.mushra is not None:
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
        """Every distinct error is logged and shown; the same one again within 30 s is not
        (a failing source would repeat it every block). A different one within 3 s of the last
        joins it in the status bar rather than replacing it before it can be read."""
        now = time.monotonic()
        if text == self._last_error and now - self._last_error_t < 30:
            return
        log.warning(text)
        shown = self.statusBar().currentMessage()
        if shown and now - self._last_error_t < 3 and text not in shown:
            text_shown = f"{shown}  |  {text}"
        else:
            text_shown = text
        self._last_error, self._last_error_t = text, now
        self.statusBar().showMessage(text_shown, 8000)

    def closeEvent(self, ev) -> None:  # noqa: N802 (Qt name)
        self._closed = True
        self._save_settings()
        self.stop()
        self.loader.shutdown()
        self.metrics_loader.shutdown()
        super().closeEvent(ev)
