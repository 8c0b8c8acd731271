"""Durable, checked file writing: what a kill, a power cut or a full disk cannot leave half-written.

A file is replaced by writing a temporary file beside it, fsyncing it, reading it back,
renaming it over the old one and fsyncing the directory: a reader then finds the old file or
the new one, whole. Every write error becomes an OSError raised where the write was asked
for, including the ones h5py can only print as "Exception ignored" (`reported_writes`);
`failure_reason` turns any of them into a few words for a one-line message.
"""

from __future__ import annotations

import errno
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ibrepro.errors import UserError

_ERRNO_IN_TEXT = re.compile(r"errno = (\d+)")


def fsync_path(path: Path) -> None:
    """Flush a file's data, or a directory's entries (a rename or unlink in it), to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(tmp: Path, path: Path) -> None:
    """Move a fully written `tmp` over `path` durably (`tmp` fsynced first)."""
    fsync_path(tmp)
    os.replace(tmp, path)
    fsync_path(path.parent)


def temporary_name(path: Path, suffix: str = ".tmp") -> Path:
    """The temporary file beside `path`; a name too long for the file system is shortened
    (the temporary name never decides whether `path` itself can be written)."""
    name = path.name + suffix
    if len(os.fsencode(name)) > 255:
        name = "." + os.fsencode(path.name)[:200].decode(errors="ignore") + f".{os.getpid()}{suffix}"
    return path.with_name(name)


def write_atomically(path: Path, payload: bytes) -> None:
    """Replace `path` by `payload`, read back before the rename; on OSError (disk full, ...)
    `path` is left as it was and the temporary file is removed."""
    tmp = temporary_name(path)
    try:
        with open(tmp, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        if tmp.read_bytes() != payload:
            raise OSError(errno.EIO, "the written file does not read back as written", str(tmp))
        replace_durably(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def write_file(path: Path, payload: bytes) -> None:
    """`write_atomically`, any failure a one-line UserError naming the file (left as it was)."""
    try:
        write_atomically(path, payload)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {failure_reason(exc)}; the file there is unchanged") from None


@contextmanager
def reported_writes(path: Path) -> Iterator[None]:
    """Raise, at the end of the block, the write errors h5py meets while it frees an object
    (a chunk written when a dataset closes, metadata at a file's close): Python would only
    print them as "Exception ignored", and the file would look whole. Raised as OSError."""
    caught: list[BaseException] = []
    previous = sys.unraisablehook, sys.excepthook  # Cython prints a traceback through the second

    def keep(value: BaseException, otherwise) -> None:
        if isinstance(value, (OSError, RuntimeError)):  # h5py's kinds of write error
            caught.append(value)
        else:
            otherwise()

    sys.unraisablehook = lambda raised: keep(raised.exc_value, lambda: previous[0](raised))
    sys.excepthook = lambda kind, value, trace: keep(value, lambda: previous[1](kind, value, trace))
    try:
        yield
    finally:
        sys.unraisablehook, sys.excepthook = previous
    if caught:
        raise OSError(_errno_of(caught[0]) or errno.EIO, failure_reason(caught[0]), str(path))


def _errno_of(exc: BaseException) -> int | None:
    match = _ERRNO_IN_TEXT.search(str(exc))
    if match:
        return int(match.group(1))
    code = getattr(exc, "errno", None)
    return code if isinstance(code, int) and code > 0 else None


def failure_reason(exc: BaseException) -> str:
    """A few words for why a write failed ("No space left on device"), from an OSError or
    from HDF5's long error text (which names the system errno inside)."""
    match = _ERRNO_IN_TEXT.search(str(exc))
    if match:
        return os.strerror(int(match.group(1)))
    strerror = getattr(exc, "strerror", None)
    if isinstance(strerror, str) and strerror:
        return strerror
    text = str(exc).splitlines()[0] if str(exc) else ""
    return re.sub(r"\s*\(.*", "", text).strip() or exc.__class__.__name__
