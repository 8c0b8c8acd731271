"""MNIST and Fashion-MNIST: 28×28 grey images flattened to 784 floats in [0, 1].

The test set is never used for training.

The four standard IDX files are looked for, in order, in: the `data.dir` directory, the
directory named by $IBREPRO_DATA_DIR (for both, first its `<dataset>/` subdirectory, then
itself), the download cache and, for Fashion-MNIST, Debian's /usr/share/datasets/fashion-mnist.
When none holds them all they are downloaded into the cache (`ibrepro.data.download`).
Every file is checked against its published md5 before use (`ibrepro.data.registry`); a
file that fails is an error naming it, never passed over for another copy.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ibrepro.data.download import cache_dir, download
from ibrepro.data.idx import gunzip, is_gzip, parse_idx
from ibrepro.data.registry import DatasetSpec, IdxFile, check_content, dataset_spec, find_file
from ibrepro.errors import UserError

DATA_DIR_ENV = "IBREPRO_DATA_DIR"

# Files whose md5 was checked in this process: (resolved path, size, mtime_ns, content md5).
_VERIFIED: set[tuple[str, int, int, str]] = set()


@dataclass(frozen=True, eq=False)
class ImageData:
    """A dataset's fixed split: x float32 (n, 784) in [0, 1], y int32 (n,); read-only arrays."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def search_dirs(name: str, data_dir: str | Path | None = None) -> list[Path]:
    """The directories looked in for dataset `name`, in order of precedence."""
    spec = dataset_spec(name)
    bases = [Path(b).expanduser() for b in (data_dir, os.environ.get(DATA_DIR_ENV)) if b]
    dirs = [d for base in bases for d in (base / name, base)]
    dirs += [cache_dir(name), *spec.system_dirs]
    return list(dict.fromkeys(dirs))


def _paths_in(directory: Path, spec: DatasetSpec) -> list[Path] | None:
    """The four files' paths if `directory` holds all of them, else None."""
    paths = [find_file(directory, f) for f in spec.files]
    return None if None in paths else paths


def _looked_in(directory: Path, spec: DatasetSpec) -> str:
    """`directory` for an error message, saying which files it lacks if it holds some."""
    missing = [f.name for f in spec.files if find_file(directory, f) is None]
    if len(missing) == len(spec.files):
        return str(directory)
    return f"{directory} (lacks {', '.join(missing)})"


def locate(
    name: str,
    data_dir: str | Path | None = None,
    fetch: Callable[[str, Path], list[Path]] | None = None,
) -> list[Path]:
    """Paths of dataset `name`'s four files, downloading them into the cache if needed.

    Returns the first directory of `search_dirs` holding all four files; otherwise calls
    `fetch(name, cache_dir(name))` (default `download`). UserError if that fails too.
    """
    spec = dataset_spec(name)
    dirs = search_dirs(name, data_dir)
    for directory in dirs:
        paths = _paths_in(directory, spec)
        if paths is not None:
            return paths
    try:
        return (download if fetch is None else fetch)(name, cache_dir(name))
    except UserError as exc:
        raise UserError(
            f"{name}: the IDX files are not in {'; '.join(_looked_in(d, spec) for d in dirs)}"
            f" and the download failed: {exc}. Put {', '.join(f.name for f in spec.files)}"
            f" in a directory and set {DATA_DIR_ENV} (or data.dir) to it"
        ) from None


def read_verified(path: Path, f: IdxFile) -> bytes:
    """The uncompressed content of the file at `path`, checked to be `f` (once per process)."""
    try:
        stat = path.stat()
        blob = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, f.raw_md5)
    if key in _VERIFIED:
        return gunzip(blob, str(path)) if is_gzip(blob) else blob
    content = check_content(blob, f, str(path))
    _VERIFIED.add(key)
    return content


def _images(raw: np.ndarray) -> np.ndarray:
    x = raw.reshape(len(raw), -1).astype(np.float32)
    x /= 255
    x.setflags(write=False)
    return x


def _labels(raw: np.ndarray) -> np.ndarray:
    y = raw.astype(np.int32)
    y.setflags(write=False)
    return y


def load(
    name: str,
    data_dir: str | Path | None = None,
    fetch: Callable[[str, Path], list[Path]] | None = None,
) -> ImageData:
    """Load dataset `name` ("mnist" or "fashion-mnist"), every file md5-checked.

    `data_dir` is the config's `data.dir`; `fetch` replaces `download` (see `locate`).
    """
    spec = dataset_spec(name)
    paths = locate(name, data_dir, fetch)
    x_train, y_train, x_test, y_test = (
        parse_idx(read_verified(path, f), str(path), f.magic)
        for path, f in zip(paths, spec.files, strict=True)
    )
    return ImageData(name, _images(x_train), _labels(y_train), _images(x_test), _labels(y_test))
