"""A preallocated single-producer / single-consumer float32 ring buffer for audio.

Safe between one writer thread (for example a PortAudio callback) and one reader thread without
locks: the writer only advances ``_write``, the reader only advances ``_read``, each after its
copy is complete, and both are plain Python ints whose assignment is atomic under the GIL.
Positions grow without bound (Python ints do not overflow), so fill = write - read is exact and
a full ring is never confused with an empty one.

Neither ``write`` nor ``read_into`` allocates sample storage: data are copied into and out of the
one array made at construction. A write that does not fit is dropped whole and counted as an
overflow (the callback must never block); a read that finds too little data reads nothing and
counts an underflow, so the consumer decides what to play instead (usually zeros).
"""

from __future__ import annotations

import numpy as np


class RingBuffer:
    def __init__(self, capacity: int, channels: int = 1):
        if capacity <= 0:
            raise ValueError("ring capacity must be positive")
        self.capacity = int(capacity)
        self.channels = int(channels)
        shape = (self.capacity,) if channels == 1 else (self.capacity, channels)
        self._buf = np.zeros(shape, dtype=np.float32)
        self._write = 0  # total samples ever written (owned by the producer)
        self._read = 0  # total samples ever read (owned by the consumer)
        self.overflows = 0  # producer-side count of dropped writes
        self.underflows = 0  # consumer-side count of reads that found too little

    # -- shared views ------------------------------------------------------------------------
    @property
    def fill(self) -> int:
        """Samples (frames) ready to read."""
        return self._write - self._read

    @property
    def space(self) -> int:
        """Samples that can be written without overflow."""
        return self.capacity - self.fill

    @property
    def fill_fraction(self) -> float:
        return self.fill / self.capacity

    # -- producer ------------------------------------------------------------------------------
    def write(self, data: np.ndarray) -> bool:
        """Copy ``data`` ([n] or [n, channels]) in; False (and counted) if it does not fit."""
        n = len(data)
        if n == 0:
            return True
        if n > self.capacity - (self._write - self._read):
            self.overflows += 1
            return False
        start = self._write % self.capacity
        first = min(n, self.capacity - start)
        self._buf[start : start + first] = data[:first]
        if first < n:
            self._buf[: n - first] = data[first:]
        self._write += n  # publish only after the copy
        return True

    # -- consumer ------------------------------------------------------------------------------
    def read_into(self, out: np.ndarray) -> bool:
        """Fill ``out`` completely from the ring. Returns False (and counts) if too little data."""
        n = len(out)
        if n == 0:
            return True
        if self._write - self._read < n:
            self.underflows += 1
            return False
        start = self._read % self.capacity
        first = min(n, self.capacity - start)
        out[:first] = self._buf[start : start + first]
        if first < n:
            out[first:] = self._buf[: n - first]
        self._read += n  # release only after the copy
        return True

    def read_available_into(self, out: np.ndarray) -> int:
        """Copy up to len(out) samples; returns how many were copied (never counts an underflow)."""
        n = min(len(out), self._write - self._read)
        if n > 0:
            self.read_into(out[:n])
        return n

    def discard(self, n: int) -> int:
        """Drop up to ``n`` of the oldest samples (consumer side); returns how many were dropped."""
        n = max(0, min(n, self._write - self._read))
        self._read += n
        return n

    def clear(self) -> None:
        """Consumer side: forget everything buffered."""
        self._read = self._write
