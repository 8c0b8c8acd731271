"""One writer per cell file: a `filelock` lock beside it, and a check that no reader holds it.

The lock is an OS lock on `<cell>.h5.lock` (released by the OS when its holder dies, so a
stale lock never blocks). Readers open run files with HDF5's own shared lock; a writer that
would delete or rewrite a file checks that none is held.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from ibrepro.errors import UserError
from ibrepro.train.runfile import in_use_message


def lock_path(run_path: Path) -> Path:
    return run_path.with_name(run_path.name + ".lock")


@contextmanager
def cell_lock(run_path: Path) -> Iterator[None]:
    """Hold the cell's writer lock, or raise UserError naming the process that holds it."""
    path = lock_path(run_path)
    try:
        holder = path.read_text().strip()
    except OSError:
        holder = ""
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        who = f" (pid {holder})" if holder.isdigit() else ""
        raise UserError(f"{run_path} is being trained by another process{who}; "
                        "wait for it to finish") from None
    except OSError as exc:
        raise UserError(f"cannot lock {run_path} ({exc.strerror or exc})") from None
    try:
        try:
            path.write_text(str(os.getpid()))
        except OSError:
            pass  # naming the holder is a courtesy
        yield
    finally:
        lock.release()


def check_not_open(run_path: Path, exclusive: bool = True) -> None:
    """UserError if another process holds `run_path` open through HDF5's file lock: any
    holder when `exclusive` (before deleting it), else only a writer (before writing to it:
    readers may keep reading while training continues)."""
    try:
        fd = os.open(run_path, os.O_RDONLY)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UserError(f"cannot open {run_path} ({exc.strerror})") from None
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except OSError:
        raise UserError(in_use_message(run_path)) from None
    finally:
        os.close(fd)  # closing releases a lock we took
