"""Display buffers the engine fills and a GUI reads: mirrored spectrogram history, levels.

The worker writes; the GUI reads on its own timer. No locks: a column caught mid-write shows
for one frame at worst, which a display tolerates, and the worker never waits for the GUI.
"""

from __future__ import annotations

import numpy as np

from dsp.resample import StreamResampler
from dsp.stft import StftGeometry, StreamingStft

FLOOR_DB = -120.0  # the level of a column nothing was written to: silence, drawn black


class ColumnHistory:
    """Mirrored history of spectrogram columns (STYLE.md 7).

    Each column is written at index j and j + N of a [2N, bins] array, so the last N columns are
    always the contiguous slice [j + 1, j + 1 + N) - handed to pyqtgraph without np.roll.
    """

    def __init__(self, n_columns: int, n_bins: int, floor_db: float = FLOOR_DB):
        self.n = int(n_columns)
        self.bins = int(n_bins)
        self._buf = np.full((2 * self.n, self.bins), floor_db, dtype=np.float32)
        self._j = self.n - 1  # index of the newest column
        self.written = 0  # total columns ever written

    def push(self, column: np.ndarray) -> None:
        j = (self._j + 1) % self.n
        self._buf[j] = column
        self._buf[j + self.n] = column
        self._j = j
        self.written += 1

    def view(self) -> np.ndarray:
        """The last N columns, oldest first: a [N, bins] view (do not modify)."""
        j = self._j
        return self._buf[j + 1 : j + 1 + self.n]


def full_scale_magnitude(window: np.ndarray) -> float:
    """|X| of a full-scale sine at a bin centre: sum(window) / 2 (the 0 dBFS reference)."""
    return float(np.sum(window)) / 2.0


def magnitude_db(spec: np.ndarray, ref: float = 1.0, floor_db: float = -120.0) -> np.ndarray:
    """Complex STFT column -> dB relative to ``ref`` (20 log10 |X| / ref), floored."""
    mag2 = (spec.real**2 + spec.imag**2) / (ref * ref)
    return np.maximum(10.0 * np.log10(mag2 + 1e-20), floor_db).astype(np.float32)


class SpecFeed:
    """Device-rate audio -> 20 ms spectrum columns (dBFS) in a display history."""

    def __init__(self, rate: int, columns: int, geom: StftGeometry, db_ref: float):
        self.rs = StreamResampler(rate, geom.sample_rate)
        self.stft = StreamingStft(geom)
        self.hist = ColumnHistory(columns, geom.n_bins)
        self.hop, self.db_ref = geom.hop, db_ref
        self.buf = np.zeros(0, np.float32)

    def push(self, sig: np.ndarray) -> None:
        if not len(sig):
            return
        y = self.rs.process(sig)
        buf = np.concatenate([self.buf, y]) if len(self.buf) else y
        k = len(buf) // self.hop
        for i in range(k):
            col = self.stft.push(buf[i * self.hop : (i + 1) * self.hop])
            self.hist.push(magnitude_db(col, self.db_ref))
        self.buf = buf[k * self.hop :].copy()
