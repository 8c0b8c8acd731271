"""MNIST and Fashion-MNIST: 28×28 grey images flattened to 784 floats in [0, 1]; the test set is never used for training.

The four standard IDX files are looked for, in order, in: the `data.dir` directory, the
directory named by $IBREPRO_DATA_DIR (for both, first its `<dataset>/` subdirectory, then
itself), the cache ($XDG_CACHE_HOME or ~/.cache, then `ibrepro/<dataset>`) and, for
Fashion-MNIST, Debian's /usr/share/datasets/fashion-mnist. When none holds them they are
downloaded from public mirrors into the cache. Every file's md5 is checked before use: the
published .gz md5, or for a re-compressed or uncompressed copy the md5 of its content.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ibrepro.data.idx import IMAGES_MAGIC, LABELS_MAGIC, gunzip, is_gzip, parse_idx
from ibrepro.errors import UserError

DATA_DIR_ENV = "IBREPRO_DATA_DIR"
DOWNLOAD_TIMEOUT = 15.0  # seconds without data before a mirror counts as failed
_CHUNK = 1 << 20
# What a failed download attempt raises (UserError: the bytes are not the published file).
_FETCH_ERRORS = (OSError, http.client.HTTPException, ValueError, UserError)


@dataclass(frozen=True)
class IdxFile:
    """One published file: its dataset, name, and md5 of the .gz and of its content."""

    dataset: str
    name: str
    gz_md5: str
    raw_md5: str
    magic: int

    @property
    def raw_name(self) -> str:
        """The name of the uncompressed file."""
        return self.name.removesuffix(".gz")


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset's four files come from and what they must hash to."""

    name: str
    train_images: IdxFile
    train_labels: IdxFile
    test_images: IdxFile
    test_labels: IdxFile
    mirrors: tuple[str, ...]
    system_dirs: tuple[Path, ...] = ()

    @property
    def files(self) -> tuple[IdxFile, ...]:
        """The four files: train images, train labels, test images, test labels."""
        return (self.train_images, self.train_labels, self.test_images, self.test_labels)


def _files(dataset: str, md5s: Sequence[tuple[str, str]]) -> dict[str, IdxFile]:
    """The four standard IdxFiles given their (gz md5, content md5) in table order."""
    names = ("train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1")
    keys = ("train_images", "train_labels", "test_images", "test_labels")
    magics = (IMAGES_MAGIC, LABELS_MAGIC, IMAGES_MAGIC, LABELS_MAGIC)
    return {
        key: IdxFile(dataset, f"{name}-ubyte.gz", gz, raw, magic)
        for key, name, (gz, raw), magic in zip(keys, names, md5s, magics, strict=True)
    }


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        **_files("mnist", [
            ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "6bbc9ace898e44ae57da46a324031adb"),
            ("d53e105ee54ea40749a09fcbcd1e9432", "a25bea736e30d166cdddb491f175f624"),
            ("9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea"),
            ("ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637"),
        ]),
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        **_files("fashion-mnist", [
            ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
            ("25c81989df183df01b3e8a0aad5dffbe", "9018921c3c673c538a1fc5bad174d6f9"),
            ("bef4ecab320f06d8554ea6380940ec79", "8181f5470baa50b63fa0f6fddb340f0a"),
            ("bb300cfdad3c16e7a12a480ee83cd310", "15d484375f8d13e6eb1aabb0c3f46965"),
        ]),
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
        ),
        system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
    ),
}

# md5 -> what file it is, to say what a wrong file actually holds.
_KNOWN_MD5 = {
    md5: f"{f.dataset}'s {name}"
    for spec in DATASETS.values()
    for f in spec.files
    for md5, name in ((f.gz_md5, f.name), (f.raw_md5, f"{f.raw_name} (uncompressed)"))
}

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


def dataset_spec(name: str) -> DatasetSpec:
    """The table entry of dataset `name`; UserError for an unknown name."""
    try:
        return DATASETS[name]
    except KeyError:
        raise UserError(f"unknown image dataset {name!r}; known: {', '.join(DATASETS)}") from None


