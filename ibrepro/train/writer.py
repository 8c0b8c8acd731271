"""Writing one cell's run file so that a kill, a full disk or a reader never sees a wrong result.

The file is made whole at creation, under a temporary name that is renamed into place: every
array has its final shape, its space is allocated (never filled: unwritten space costs no
disk), and `epochs` holds the whole schedule. Training then changes no HDF5 metadata at all,
only array contents at fixed places, so a kill at any moment leaves a readable file, and a
reader in another process sees a consistent file at any time. A snapshot counts once its
arrays are flushed and fsync'ed: only then is `complete_snapshots` raised. The status and
finish time are fixed-size attributes rewritten in place (one write), after `diverged`.

Every write error is raised where the write was asked for (the file has no sieve buffer and
no chunk cache, and h5py's "Exception ignored" errors are caught) and ends in one line; a new
file is read back before it is renamed into place.
"""

from __future__ import annotations

import errno
import json
import os
import uuid
from pathlib import Path

import h5py
import numpy as np

from ibrepro.dimscales import label_seed_epoch_layer
from ibrepro.durable import failure_reason, fsync_path, reported_writes
from ibrepro.errors import UserError
from ibrepro.train import checkpoint
from ibrepro.train.runfile import (
    COMPLETE,
    DIVERGED,
    GRADIENT_NAMES,
    METRIC_NAMES,
    SCHEMA,
    checkpoint_path,
    first_nonfinite,
)

STATUS_TYPE = h5py.string_dtype("ascii", 16)
TIME_TYPE = h5py.string_dtype("ascii", 32)


# what h5py raises for a failed write: OSError, or RuntimeError for some failed flushes
WRITE_ERRORS = (OSError, RuntimeError)


def write_error(path: Path, exc: BaseException, saved: int | None) -> UserError:
    """The one line for a failed write: what failed, and that a re-run resumes."""
    kept = "" if saved is None else f"its {saved} complete snapshot(s) are kept, "
    return UserError(f"cannot write {path}: {failure_reason(exc)}; {kept}run the same command again to resume")


def _preallocated() -> h5py.h5p.PropDCID:
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    return dcpl


def _unbuffered() -> h5py.h5p.PropFAID:
    """File access with no raw-data sieve buffer and no chunk cache (every data write reaches
    the OS at once, so a failed write fails in the call that made it and nothing is left to
    write when an object closes: HDF5 cannot report errors there, and may crash after them)
    and without HDF5's file lock (the cell lock guards writers; readers may open the file)."""
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_sieve_buf_size(0)
    mdc, slots, _, w0 = fapl.get_cache()
    fapl.set_cache(mdc, slots, 0, w0)
    fapl.set_file_locking(False, True)
    return fapl


