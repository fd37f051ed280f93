"""Ctrl-C and SIGTERM end a command the same way: as a KeyboardInterrupt, so every ``finally`` runs.

Lava runs stop their runtimes in ``finally`` blocks (``snndeploy.lava_runner``); SIGTERM's default action would
kill the process without running them and leave Lava's workers and shared memory behind.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class Interrupted(KeyboardInterrupt):
    """A stop signal other than SIGINT (SIGTERM), raised where the main thread is."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


def _raise(signum: int, frame) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def as_keyboard_interrupt() -> Iterator[None]:
    """Within the block SIGTERM raises :class:`Interrupted` (SIGINT already raises KeyboardInterrupt)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def describe(exc: BaseException) -> str:
    if isinstance(exc, Interrupted):
        return f"stopped by {exc.args[0]}"
    return "interrupted"


class StopRequested(Exception):
    """A KeyboardInterrupt carried out of click's main, which would print a blank line and raise Abort."""
