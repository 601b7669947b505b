"""Loading models off the GUI thread, with the result delivered back by a Qt signal (a queued
connection into the GUI thread) instead of polling a future on a timer."""

from __future__ import annotations

import concurrent.futures

from PySide6 import QtCore


class Loader(QtCore.QObject):
    """Runs ``fn`` on one background thread and calls ``done(result, error)`` on the thread
    that owns the loader (the GUI thread); exactly one of the two is None."""

    _finished = QtCore.Signal(object, object, object)  # done, result, error

    def __init__(self, parent=None):
        super().__init__(parent)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        self._finished.connect(self._deliver)
        self.pending = 0

    def submit(self, fn, done) -> None:
        self.pending += 1

        def job():
            try:
                result, error = fn(), None
            except Exception as exc:  # delivered to ``done``: the GUI says what went wrong
                result, error = None, exc
            self._finished.emit(done, result, error)

        self._pool.submit(job)

    def _deliver(self, done, result, error) -> None:
        self.pending -= 1
        done(result, error)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
