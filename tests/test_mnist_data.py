"""MNIST data layer: IDX parsing, md5 checks, search order, download (subsets: test_subsets.py).

Uses the real MNIST files in ../shared/data/mnist (or $IBREPRO_DATA_DIR). Never touches
the network: downloads go through pooch from file:// URLs, or from a fake web standing in
for `requests.get` under pooch's own HTTP downloader.
"""

from __future__ import annotations

import functools
import gzip
import io
import os
import re
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from helpers import mnist_data_dir

from ibrepro.data import download, mnist, registry
from ibrepro.data.idx import IMAGES_MAGIC, LABELS_MAGIC, parse_idx, read_idx
from ibrepro.errors import UserError

NAMES = [f.name for f in registry.DATASETS["mnist"].files]
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
OFFLINE = "Failed to resolve 'mirror' ([Errno -2] Name or service not known)"


DATA = mnist_data_dir()
pytestmark = pytest.mark.skipif(DATA is None, reason="MNIST files not found (../shared/data)")


class FakeWeb:
    """Stands in for `requests.get`: serves `contents` (url -> bytes), 404 for other URLs.

    Offline until `contents` is set. Each entry of `failures` answers one request first:
    an int is that HTTP status, an exception is raised. Records the URLs asked for, the
    timeouts passed, and the waits between pooch's retries.
    """

    def __init__(self) -> None:
        self.contents: dict[str, bytes] | None = None
        self.failures: list[int | Exception] = []
        self.calls: list[str] = []
        self.timeouts: list[float] = []
        self.waits: list[float] = []

    def get(self, url: str, timeout: float, **kwargs) -> requests.Response:
        self.calls.append(url)
        self.timeouts.append(timeout)
        if self.contents is None:
            raise requests.ConnectionError(OFFLINE)
        failure = self.failures.pop(0) if self.failures else None
        if isinstance(failure, Exception):
            raise failure
        body = self.contents.get(url)
        status = failure or (200 if body is not None else 404)
        response = requests.Response()
        response.url, response.status_code = url, status
        response.reason = {200: "OK", 404: "Not Found"}.get(status, "Service Unavailable")
        response.raw = io.BytesIO(body if status == 200 else b"")
        response.headers["content-length"] = str(len(body or b""))
        return response


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No user data dir, and a cache dir of the test's own."""
    monkeypatch.delenv("IBREPRO_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture(autouse=True)
def web(monkeypatch) -> FakeWeb:
    """No test reaches the network: requests.get is a FakeWeb (offline unless told)."""
    fake = FakeWeb()
    monkeypatch.setattr(requests, "get", fake.get)
    monkeypatch.setattr(time, "sleep", fake.waits.append)  # pooch's wait between retries
    return fake


@pytest.fixture(scope="module")
def data() -> mnist.ImageData:
    return mnist.load("mnist", DATA)


def copy_data(dest: Path, replace: dict[str, bytes] | None = None) -> Path:
    """A data dir linking to the real files, with some files' bytes replaced."""
    dest.mkdir(parents=True)
    for name in NAMES:
        if replace and name in replace:
            (dest / name).write_bytes(replace[name])
        else:
            (dest / name).symlink_to(DATA / name)
    return dest


def flipped(name: str, at: int) -> bytes:
    blob = bytearray((DATA / name).read_bytes())
    blob[at] ^= 0xFF
    return bytes(blob)


# --- IDX parsing ---------------------------------------------------------------------


def idx_bytes(type_code: int, array: np.ndarray, dtype: str) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dtype).tobytes()


def test_idx_roundtrip_plain_and_gzip(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    ints = np.array([[-70000, 1], [258, 2**31 - 1]])
    (tmp_path / "a").write_bytes(idx_bytes(0x08, images, "u1"))
    (tmp_path / "b.gz").write_bytes(gzip.compress(idx_bytes(0x0C, ints, ">i4")))
    np.testing.assert_array_equal(read_idx(tmp_path / "a", IMAGES_MAGIC), images)
    np.testing.assert_array_equal(read_idx(tmp_path / "b.gz"), ints)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b[:-1], "truncated"),
        (lambda b: b[:10], "truncated"),
        (lambda b: b + b"\0", "malformed"),
        (lambda b: b"\1" + b[1:], "not an IDX"),
        (lambda b: b[:2] + b"\x42" + b[3:], "not an IDX"),
    ],
)
def test_idx_malformed(mutate, message):
    good = idx_bytes(0x08, np.zeros((2, 3, 4)), "u1")
    with pytest.raises(UserError, match=message):
        parse_idx(mutate(good), "f.idx")