class RunWriter:
    """Writes snapshots into a run file made by `create`; training state goes to a sidecar
    checkpoint (`<cell>.ckpt`) that is never ahead of the file."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.handle = h5py.File(h5py.h5f.open(bytes(path), h5py.h5f.ACC_RDWR, _unbuffered()))
        except WRITE_ERRORS as exc:
            if "errno = " in str(exc):  # a failed write (opening marks the file open for writing)
                raise write_error(path, exc, None) from None
            raise UserError(f"cannot open {path} for writing ({exc.__class__.__name__}); "
                            "use --force to start the cell over") from None
        self.complete = int(self.handle[COMPLETE][()])
        self.run_id = str(self.handle.attrs["run_id"])
        self._fd = self.handle.id.get_vfd_handle()

    @staticmethod
    def create(path: Path, config: dict, version: str, provenance: dict, data: dict[str, np.ndarray],
               schedule: np.ndarray, param_shapes: list[dict[str, tuple]], widths: list[int],
               store_activations: bool, dtype: str, device_count: int) -> None:
        """Make the whole run file at `path` (which must not exist) atomically.

        `data`: {"x", "y", "train_mask"} and, for noisy labels, "p_y1"; `param_shapes[k]`: {leaf: shape without
        the seed axis} of layer k, whose flax name is stored as the group's `module` attr.
        """
        tmp = path.with_name(path.name + ".creating")
        tmp.unlink(missing_ok=True)
        n_seeds, n_eval = data["train_mask"].shape
        n_epochs = len(schedule)
        try:
            fid = h5py.h5f.create(bytes(tmp), h5py.h5f.ACC_EXCL, fapl=_unbuffered())
            with reported_writes(tmp), h5py.File(fid) as h:
                h.attrs.update(schema=SCHEMA, config=json.dumps(config), ibrepro_version=version,
                               run_id=uuid.uuid4().hex, device_count=device_count, **provenance)
                h.attrs.create("status", "running", dtype=STATUS_TYPE)
                h.attrs.create("finished", "", dtype=TIME_TYPE)
                h.create_dataset("epochs", data=np.asarray(schedule, dtype="int64"))
                h.create_dataset(COMPLETE, data=np.int64(0))
                h.create_dataset(DIVERGED, data=np.full(n_seeds, -1, np.int64))  # set by `finish`
                h.create_dataset("data/x", data=data["x"], compression="gzip", compression_opts=4, shuffle=True)
                h.create_dataset("data/y", data=data["y"].astype("int32"))
                h.create_dataset("data/train_mask", data=data["train_mask"], compression="gzip")
                if data.get("p_y1") is not None:
                    h.create_dataset("data/p_y1", data=np.asarray(data["p_y1"], "float64"))
                arrays = {}
                for k, leaves in enumerate(param_shapes):
                    group = h.create_group(f"params/{k}")
                    group.attrs["module"] = leaves.pop("module")
                    for leaf, shape in leaves.items():
                        arrays[f"params/{k}/{leaf}"] = ((n_seeds, n_epochs, *shape), "float32")
                if store_activations:
                    for k, width in enumerate(widths):
                        arrays[f"activations/{k}"] = ((n_seeds, n_epochs, n_eval, width), dtype)
                for name in METRIC_NAMES:
                    arrays[f"metrics/{name}"] = ((n_seeds, n_epochs), "float32")
                for name in GRADIENT_NAMES:
                    arrays[f"gradients/{name}"] = ((n_seeds, n_epochs, len(widths)), "float32")
                for name, (shape, kind) in arrays.items():
                    h.create_dataset(name, shape=shape, dtype=kind, dcpl=_preallocated(), track_times=False)
                label_seed_epoch_layer(h["metrics"], np.arange(n_seeds), schedule)
                label_seed_epoch_layer(h["gradients"], np.arange(n_seeds), schedule, len(widths))
                h.flush()
                os.fsync(h.id.get_vfd_handle())
            _check_created(tmp, config, data, schedule, {name: shape for name, (shape, _) in arrays.items()})
            os.replace(tmp, path)
            fsync_path(path.parent)
        except WRITE_ERRORS as exc:
            tmp.unlink(missing_ok=True)
            raise write_error(path, exc, 0) from None

    def append(self, index: int, arrays: dict[str, np.ndarray]) -> None:
        """Write snapshot `index`: {dataset name: (S, ...) array} for that epoch position.
        It counts only after `commit`."""
        try:
            with reported_writes(self.path):
                for name, value in arrays.items():
                    self.handle[name][:, index] = value
        except WRITE_ERRORS as exc:
            raise write_error(self.path, exc, self.complete) from None

    def commit(self, n_complete: int) -> None:
        """Make the snapshots before `n_complete` durable, then record their count."""
        try:
            with reported_writes(self.path):
                self.handle.flush()
                os.fsync(self._fd)
                self.handle[COMPLETE][()] = n_complete
                self.handle.flush()
        except WRITE_ERRORS as exc:
            raise write_error(self.path, exc, self.complete) from None
        self.complete = n_complete

    def truncate(self, n_complete: int) -> None:
        """Count only the first `n_complete` snapshots (the rest are rewritten)."""
        if n_complete < self.complete:
            self.complete = 0  # a failure below must not claim the dropped snapshots
            self.commit(n_complete)

    @property
    def checkpoint_path(self) -> Path:
        return checkpoint_path(self.path)

    def save_checkpoint(self, state, epoch: int, device_count: int) -> None:
        """The training state after logged epoch `epoch`; the file's count is durable first,
        so the checkpoint never names a snapshot the file lacks."""
        try:
            os.fsync(self._fd)
            checkpoint.save(self.checkpoint_path, state, {
                "run_id": self.run_id, "epoch": int(epoch), "n_snapshots": self.complete,
                "device_count": int(device_count)})
        except OSError as exc:
            raise write_error(self.checkpoint_path, exc, self.complete) from None

    def load_checkpoint(self, target) -> tuple[object, dict] | None:
        """(state, meta) of this file's checkpoint, or None when there is none usable."""
        return checkpoint.load(self.checkpoint_path, target)

    def finish(self, finished: str) -> None:
        """Record which seeds diverged (`diverged`), then mark the run complete, each durably,
        and remove the checkpoint."""
        diverged = first_nonfinite(self.handle["metrics/train_loss"][:, :self.complete],
                                   self.handle["epochs"][:self.complete])
        try:
            with reported_writes(self.path):
                if DIVERGED in self.handle:  # files made before it was recorded lack it
                    self.handle[DIVERGED][...] = diverged
                    self.handle.flush()
                    os.fsync(self._fd)
                self.handle.attrs.modify("finished", finished)
                self.handle.attrs.modify("status", "complete")
                self.handle.flush()
                os.fsync(self._fd)
        except WRITE_ERRORS as exc:
            raise write_error(self.path, exc, self.complete) from None
        checkpoint.remove(self.checkpoint_path)

    def close(self) -> None:
        try:
            with reported_writes(self.path):
                self.handle.close()
        except WRITE_ERRORS:
            pass  # a failed write was already reported; the count on disk is what counts


def _check_created(path: Path, config: dict, data: dict[str, np.ndarray], schedule: np.ndarray,
                   shapes: dict[str, tuple]) -> None:
    """OSError unless the closed file at `path` reads back as `create` wrote it: the data,
    the schedule and the config equal, no snapshot counted, every array of its shape."""
    try:
        with h5py.File(path, "r", locking=False) as h:
            written = {f"data/{k}": v for k, v in data.items() if v is not None}
            whole = (all(np.array_equal(h[name][()], np.asarray(v)) for name, v in written.items())
                     and np.array_equal(h["epochs"][()], np.asarray(schedule))
                     and int(h[COMPLETE][()]) == 0 and (h[DIVERGED][()] == -1).all()
                     and json.loads(h.attrs["config"]) == config
                     and all(h[name].shape == shape for name, shape in shapes.items()))
    except (OSError, KeyError, ValueError) as exc:
        raise OSError(errno.EIO, f"the new file does not read back ({exc.__class__.__name__})") from None
    if not whole:
        raise OSError(errno.EIO, "the new file does not read back as written")
