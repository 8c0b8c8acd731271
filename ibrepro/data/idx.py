"""IDX files (the MNIST format): gzip detection and parsing.

An IDX file is a 4-byte magic number — two zero bytes, a type code, the number of
dimensions — then one big-endian uint32 per dimension, then the values in C order.
MNIST's images have magic 2051 (uint8, 3 dims), its labels 2049 (uint8, 1 dim).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ibrepro.errors import UserError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049

_GZIP_MAGIC = b"\x1f\x8b"
_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def is_gzip(blob: bytes) -> bool:
    """Whether the bytes start with the gzip magic number."""
    return blob[:2] == _GZIP_MAGIC


def gunzip(blob: bytes, source: str) -> bytes:
    """Decompress gzip bytes; UserError naming `source` if they are corrupt or truncated."""
    try:
        return gzip.decompress(blob)
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(f"{source}: corrupt or truncated gzip data ({exc})") from None


def parse_idx(buf: bytes, source: str, magic: int | None = None) -> np.ndarray:
    """The array held by uncompressed IDX bytes (a read-only view of `buf`).

    `magic`, if given, is the magic number the file must have (e.g. IMAGES_MAGIC).
    Raises UserError naming `source` for a malformed or truncated file.
    """
    if len(buf) < 4 or buf[0] != 0 or buf[1] != 0 or buf[2] not in _DTYPES:
        raise UserError(f"{source}: not an IDX file (bad magic number)")
    found = int.from_bytes(buf[:4], "big")
    if magic is not None and found != magic:
        raise UserError(f"{source}: IDX magic number is {found}, expected {magic}")
    ndim = buf[3]
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise UserError(f"{source}: truncated IDX file (header cut short)")
    dims = tuple(int.from_bytes(buf[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = _DTYPES[buf[2]]
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(buf) != expected:
        state = "truncated" if len(buf) < expected else "malformed"
        raise UserError(
            f"{source}: {state} IDX file ({len(buf)} bytes, dims {dims} need {expected})"
        )
    return np.frombuffer(buf, dtype=dtype, offset=header).reshape(dims)


def read_idx(path: str | Path, magic: int | None = None) -> np.ndarray:
    """Read an IDX file, gzip-compressed or not (detected from its first bytes)."""
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    if is_gzip(blob):
        blob = gunzip(blob, str(path))
    return parse_idx(blob, str(path), magic)
