"""Durable file replacement: what a kill, a power cut or a full disk cannot leave half-written.

A file is replaced by writing a temporary file beside it, fsyncing it, renaming it over the
old one and fsyncing the directory: a reader then finds the old file or the new one, whole.
"""

from __future__ import annotations

import os
from pathlib import Path


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


def write_atomically(path: Path, payload: bytes) -> None:
    """Replace `path` by `payload`; on OSError (disk full, ...) `path` is left as it was."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(payload)
        replace_durably(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
