"""Stopping a training run cleanly on Ctrl-C or SIGTERM."""

from __future__ import annotations

import signal
import sys


class StopFlag:
    """First Ctrl-C or SIGTERM (a scheduler's stop, ``kill``): finish the step, save, exit.
    A second one: stop at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self._old: dict = {}

    def __enter__(self):
        if sys.platform != "win32" and _is_main_thread():
            self._old = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _is_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
