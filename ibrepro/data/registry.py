"""The published MNIST and Fashion-MNIST files: names, md5s, mirrors, and how a copy is recognised.

Each dataset has four IDX files. A copy is accepted when it is the published .gz (its md5),
or any gzip or plain file whose uncompressed content has the published content md5 (e.g.
Debian's re-compressed Fashion-MNIST files).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ibrepro.data.idx import IMAGES_MAGIC, LABELS_MAGIC, gunzip, is_gzip
from ibrepro.errors import UserError


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

    @property
    def pooch_registry(self) -> dict[str, str]:
        """The four .gz names with their published md5s, as pooch's registry wants them."""
        return {f.name: f"md5:{f.gz_md5}" for f in self.files}


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


def dataset_spec(name: str) -> DatasetSpec:
    """The table entry of dataset `name`; UserError for an unknown name."""
    try:
        return DATASETS[name]
    except KeyError:
        raise UserError(f"unknown image dataset {name!r}; known: {', '.join(DATASETS)}") from None


def find_file(directory: Path, f: IdxFile) -> Path | None:
    """`f` in `directory`, compressed or not, if there."""
    for path in (directory / f.name, directory / f.raw_name):
        if path.is_file():
            return path
    return None


def md5(blob: bytes) -> str:
    """The md5 hex digest of `blob`."""
    return hashlib.md5(blob, usedforsecurity=False).hexdigest()


def mismatch(source: str, f: IdxFile, got: str, expected: str) -> UserError:
    """The error for `source` having md5 `got` where `f` has `expected`, saying what it is."""
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
        digest = md5(blob)
        if digest == f.gz_md5:
            return gunzip(blob, source)
        if digest in _KNOWN_MD5:
            raise mismatch(source, f, digest, f.gz_md5)
        try:
            content = gunzip(blob, source)
        except UserError:
            raise mismatch(source, f, digest, f.gz_md5) from None
    else:
        content = blob
    digest = md5(content)
    if digest != f.raw_md5:
        raise mismatch(source, f, digest, f"{f.raw_md5} uncompressed")
    return content
