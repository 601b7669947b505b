"""``hushlab app``: the desktop app. Without audio devices it offers the file source and the demo.

For non-interactive checks: ``--screenshot PATH`` saves the window after ``--screenshot-after``
seconds of playback, and ``--quit-after SECONDS`` closes the app. Ctrl-C in the terminal (or
SIGTERM) closes the window as its close button does - the settings saved, the audio stopped -
and exits with 128 + the signal's number.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", default="", help="play this file as the microphone")
    p.add_argument(
        "--noise",
        default=None,
        help="mix this noise file into the source ('' for none; a --source given without"
        " --noise plays as it is)",
    )
    p.add_argument("--snr", type=float, default=None, help="SNR of that mix (dB)")
    p.add_argument("--model-a", default="", help="processor A (default: last used, or baseline)")
    p.add_argument("--model-b", default="", help="processor B (default: last used, or bypass)")
    p.add_argument("--demo", action="store_true", help="start playing the built-in demo")
    p.add_argument("--no-output", action="store_true", help="do not play to a speaker")
    p.add_argument(
        "--view",
        choices=["io", "ab"],
        default="",
        help="spectrograms of input and output (io) or of A and B (ab); default: last used",
    )
    p.add_argument("--screenshot", default="", metavar="PATH", help="save a screenshot")
    p.add_argument("--screenshot-after", type=float, default=4.0, metavar="SECONDS")
    p.add_argument("--quit-after", type=float, default=0.0, metavar="SECONDS")


def run(args) -> int:
    if (
        not os.environ.get("DISPLAY")
        and not os.environ.get("WAYLAND_DISPLAY")
        and not os.environ.get("QT_QPA_PLATFORM")
    ):
        print(
            "hushlab app: no display found (DISPLAY is unset); running offscreen. "
            "Use --screenshot to see the window.",
            file=sys.stderr,
        )
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6 import QtCore, QtWidgets

    from app.gui import MainWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("Hushlab")
    got = _close_on_signals(app)  # from here on; before it, Ctrl-C just ends the start-up
    win = MainWindow(args)
    win.resize(1280, 800)
    win.show()
    if args.source or args.demo or args.screenshot or args.quit_after:
        if args.source:
            QtCore.QTimer.singleShot(200, win.start)
        else:
            QtCore.QTimer.singleShot(200, win.start_demo)
    if args.screenshot:

        def shot():
            win.grab().save(args.screenshot)
            print(f"screenshot: {args.screenshot}")

        QtCore.QTimer.singleShot(int(args.screenshot_after * 1000), shot)
    if args.quit_after:
        QtCore.QTimer.singleShot(int(args.quit_after * 1000), win.close)
    code = app.exec()
    return 128 + got[0] if got else code


def _close_on_signals(app) -> list[int]:
    """SIGINT and SIGTERM close the app's windows from its event loop (as their close buttons
    do), once it runs; the list gets the signal's number. Python runs the handler between
    bytecodes, and the window's timers run Python often."""
    from PySide6 import QtCore

    got: list[int] = []

    def handler(signum, _frame):
        if not got:
            got.append(signum)
            QtCore.QTimer.singleShot(0, app.closeAllWindows)

    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, handler)
    return got