def test_idx_magic_checked_and_bad_gzip(tmp_path):
    labels = idx_bytes(0x08, np.arange(5), "u1")
    assert int.from_bytes(labels[:4], "big") == LABELS_MAGIC
    with pytest.raises(UserError, match="2049, expected 2051"):
        parse_idx(labels, "f", IMAGES_MAGIC)
    (tmp_path / "c.gz").write_bytes(gzip.compress(labels)[:-5])
    with pytest.raises(UserError, match="c.gz.*gzip"):
        read_idx(tmp_path / "c.gz")


# --- the real files ------------------------------------------------------------------


def test_shapes_types_and_range(data):
    assert data.x_train.shape == (60000, 784) and data.x_test.shape == (10000, 784)
    assert data.y_train.shape == (60000,) and data.y_test.shape == (10000,)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int32
    for x in (data.x_train, data.x_test):
        assert x.min() == 0.0 and x.max() == 1.0
    assert not data.x_train.flags.writeable


def test_flattening_matches_raw_images(data):
    raw = read_idx(DATA / "t10k-images-idx3-ubyte.gz", IMAGES_MAGIC)
    assert raw.shape == (10000, 28, 28)
    np.testing.assert_allclose(data.x_test.reshape(10000, 28, 28) * 255, raw, atol=1e-4)


def test_labels(data):
    assert np.bincount(data.y_train).tolist() == TRAIN_COUNTS
    assert np.bincount(data.y_test).tolist() == TEST_COUNTS
    assert data.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]


@pytest.mark.parametrize(
    "name, at", [("train-labels-idx1-ubyte.gz", 20000), ("t10k-images-idx3-ubyte.gz", 800000)]
)
def test_corrupt_file_rejected(tmp_path, name, at):
    directory = copy_data(tmp_path / "d", {name: flipped(name, at)})
    with pytest.raises(UserError, match="md5") as info:
        mnist.load("mnist", directory)
    assert str(directory / name) in str(info.value)


def test_truncated_file_rejected(tmp_path):
    name = "t10k-labels-idx1-ubyte.gz"
    directory = copy_data(tmp_path / "d", {name: (DATA / name).read_bytes()[:2000]})
    with pytest.raises(UserError, match=f"{re.escape(str(directory / name))}: md5 .* truncated"):
        mnist.load("mnist", directory)


def test_recompressed_and_uncompressed_copies_accepted(tmp_path):
    f = registry.DATASETS["mnist"].test_labels
    content = gzip.decompress((DATA / f.name).read_bytes())
    recompressed = gzip.compress(content, compresslevel=1, mtime=0)
    assert registry.md5(recompressed) != f.gz_md5
    assert registry.check_content(recompressed, f, "x") == content
    assert registry.check_content(content, f, "x") == content
    with pytest.raises(UserError, match="uncompressed"):
        registry.check_content(content[:-1], f, "x")


def test_another_datasets_file_is_named(tmp_path):
    with pytest.raises(UserError, match="fashion-mnist's .* it is mnist's train-images"):
        mnist.load("fashion-mnist", DATA)


def test_verification_redone_when_file_changes(tmp_path):
    f = registry.DATASETS["mnist"].test_labels
    path = tmp_path / f.name
    path.write_bytes((DATA / f.name).read_bytes())
    assert len(mnist.read_verified(path, f)) == 10008
    path.write_bytes(flipped(f.name, 100))  # same size
    os.utime(path, ns=(1, 1))
    with pytest.raises(UserError, match="md5"):
        mnist.read_verified(path, f)


# --- where files are looked for ------------------------------------------------------


def test_search_order(tmp_path, monkeypatch):
    monkeypatch.setenv("IBREPRO_DATA_DIR", str(tmp_path / "env"))
    assert mnist.search_dirs("fashion-mnist", tmp_path / "opt") == [
        tmp_path / "opt/fashion-mnist",
        tmp_path / "opt",
        tmp_path / "env/fashion-mnist",
        tmp_path / "env",
        tmp_path / "cache/ibrepro/fashion-mnist",
        Path("/usr/share/datasets/fashion-mnist"),
    ]
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert mnist.search_dirs("mnist")[-1] == tmp_path / "home/.cache/ibrepro/mnist"


def test_data_dir_before_env_and_corrupt_never_skipped(tmp_path, monkeypatch):
    name = "train-labels-idx1-ubyte.gz"
    good = copy_data(tmp_path / "good")
    bad = copy_data(tmp_path / "bad", {name: flipped(name, 500)})
    monkeypatch.setenv("IBREPRO_DATA_DIR", str(bad))
    assert np.bincount(mnist.load("mnist", good).y_train).tolist() == TRAIN_COUNTS
    monkeypatch.setenv("IBREPRO_DATA_DIR", str(good))
    with pytest.raises(UserError, match=f"{re.escape(str(bad / name))}: md5"):
        mnist.load("mnist", bad)


