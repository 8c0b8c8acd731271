"""The estimates file `<cell>.mi.h5` (DESIGN §7): its one writer and its one reader.

One group per estimator setting: `ixt`, `ity` (S, E, L) in bits, `epochs` (E,), `seeds` (S,),
attrs `estimator`, the parameters by name and provenance; the `ib-bound` group holds the IB
curve (`beta`, `ixt`, `ity`). Each group also carries netCDF-4 dimension scales (`seed`,
`epoch`, `layer`; `point` on the curve), so xarray with h5netcdf opens the file on its own.

Writes are atomic and checked at every point. Each write builds the whole new file in memory
(the old groups copied, the new ones added), writes it beside the old one, fsyncs it, reads it
back, renames it over the old file and fsyncs the directory (`ibrepro.durable`). Killed
anywhere, or failing to write (disk full, I/O error), a reader finds either the old file or
the new one, whole; HDF5 itself never writes to the disk, so none of its write errors can go
unreported. A lock file (`<cell>.mi.h5.lock`) keeps two writers from losing each
other's groups; a temporary file left by a killed writer is removed by the next one.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import filelock
import h5py
import numpy as np

from ibrepro.analysis.estimators import REGISTRY
from ibrepro.analysis.request import COMMON_PARAMS
from ibrepro.dimscales import drop_scale_links, label_estimate_group
from ibrepro.durable import failure_reason, write_atomically
from ibrepro.errors import UserError
from ibrepro.train.runfile import hdf5_reason, in_use_message, is_lock_error

IB_BOUND = "ib-bound"
PROVENANCE_ATTRS = ("ibrepro_version", "run_status", "source", "run_id", "labels")
LOCK_TIMEOUT_S = 60

Groups = Mapping[str, tuple[Mapping[str, np.ndarray], Mapping[str, Any]]]


@dataclass(frozen=True)
class Estimate:
    """One estimator setting's results: `ixt`, `ity` (S, E, L) in bits at `epochs` (E,), and
    any further (S, E, L) datasets of the group in `extras`."""

    group: str
    estimator: str
    params: dict  # the settings that define it (for titles and claims)
    attrs: dict  # every attr of the group
    epochs: np.ndarray
    seeds: np.ndarray | None
    ixt: np.ndarray
    ity: np.ndarray
    extras: dict = field(default_factory=dict)  # further (S, E, L) datasets, e.g. noisy's `ixt_se`


@dataclass(frozen=True)
class IBBound:
    """The IB curve (I(X;T), I(T;Y)) in bits, ordered by I(X;T)."""

    ixt: np.ndarray
    ity: np.ndarray


def check_writable(path: Path) -> None:
    """Raise UserError, before any work, when `path` cannot be (re)written."""
    directory = path.parent
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {path}: directory {directory} is not writable")
    lock = _lock_path(path)
    try:
        if lock.exists() and not lock.is_file():
            raise UserError(f"cannot write {path}: its lock {lock} is not a file; move it away")
        exists = path.exists()
    except OSError as exc:  # e.g. a name too long for the file system
        raise UserError(f"cannot write {path}: {exc.strerror}") from None
    if exists:
        _open(path).close()


def write_groups(path: Path, groups: Groups) -> None:
    """Write or replace groups {name: (datasets, attrs)} of an estimates file, atomically.

    Other groups are kept as they are. Raises UserError when the file cannot be written
    (disk full, read-only directory, a writer that holds the lock too long); the file on
    disk is then the one before the call.
    """
    lock = filelock.FileLock(str(_lock_path(path)), timeout=LOCK_TIMEOUT_S)
    try:
        with lock:
            path.with_name(path.name + ".tmp").unlink(missing_ok=True)  # a killed writer's leftover
            write_atomically(path, _image(path, groups))
    except filelock.Timeout:
        raise UserError(f"cannot write {path}: another process has held {lock.lock_file} "
                        f"for {LOCK_TIMEOUT_S} s") from None
    except OSError as exc:
        raise UserError(f"cannot write {path}: {failure_reason(exc)}; the estimates file is unchanged") from None


def _lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def _image(path: Path, groups: Groups) -> bytes:
    """The bytes of the new estimates file: the kept groups of the file at `path`, and `groups`."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as new:
        if path.exists():
            with _open(path) as old:
                _copy_kept(old, new, skip=set(groups))
        for name, (datasets, attrs) in groups.items():
            group = new.create_group(name)
            for key, value in datasets.items():
                group.create_dataset(key, data=value)
            label_estimate_group(group)
            group.attrs.update(attrs)
    return buffer.getvalue()


def _copy_kept(old: h5py.File, new: h5py.File, skip: set[str]) -> None:
    """Copy every group of `old` not in `skip`, as it is (its dimension scales attached again)."""
    for name, group in old.items():
        if name not in skip:
            old.copy(group, new, name=name)
            _relabel(new[name])


