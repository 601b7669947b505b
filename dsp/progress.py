"""Progress bars that suit where they are written: live on a terminal, and a line every
``LOG_INTERVAL_S`` seconds (newline-terminated, no carriage returns) when stderr is a log file."""

from __future__ import annotations

import sys

LOG_INTERVAL_S = 30.0


def progress(iterable=None, **kwargs):
    """``tqdm`` with terminal-aware settings; same arguments."""
    from tqdm import tqdm

    target = kwargs.get("file") or sys.stderr
    if not _is_terminal(target):
        kwargs.setdefault("mininterval", LOG_INTERVAL_S)
        kwargs.setdefault("maxinterval", LOG_INTERVAL_S * 2)
        kwargs["dynamic_ncols"] = False
        kwargs.setdefault("ncols", 100)
        kwargs["file"] = _NewlineWriter(target)
    return tqdm(iterable, **kwargs)


def _is_terminal(f) -> bool:
    try:
        return f.isatty()
    except (AttributeError, ValueError):
        return False


class _NewlineWriter:
    """Turns tqdm's carriage-return redraws into whole lines."""

    def __init__(self, f):
        self._f = f

    def write(self, s: str) -> None:
        s = s.replace("\r", "").strip()
        if s:
            self._f.write(s + "\n")

    def flush(self) -> None:
        self._f.flush()