def test_missing_everywhere_says_where_it_looked(tmp_path, web):
    missing = tmp_path / "nope"
    partial = copy_data(tmp_path / "partial")
    (partial / NAMES[3]).unlink()
    with pytest.raises(UserError) as info:
        mnist.load("mnist", missing)  # downloads through pooch; the fake web is offline
    assert web.calls == [m + NAMES[0] for m in registry.DATASETS["mnist"].mirrors]
    message = str(info.value)
    assert "\n" not in message
    for expected in (str(missing), str(tmp_path / "cache/ibrepro/mnist"), "download failed",
                     "Name or service not known", "IBREPRO_DATA_DIR", "data.dir", NAMES[0]):
        assert expected in message
    with pytest.raises(UserError, match=re.escape(f"{partial} (lacks {NAMES[3]})")):
        mnist.load("mnist", partial, fetch=functools.partial(download.download, mirrors=()))


def test_unknown_dataset():
    with pytest.raises(UserError, match="unknown image dataset 'emnist'"):
        mnist.load("emnist")


# --- download ------------------------------------------------------------------------


def test_registry_holds_the_published_md5s():
    spec = registry.DATASETS["mnist"]
    published = ["f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                 "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"]  # DESIGN §6
    assert spec.pooch_registry == {name: f"md5:{md5}" for name, md5 in zip(NAMES, published)}
    assert [registry.md5((DATA / name).read_bytes()) for name in NAMES] == published


def test_download_from_file_urls_into_cache(tmp_path, web):
    mirrors = ((tmp_path / "no-such-mirror").as_uri() + "/", DATA.as_uri() + "/")
    data = mnist.load("mnist", fetch=functools.partial(download.download, mirrors=mirrors))
    cache = tmp_path / "cache/ibrepro/mnist"
    assert download.cache_dir("mnist") == cache
    assert sorted(p.name for p in cache.iterdir()) == sorted(NAMES)
    for name in NAMES:
        assert (cache / name).read_bytes() == (DATA / name).read_bytes()
    assert np.bincount(data.y_test).tolist() == TEST_COUNTS
    assert web.calls == []

    def no_fetch(name, dest):
        raise AssertionError("the cache should have been used")

    assert mnist.locate("mnist", fetch=no_fetch) == [cache / name for name in NAMES]


def test_download_skips_bad_mirror_and_leaves_no_bad_file(tmp_path, web):
    for name in NAMES[:3]:  # only the test labels are missing
        (tmp_path / name).symlink_to(DATA / name)
    name = NAMES[3]
    good, bad = f"http://good/{name}", f"http://bad/{name}"
    web.contents = {good: (DATA / name).read_bytes(), bad: flipped(name, 3000)}
    paths = download.download("mnist", tmp_path, mirrors=["http://bad", "http://good/"])
    assert web.calls == [bad, good]  # a bad file is not retried on the same mirror
    assert paths[3] == tmp_path / name and paths[3].read_bytes() == web.contents[good]
    (tmp_path / name).unlink()
    with pytest.raises(UserError, match=f"{re.escape(bad)}: downloaded bytes: md5"):
        download.download("mnist", tmp_path, mirrors=["http://bad"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(NAMES[:3])


def test_download_retries_transient_errors_only(tmp_path, web):
    for name in NAMES[:3]:
        (tmp_path / name).symlink_to(DATA / name)
    url = f"http://m/{NAMES[3]}"
    web.contents = {url: (DATA / NAMES[3]).read_bytes()}
    web.failures = [503, requests.Timeout("slow")]
    download.download("mnist", tmp_path, mirrors=["http://m"], retries=2)
    assert web.calls == [url] * 3 and len(web.waits) == 2
    (tmp_path / NAMES[3]).unlink()
    web.calls.clear()
    with pytest.raises(UserError, match="404"):
        download.download("mnist", tmp_path, mirrors=["http://x"], retries=2)
    assert web.calls == [f"http://x/{NAMES[3]}"]
    web.calls.clear()
    web.failures = [503, 503]
    with pytest.raises(UserError, match=f"{re.escape(url)}: 503"):
        download.download("mnist", tmp_path, mirrors=["http://m"], retries=1)
    assert web.calls == [url] * 2  # retries=1: two tries in all


def test_failing_mirrors_give_one_clear_line(tmp_path, web):
    with pytest.raises(UserError) as info:
        download.download("mnist", tmp_path / "c")
    mirrors = registry.DATASETS["mnist"].mirrors
    assert web.calls == [m + NAMES[0] for m in mirrors]  # first file fails: no further files tried
    assert web.timeouts == [download.DOWNLOAD_TIMEOUT] * len(mirrors)
    message = str(info.value)
    assert "\n" not in message and all(url in message for url in web.calls)
    assert list((tmp_path / "c").iterdir()) == []
