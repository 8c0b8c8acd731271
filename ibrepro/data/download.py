"""Downloading the published IDX files through pooch: mirrors in turn, retries, a progress bar.

pooch keeps the cache (`pooch.os_cache`), checks each download against the registry's md5
into a temporary file and moves it into place only when it matches, retries failed
downloads (`retry_if_failed`, waiting 1 s, 2 s, ... between tries) and draws the progress
bar (tqdm, on a terminal). Ours: trying the dataset's mirrors in turn, `file://` mirrors
(pooch knows http(s), ftp, sftp and doi only), and telling a passing failure (retried on the
same mirror) from a lasting one (the next mirror at once): timeouts, broken transfers and
HTTP 5xx/429 are retried; an unknown host, a refused connection, other HTTP errors and a
file that is not the published one are not.
"""

from __future__ import annotations

import shutil
import sys
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import pooch
import requests

from ibrepro.data.registry import IdxFile, dataset_spec, find_file, md5, mismatch
from ibrepro.errors import UserError

DOWNLOAD_TIMEOUT = 15.0  # seconds without data before a request counts as failed
RETRIES = 2  # further tries on the same mirror after a passing failure


def cache_dir(name: str) -> Path:
    """The download cache of dataset `name`: pooch's cache of ibrepro (~/.cache/ibrepro on
    Linux, honouring $XDG_CACHE_HOME), then `<name>`."""
    return pooch.os_cache("ibrepro") / name


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line."""
    return " ".join(str(exc).split())


def _copy_local(url: str, output_file: str, _pooch: pooch.Pooch | None) -> None:
    """pooch downloader for file:// URLs: copy the file."""
    shutil.copyfile(urllib.request.url2pathname(urllib.parse.urlparse(url).path), output_file)


def _http(url: str, output_file: str, owner: pooch.Pooch | None) -> None:
    """pooch's HTTP downloader; a lasting failure becomes a UserError, which pooch does not retry."""
    fetch = pooch.HTTPDownloader(progressbar=sys.stderr.isatty(), timeout=DOWNLOAD_TIMEOUT)
    try:
        fetch(url, output_file, owner)
    except requests.HTTPError as exc:
        status = exc.response.status_code
        if status == 429 or status >= 500:
            raise
        raise UserError(f"HTTP {status} {exc.response.reason}") from None
    except requests.ConnectionError as exc:
        if isinstance(exc, requests.Timeout):
            raise
        raise UserError(_one_line(exc)) from None


def _downloader(f: IdxFile):
    """A pooch downloader for `f` that refuses, without retrying, bytes that are not `f`."""

    def download(url: str, output_file: str, owner: pooch.Pooch | None) -> None:
        (_copy_local if url.startswith("file:") else _http)(url, output_file, owner)
        digest = md5(Path(output_file).read_bytes())
        if digest != f.gz_md5:
            raise mismatch("downloaded bytes", f, digest, f.gz_md5)

    return download


def _from_mirrors(f: IdxFile, dest: Path, mirrors: Sequence[str], retries: int) -> Path:
    """Download `f` into `dest` from the first mirror that serves it intact."""
    registry = dataset_spec(f.dataset).pooch_registry
    reasons = []
    for mirror in mirrors:
        fetcher = pooch.create(path=dest, base_url=mirror, registry=registry, retry_if_failed=retries)
        try:
            return Path(fetcher.fetch(f.name, downloader=_downloader(f)))
        except (OSError, ValueError, UserError) as exc:  # requests' errors are OSErrors
            reasons.append(f"{fetcher.get_url(f.name)}: {_one_line(exc)}")
    raise UserError(f"{f.name}: {'; '.join(reasons) or 'no mirror to try'}")


def download(
    name: str, dest: Path, *, mirrors: Sequence[str] | None = None, retries: int = RETRIES
) -> list[Path]:
    """Fetch dataset `name`'s files missing from `dest` and return the four paths.

    Each missing file is tried on each mirror (default: the dataset's) in turn, `retries`
    further tries per mirror after a passing failure. Files already in `dest` are returned
    as they are (checked when read). UserError (one line) if a file cannot be had intact.
    """
    spec = dataset_spec(name)
    mirrors = spec.mirrors if mirrors is None else tuple(mirrors)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {dest}: {exc.strerror or exc}") from None
    return [find_file(dest, f) or _from_mirrors(f, dest, mirrors, retries) for f in spec.files]
