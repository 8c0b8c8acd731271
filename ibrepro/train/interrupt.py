"""Ctrl-C: training stops cleanly on SIGINT / SIGTERM (a flag the loop polls after each
snapshot); every command keeps a Ctrl-C that Python could not raise where it arrived."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from ibrepro.errors import UserError

RETRY_S = 0.01  # an interrupt lost in a garbage-collection callback is raised again this much later


class StopRequest:
    """Set when the user asked training to stop; a second signal stops at once."""

    def __init__(self) -> None:
        self.requested = False

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True


class Interrupted(UserError):
    """Training stopped on request after writing a checkpoint."""

    def __init__(self, cell: str, epoch: int, started: bool = True):
        where = f"{cell} saved at epoch {epoch}" if started else f"before cell {cell}"
        super().__init__(f"interrupted: {where}; run the same command again to resume")


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """A StopRequest set by SIGINT or SIGTERM while the block runs (handlers restored after)."""
    stop = StopRequest()
    previous = {sig: signal.signal(sig, stop._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def interrupts_kept() -> Iterator[StopRequest]:
    """Within the block Ctrl-C raises KeyboardInterrupt and is recorded, so none is lost.

    A KeyboardInterrupt raised inside a garbage-collection callback (JAX registers one) cannot
    propagate: Python would print "Exception ignored ... KeyboardInterrupt" and go on, so the
    command would run to its end. Here it is raised again 10 ms later (SIGALRM), where it can
    stop the command; so is one that arrives while a module is being imported, where an
    exception could leave numpy or jaxlib half initialised (seen: ImportError, a segfault).
    """
    state = StopRequest()

    def handle(signum, frame) -> None:
        state.requested = True
        if _importing(frame):  # an exception would leave a module half made (numpy, jaxlib)
            signal.setitimer(signal.ITIMER_REAL, RETRY_S)
            return
        raise KeyboardInterrupt

    def hook(unraisable) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            signal.setitimer(signal.ITIMER_REAL, RETRY_S)
        else:
            previous_hook(unraisable)

    previous_hook, sys.unraisablehook = sys.unraisablehook, hook
    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGALRM)}
    try:
        yield state
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sys.unraisablehook = previous_hook


def _importing(frame) -> bool:
    """Whether a Python frame runs inside an import."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False
