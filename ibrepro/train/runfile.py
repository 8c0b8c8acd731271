"""The run file (`<cell>.h5`): schema names, reading, validation.

Names follow DESIGN §7: root attrs `schema`, `config`, `status`, `ibrepro_version`;
datasets `epochs`, `data/x`, `data/y`, `data/train_mask`, `activations/<k>`,
`metrics/<name>`, `gradients/<name>`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

from ibrepro.errors import UserError

SCHEMA = "ibrepro-run/1"
METRIC_NAMES = ("train_loss", "test_loss", "train_acc", "test_acc")
GRADIENT_NAMES = ("mean_norm", "std_norm", "weight_norm")


def open_run(path: str | Path) -> h5py.File:
    """Open a run file read-only, checking that it is an ibrepro run file.

    Raises UserError for a missing, unreadable, truncated or foreign file.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no run file at {path}")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise UserError(f"{path} is not a readable HDF5 file ({exc.__class__.__name__})") from None
    if handle.attrs.get("schema") != SCHEMA:
        handle.close()
        raise UserError(f"{path} is not an ibrepro run file (schema attr is not {SCHEMA!r})")
    return handle


def run_config(handle: h5py.File) -> dict:
    """The resolved experiment config stored in a run file."""
    return json.loads(handle.attrs["config"])


def complete_epochs(handle: h5py.File) -> int:
    """How many logged epochs are fully written.

    Arrays grow along their epoch axis as training goes; `epochs` is extended last, so its
    length counts the snapshots that every array holds. Other arrays may be longer by one
    snapshot while a write is under way: slice them to this length.
    """
    return int(handle["epochs"].shape[0])


def _chunk_rows(n_rows: int, width: int, max_elements: int = 1 << 18) -> int:
    return max(1, min(n_rows, max_elements // max(width, 1)))


def checkpoint_path(run_path: Path) -> Path:
    """Where a run file's training checkpoint lives while the cell trains."""
    return run_path.with_name(run_path.stem + ".ckpt.npz")


class RunWriter:
    """Writes one cell's run file incrementally: snapshots, checkpoints, status.

    Arrays grow along the epoch axis one snapshot at a time; `epochs` grows last. The
    training state (with the snapshot count it belongs to) goes to a sidecar file that is
    replaced atomically and removed when the cell completes.
    """

    def __init__(self, handle: h5py.File):
        self.handle = handle

    @classmethod
    def create(cls, path: Path, config: dict, version: str, x_eval, y_eval, train_mask,
               widths: list[int], dtype: str) -> "RunWriter":
        """A new run file (`path` must not exist) with data and empty growable arrays.

        Activations are stored uncompressed: on tanh activations gzip saved 14% of the
        space at 30× the write time (measured), which would dominate a cell's run time.
        """
        h = h5py.File(path, "x")
        h.attrs.update(schema=SCHEMA, config=json.dumps(config), status="running",
                       ibrepro_version=version)
        n_seeds, n_eval = train_mask.shape
        h.create_dataset("epochs", shape=(0,), maxshape=(None,), dtype="int64", chunks=(1024,))
        h.create_dataset("data/x", data=x_eval, compression="gzip", compression_opts=4, shuffle=True)
        h.create_dataset("data/y", data=y_eval.astype("int32"))
        h.create_dataset("data/train_mask", data=train_mask, compression="gzip")
        for k, width in enumerate(widths):
            h.create_dataset(f"activations/{k}", shape=(n_seeds, 0, n_eval, width),
                             maxshape=(n_seeds, None, n_eval, width), dtype=dtype,
                             chunks=(1, 1, _chunk_rows(n_eval, width), width))
        for name in METRIC_NAMES:
            h.create_dataset(f"metrics/{name}", shape=(n_seeds, 0), maxshape=(n_seeds, None),
                             dtype="float32", chunks=(n_seeds, 256))
        for name in GRADIENT_NAMES:
            h.create_dataset(f"gradients/{name}", shape=(n_seeds, 0, len(widths)),
                             maxshape=(n_seeds, None, len(widths)), dtype="float32",
                             chunks=(n_seeds, 256, len(widths)))
        h.flush()
        return cls(h)

    def _grow(self, name: str, n: int) -> h5py.Dataset:
        ds = self.handle[name]
        ds.resize(n, axis=1 if ds.ndim > 1 else 0)
        return ds

    def append(self, epoch: int, layers: list, metrics, grad_stats) -> None:
        """Add one snapshot: layers [(S, N, w)], metrics (S, 4), grad_stats (S, 3, L)."""
        i = complete_epochs(self.handle)
        for k, layer in enumerate(layers):
            self._grow(f"activations/{k}", i + 1)[:, i] = layer
        for j, name in enumerate(METRIC_NAMES):
            self._grow(f"metrics/{name}", i + 1)[:, i] = metrics[:, j]
        for j, name in enumerate(GRADIENT_NAMES):
            self._grow(f"gradients/{name}", i + 1)[:, i] = grad_stats[:, j]
        self._grow("epochs", i + 1)[i] = epoch

    def truncate(self, n: int) -> None:
        """Drop snapshots past the first n (to return to a checkpoint)."""
        for group in ("activations", "metrics", "gradients"):
            for name in self.handle[group]:
                self._grow(f"{group}/{name}", n)
        self._grow("epochs", n)

    @property
    def checkpoint_path(self) -> Path:
        """The sidecar holding the latest training state (`<cell>.ckpt.npz`)."""
        return checkpoint_path(Path(self.handle.filename))

    def save_checkpoint(self, leaves: list, epoch: int) -> None:
        """Store training-state leaves as the state after logged epoch `epoch`.

        The run file is flushed first, then the sidecar is replaced atomically, so a
        checkpoint never names snapshots that are not on disk.
        """
        self.handle.flush()
        target = self.checkpoint_path
        tmp = target.with_name(target.name + ".tmp.npz")
        np.savez(tmp, *leaves, epoch=epoch, n_snapshots=complete_epochs(self.handle))
        os.replace(tmp, target)

    def load_checkpoint(self) -> tuple[list, int, int] | None:
        """(leaves, epoch, n_snapshots) of the saved checkpoint, or None."""
        if not self.checkpoint_path.is_file():
            return None
        with np.load(self.checkpoint_path) as saved:
            leaves = [saved[f"arr_{j}"] for j in range(len(saved.files) - 2)]
            return leaves, int(saved["epoch"]), int(saved["n_snapshots"])

    def finish(self) -> None:
        """Mark the run complete and remove the checkpoint."""
        self.handle.attrs["status"] = "complete"
        self.handle.flush()
        self.checkpoint_path.unlink(missing_ok=True)

    def close(self) -> None:
        self.handle.close()
