"""The live spectrogram view: a pyqtgraph image fed from a mirrored column history (no
np.roll), with a linear or mel frequency axis, colour maps and a time/frequency/level readout."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtGui

from app.display import FLOOR_DB


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


class SpectrogramView(pg.PlotWidget):
    """A scrolling spectrogram: time in seconds (newest at 0), frequency in Hz on a linear or mel
    axis, dBFS colours."""

    MEL_ROWS = 160

    def __init__(self, title: str, n_columns: int, n_bins: int, hop_s: float, nyquist: float):
        super().__init__()
        self.setTitle(title)
        self.setLabel("bottom", "time", units="s")
        self.img = pg.ImageItem(axisOrder="col-major")
        self.addItem(self.img)
        self.hop_s = hop_s
        self.n_columns = n_columns
        self.nyquist = nyquist
        self.hz_per_bin = nyquist / (n_bins - 1)
        mel_max = float(hz_to_mel(nyquist))
        self._mel_hz = mel_to_hz(np.linspace(0, mel_max, self.MEL_ROWS))
        self._mel_idx = np.clip(np.round(self._mel_hz / self.hz_per_bin).astype(int), 0, n_bins - 1)
        self.setXRange(-n_columns * hop_s, 0, padding=0)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.levels = (-90.0, -10.0)
        self.data = np.full((n_columns, n_bins), FLOOR_DB, np.float32)  # black until audio
        self.set_colormap("inferno")
        self.set_scale("linear")

    def set_scale(self, scale: str) -> None:
        """'linear' (rows are FFT bins) or 'mel' (rows resampled to mel-spaced frequencies)."""
        self.scale = scale
        tr = QtGui.QTransform()
        if scale == "mel":
            step = float(hz_to_mel(self.nyquist)) / (self.MEL_ROWS - 1)
            tr.translate(-self.n_columns * self.hop_s, -step / 2)
            tr.scale(self.hop_s, step)
            self.setYRange(0, float(hz_to_mel(self.nyquist)), padding=0)
            ticks = [100, 250, 500, 1000, 2000, 4000, 8000]
            self.getAxis("left").setTicks(
                [[(float(hz_to_mel(f)), f"{f / 1000:g}k" if f >= 1000 else str(f)) for f in ticks]]
            )
            self.setLabel("left", "frequency (Hz, mel scale)")
        else:
            tr.translate(-self.n_columns * self.hop_s, -self.hz_per_bin / 2)
            tr.scale(self.hop_s, self.hz_per_bin)
            self.setYRange(0, self.nyquist, padding=0)
            self.getAxis("left").setTicks(None)
            self.setLabel("left", "frequency", units="Hz")
        self.img.setTransform(tr)
        self.show_columns(self.data)

    def set_colormap(self, name: str) -> None:
        try:
            self.img.setColorMap(pg.colormap.get(name))
        except Exception:
            self.img.setColorMap(pg.colormap.get("viridis"))

    def show_columns(self, cols: np.ndarray) -> None:
        self.data = cols
        img = cols[:, self._mel_idx] if self.scale == "mel" else cols
        self.img.setImage(img, autoLevels=False, levels=self.levels)

    def readout(self, scene_pos) -> str | None:
        if not self.sceneBoundingRect().contains(scene_pos):
            return None
        p = self.getPlotItem().vb.mapSceneToView(scene_pos)
        t = p.x()
        f = float(mel_to_hz(p.y())) if self.scale == "mel" else p.y()
        col = int(round(t / self.hop_s)) + self.n_columns
        row = int(round(f / self.hz_per_bin))
        if not (0 <= col < self.data.shape[0] and 0 <= row < self.data.shape[1]):
            return None
        return f"t {t:6.2f} s   f {f:7.0f} Hz   {self.data[col, row]:6.1f} dBFS"