def cache_dir(name: str) -> Path:
    """The download cache of dataset `name`: $XDG_CACHE_HOME (or ~/.cache)/ibrepro/<name>."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ibrepro" / name


def search_dirs(name: str, data_dir: str | Path | None = None) -> list[Path]:
    """The directories looked in for dataset `name`, in order of precedence."""
    spec = dataset_spec(name)
    bases = [Path(b).expanduser() for b in (data_dir, os.environ.get(DATA_DIR_ENV)) if b]
    dirs = [d for base in bases for d in (base / name, base)]
    dirs += [cache_dir(name), *spec.system_dirs]
    return list(dict.fromkeys(dirs))


def _find(directory: Path, f: IdxFile) -> Path | None:
    """`f` in `directory`, compressed or not, if there."""
    for path in (directory / f.name, directory / f.raw_name):
        if path.is_file():
            return path
    return None


def _paths_in(directory: Path, spec: DatasetSpec) -> list[Path] | None:
    """The four files' paths if `directory` holds all of them, else None."""
    paths = [_find(directory, f) for f in spec.files]
    return None if None in paths else paths


def _looked_in(directory: Path, spec: DatasetSpec) -> str:
    """`directory` for an error message, saying which files it lacks if it holds some."""
    missing = [f.name for f in spec.files if _find(directory, f) is None]
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


def _md5(blob: bytes) -> str:
    return hashlib.md5(blob, usedforsecurity=False).hexdigest()


def _mismatch(source: str, f: IdxFile, got: str, expected: str) -> UserError:
    known = _KNOWN_MD5.get(got)
    what = f"it is {known}" if known else "the file is corrupt or truncated"
    return UserError(
        f"{source}: md5 {got} does not match {f.dataset}'s {f.name} ({expected}); {what}:"
        " replace it with a good copy"
    )


def check_content(blob: bytes, f: IdxFile, source: str) -> bytes:
    """The uncompressed content of `blob` if it is the published file `f`, else UserError.

    Accepts the published .gz (its md5), or any gzip or plain file whose content has the
    published content md5 (e.g. Debian's re-compressed Fashion-MNIST files).
    """
    if is_gzip(blob):
        digest = _md5(blob)
        if digest == f.gz_md5:
            return gunzip(blob, source)
        if digest in _KNOWN_MD5:
            raise _mismatch(source, f, digest, f.gz_md5)
        try:
            content = gunzip(blob, source)
        except UserError:
            raise _mismatch(source, f, digest, f.gz_md5) from None
    else:
        content = blob
    digest = _md5(content)
    if digest != f.raw_md5:
        raise _mismatch(source, f, digest, f"{f.raw_md5} uncompressed")
    return content


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


