"""Stopping training cleanly on SIGINT / SIGTERM: a flag the loop polls after each snapshot."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

from ibrepro.errors import UserError


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