def _relabel(group: h5py.Group) -> None:
    """Dimension scales again on a group copied from the old file (older files get them here)."""
    drop_scale_links(group)
    label_estimate_group(group)


def _open(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        if is_lock_error(exc):
            raise UserError(in_use_message(path)) from None
        raise UserError(f"{path} is not a readable HDF5 file ({hdf5_reason(exc)}); "
                        f"move it away to recompute its estimates") from None


def read_estimates(path: Path) -> tuple[tuple[Estimate, ...], IBBound | None, tuple[str, ...]]:
    """Every usable estimate group, the IB bound (or None) and notes on groups left out."""
    estimates, bound, notes = [], None, []
    with _open(path) as handle:
        for name, group in handle.items():
            if not isinstance(group, h5py.Group):
                continue
            attrs = {key: _attr(value) for key, value in group.attrs.items()}
            kind = attrs.get("estimator")
            if kind == IB_BOUND:
                curve = _read_bound(group)
                if curve is None:
                    notes.append(f"{path.name}: IB bound group {name!r} is malformed (left out)")
                bound = bound or curve
                continue
            estimate, why = _read_estimate(name, group, attrs)
            if estimate is None:
                notes.append(f"{path.name}: group {name!r} {why} (left out)")
            else:
                estimates.append(estimate)
    return tuple(estimates), bound, tuple(notes)


def _read_estimate(name: str, group: h5py.Group, attrs: dict) -> tuple[Estimate | None, str]:
    kind = attrs.get("estimator")
    if kind is None or not {"ixt", "ity", "epochs"} <= set(group):
        return None, "is incomplete"
    epochs = np.asarray(group["epochs"][:])
    ixt, ity = np.asarray(group["ixt"], float), np.asarray(group["ity"], float)
    if ixt.ndim != 3 or ixt.shape != ity.shape or ixt.shape[1] < epochs.size:
        return None, (f"has ixt/ity of shapes {ixt.shape}, {ity.shape}, "
                      f"not (seeds, {epochs.size} epochs, layers)")
    ixt, ity = ixt[:, : epochs.size], ity[:, : epochs.size]
    if not (np.isfinite(ixt) & np.isfinite(ity)).any():
        return None, "has no finite estimates"
    seeds = np.asarray(group["seeds"][:]) if "seeds" in group else None
    if seeds is not None and (seeds.shape != ixt.shape[:1] or seeds.dtype.kind not in "iu"
                              or (seeds.size and seeds.min() < 0) or np.unique(seeds).size != seeds.size):
        return None, f"has seeds {seeds.tolist()[:8]} that are not {ixt.shape[0]} distinct run seed indices"
    extras = {key: np.asarray(group[key], float)[:, : epochs.size] for key in group
              if key not in ("ixt", "ity", "epochs", "seeds") and group[key].shape == group["ixt"].shape}
    return Estimate(group=name, estimator=str(kind), params=_settings(str(kind), attrs), attrs=attrs,
                    epochs=epochs, seeds=seeds, ixt=ixt, ity=ity, extras=extras), ""


def _read_bound(group: h5py.Group) -> IBBound | None:
    """The IB curve of an `ib-bound` group, ordered by I(X;T); None if malformed."""
    if not {"ixt", "ity"} <= set(group):
        return None
    ixt, ity = np.asarray(group["ixt"], float), np.asarray(group["ity"], float)
    if ixt.ndim != 1 or ixt.shape != ity.shape:
        return None
    order = np.argsort(ixt)
    return IBBound(ixt=ixt[order], ity=ity[order])


def _settings(kind: str, attrs: dict) -> dict:
    """The attrs that define an estimate: the estimator's parameters (a parameter added since
    the group was written at its `Param.legacy` value), the KDE bound, and
    the options `every`/`seeds` (thinning) and `labels` (soft) when not at their defaults
    (provenance attrs left out)."""
    common = {p.name: p.default for p in COMMON_PARAMS}
    known = REGISTRY.get(kind)
    names = ([p.name for p in known.params if p.in_name] + ["bound"] if known
             else [n for n in attrs if n not in PROVENANCE_ATTRS and n not in common and n != "estimator"])
    settings = {n: attrs[n] for n in names if n in attrs}
    if known:  # older groups hold some parameters under a former name, or lack newer ones
        settings |= {p.name: attrs[a] for p in known.params if p.in_name for a in p.aliases
                     if a in attrs and p.name not in attrs}
        settings |= {p.name: p.legacy for p in known.params if p.in_name and p.legacy is not None
                     and p.name not in settings}
    settings.update({n: attrs[n] for n, default in common.items() if n in attrs and attrs[n] != default})
    return settings


def _attr(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value