def _is_transient(exc: BaseException) -> bool:
    """Whether a failed request is worth retrying on the same mirror."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code == 429 or exc.code >= 500
    if isinstance(exc, urllib.error.URLError):
        exc = exc.reason
    return isinstance(exc, (TimeoutError, ConnectionError, http.client.IncompleteRead))


def _stream(response, out, label: str) -> None:
    """Copy `response` to `out` in chunks behind a progress bar (shown on a terminal)."""
    length = response.headers.get("Content-Length")
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    console = Console(stderr=True)
    bar = Progress(*columns, console=console, transient=True, disable=not console.is_terminal)
    with bar as progress:
        task = progress.add_task(f"downloading {label}", total=int(length) if length else None)
        while chunk := response.read(_CHUNK):
            out.write(chunk)
            progress.advance(task, len(chunk))


def _fetch_once(url: str, f: IdxFile, dest: Path, opener: Callable, timeout: float) -> Path:
    """Download `url` to a temp file in `dest`, check it is `f`, then rename it into place.

    Nothing is left in `dest` unless the file is good.
    """
    fd, tmp_name = tempfile.mkstemp(prefix=f".{f.name}.", suffix=".part", dir=dest)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, opener(url, timeout=timeout) as response:
            _stream(response, out, f.name)
        blob = tmp.read_bytes()
        check_content(blob, f, "downloaded bytes")
        target = dest / (f.name if is_gzip(blob) else f.raw_name)
        os.replace(tmp, target)
        return target
    finally:
        tmp.unlink(missing_ok=True)


def _retry(call: Callable[[], Path], attempts: int, backoff: float) -> Path:
    """call(), repeated after a transient failure, at most `attempts` times in all."""
    for attempt in range(1, attempts):
        try:
            return call()
        except _FETCH_ERRORS as exc:
            if not _is_transient(exc):
                raise
        time.sleep(backoff * 2 ** (attempt - 1))
    return call()


def _from_mirrors(
    f: IdxFile,
    dest: Path,
    mirrors: Sequence[str],
    opener: Callable,
    timeout: float,
    attempts: int,
    backoff: float,
) -> Path:
    """Download `f` into `dest` from the first mirror that serves it intact."""
    reasons = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + f.name
        try:
            return _retry(lambda: _fetch_once(url, f, dest, opener, timeout), attempts, backoff)
        except _FETCH_ERRORS as exc:
            reasons.append(f"{url}: {' '.join(str(exc).split())}")
    raise UserError(f"{f.name}: {'; '.join(reasons) or 'no mirror to try'}")


def download(
    name: str,
    dest: Path,
    *,
    mirrors: Sequence[str] | None = None,
    opener: Callable = urllib.request.urlopen,
    timeout: float = DOWNLOAD_TIMEOUT,
    attempts: int = 2,
    backoff: float = 1.0,
) -> list[Path]:
    """Fetch dataset `name`'s files missing from `dest` and return the four paths.

    Each file is tried on each mirror (default: the dataset's) in turn; a timeout,
    dropped connection or HTTP 5xx/429 is retried, `attempts` tries in all per mirror,
    `backoff` seconds apart (doubling). `opener(url, timeout=...)` defaults to urllib's
    urlopen. UserError (one line) if a file cannot be had intact from any mirror.
    """
    spec = dataset_spec(name)
    mirrors = spec.mirrors if mirrors is None else tuple(mirrors)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {dest}: {exc.strerror or exc}") from None
    return [
        _find(dest, f) or _from_mirrors(f, dest, mirrors, opener, timeout, attempts, backoff)
        for f in spec.files
    ]


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


def class_quotas(counts: Sequence[int], n: int) -> np.ndarray:
    """How many of `n` picks each class gets: its share n·c/N rounded so they sum to n.

    Floors of the exact shares, plus one for the classes with the largest remainders
    (ties to the lower class). Integer arithmetic, so the same counts always get the
    same quotas.
    """
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    scaled = counts * n
    quotas = scaled // total
    by_remainder = np.argsort(-(scaled % total), kind="stable")
    quotas[by_remainder[: n - int(quotas.sum())]] += 1
    return quotas


def stratified_subset(
    labels: np.ndarray, fraction_or_count: float | int, rng: np.random.Generator
) -> np.ndarray:
    """Sorted indices of a class-stratified random subset of `labels`.

    An int is the subset size; a float in (0, 1] the fraction of all rows (rounded).
    Each class gets `class_quotas` of the total, drawn without replacement by `rng`.
    """
    labels = np.asarray(labels)
    n = _subset_size(fraction_or_count, labels.size)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    members = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])
    picks = [
        rng.choice(rows, size=k, replace=False)
        for rows, k in zip(members, class_quotas(counts, n), strict=True)
    ]
    return np.sort(np.concatenate(picks))


def _subset_size(fraction_or_count: float | int, total: int) -> int:
    """The number of rows a subset size or fraction asks for; UserError if out of range."""
    if isinstance(fraction_or_count, (int, np.integer)) and not isinstance(fraction_or_count, bool):
        n = int(fraction_or_count)
        if not 1 <= n <= total:
            raise UserError(f"subset size {n} is not between 1 and the {total} rows")
        return n
    if isinstance(fraction_or_count, (float, np.floating)) and 0 < fraction_or_count <= 1:
        n = round(float(fraction_or_count) * total)
        if n < 1:
            raise UserError(f"fraction {fraction_or_count} of {total} rows selects no row")
        return n
    raise UserError(f"subset fraction {fraction_or_count!r} is not a number in (0, 1]")


def train_subsets(labels: np.ndarray, fraction: float, seeds: int, base_seed: int) -> np.ndarray:
    """(seeds, n) sorted training indices, one stratified subset per seed, all of one size.

    Seed s draws with np.random.default_rng([base_seed, s]); n = round(fraction · N).
    """
    number = isinstance(fraction, (int, float)) and not isinstance(fraction, bool)
    if not number or not 0 < fraction <= 1:
        raise UserError(f"train.train_fraction must be a number in (0, 1], got {fraction!r}")
    n = round(fraction * len(labels))
    if n < 1:
        raise UserError(f"train.train_fraction = {fraction} selects no training image")
    return np.stack(
        [stratified_subset(labels, n, np.random.default_rng([base_seed, s])) for s in range(seeds)]
    )


def eval_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """(n,) sorted indices of a stratified subset of `labels` shared by all seeds."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= len(labels):
        raise UserError(f"log.eval_samples must be an integer in 1..{len(labels)}, got {n!r}")
    return stratified_subset(labels, int(n), np.random.default_rng(seed))
