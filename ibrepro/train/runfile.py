"""The run file (`<cell>.h5`): schema names, opening, the complete-snapshot count, structure.

Names follow DESIGN §7. Version 2 (`ibrepro-run/2`) files are written whole at creation:
every array has its final length along the epoch axis, `epochs` holds the whole schedule,
and the root dataset `complete_snapshots` counts the snapshots that are durably written.
Readers use only the first `complete_snapshots` entries of every array. `diverged` (S,)
holds, per seed, the first logged epoch whose training loss is not finite (-1: never); it is
written when the run completes (`diverged_epochs` derives it from the metrics before that,
and for files without it). Version 1 files
(growing arrays, no `params/`) are still read; there `epochs` grows last and its length is
the count.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np

from ibrepro.config import stored_config
from ibrepro.errors import UserError

SCHEMA = "ibrepro-run/2"
READABLE_SCHEMAS = ("ibrepro-run/1", SCHEMA)
COMPLETE = "complete_snapshots"
METRIC_NAMES = ("train_loss", "test_loss", "train_acc", "test_acc")
GRADIENT_NAMES = ("mean_norm", "std_norm", "weight_norm")
DIVERGED = "diverged"


def in_use_message(path: Path) -> str:
    """The one line for a file another process holds."""
    return f"{path} is in use by another process; wait for it to finish (or close it) and run again"


def is_lock_error(exc: OSError) -> bool:
    """True when HDF5 refused to open a file because another process holds its lock (not for
    damage such as a truncated file, whose message holds "sblock")."""
    return "unable to lock file" in str(exc).lower()


def hdf5_reason(exc: BaseException) -> str:
    """The first meaningful words of an HDF5 error, without addresses and offsets:
    'truncated file', 'bad global heap collection signature', 'file signature not found'."""
    lines = str(exc).strip().strip("'\"").splitlines()
    inner = re.search(r"\(([^()]*)\)", lines[0]) if lines else None
    reason = (inner.group(1) if inner else lines[0] if lines else "").split(":")[0].split(", ")[0]
    return reason.strip(" '\"") or exc.__class__.__name__


def open_run(path: str | Path) -> h5py.File:
    """Open a run file read-only, checking that it is an ibrepro run file of a known schema.

    Readable while another process trains into it (the writer changes no HDF5 metadata
    while training). Raises UserError for a missing, locked, unreadable or foreign file.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no run file at {path}")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        if is_lock_error(exc):
            raise UserError(in_use_message(path)) from None
        raise UserError(f"{path} is not a readable HDF5 file ({hdf5_reason(exc)}); "
                        "train the cell again or move the file away") from None
    try:
        check_schema(handle, path)
    except (OSError, KeyError) as exc:
        handle.close()
        raise UserError(f"{path}: its attrs cannot be read ({hdf5_reason(exc)}); the file is damaged "
                        "(train the cell again)") from None
    return handle


def check_schema(handle: h5py.File, path: Path) -> str:
    """The file's schema; UserError naming the found and the readable versions otherwise."""
    schema = handle.attrs.get("schema")
    if schema not in READABLE_SCHEMAS:
        handle.close()
        if schema is None:
            raise UserError(f"{path} is not an ibrepro run file (it has no schema attr)")
        raise UserError(f"{path} has schema {str(schema)!r}, which this version does not read "
                        f"(it reads {', '.join(READABLE_SCHEMAS)})")
    return str(schema)


def run_config(handle: h5py.File) -> dict:
    """The experiment config stored in a run file, with defaults for the keys it predates
    (`ibrepro.config.stored_config`); UserError naming the file when it is damaged."""
    source = handle.filename
    try:
        raw = json.loads(handle.attrs["config"])
    except KeyError:
        raise UserError(f"{source} has no config attr; the file is damaged (train the cell again)") from None
    except OSError as exc:
        raise UserError(f"{source}: its config attr cannot be read ({hdf5_reason(exc)}); the file is damaged "
                        "(train the cell again)") from None
    except (ValueError, TypeError):
        raise UserError(f"{source}: its config attr is not valid JSON; the file is damaged "
                        "(train the cell again)") from None
    return stored_config(raw, source)


def run_status(handle: h5py.File) -> str:
    """The root `status` attr as text ("running" | "complete"; "unknown" when absent).

    Version 2 stores it as a fixed-size ASCII string (rewritten in place in one write, so a
    kill cannot damage it), which h5py returns as bytes.
    """
    value = handle.attrs.get("status", "unknown")
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


def run_labels(handle: h5py.File) -> np.ndarray:
    """The evaluation labels `data/y` (N,); UserError naming the file when they are missing
    or not non-negative integers."""
    if "data/y" not in handle:
        raise UserError(f"{handle.filename} has no data/y labels; the file is damaged (train the cell again)")
    y = np.asarray(handle["data/y"][()])
    if y.ndim != 1 or y.dtype.kind not in "iu" or (y.size and y.min() < 0):
        raise UserError(f"{handle.filename}: data/y holds labels that are not non-negative integers; "
                        "the file is damaged (train the cell again)")
    return y


def complete_epochs(handle: h5py.File) -> int:
    """How many logged epochs are fully written: slice every epoch axis to this length
    (UserError naming the file when the count is outside the schedule)."""
    total = int(handle["epochs"].shape[0])
    if COMPLETE not in handle:
        return total
    count = handle[COMPLETE][()]
    if not (isinstance(count, int | np.integer) and 0 <= count <= total):
        raise UserError(f"{handle.filename}: {COMPLETE} = {count} is outside 0..{total} (the logged epochs); "
                        "the file is damaged (train the cell again)")
    return int(count)


def first_nonfinite(train_loss: np.ndarray, epochs: np.ndarray) -> np.ndarray:
    """(S,) per seed the first of `epochs` (E,) whose training loss (S, E) is not finite, -1 if none."""
    bad = ~np.isfinite(np.asarray(train_loss, np.float64))
    if not bad.shape[1]:
        return np.full(bad.shape[0], -1, np.int64)
    return np.where(bad.any(axis=1), np.asarray(epochs, np.int64)[np.argmax(bad, axis=1)], -1)


def diverged_epochs(handle: h5py.File) -> np.ndarray:
    """(S,) per seed the first logged epoch whose training loss is not finite, -1 for a seed
    that did not diverge: the stored `diverged` of a complete run, else from its metrics."""
    if DIVERGED in handle and run_status(handle) == "complete":
        return np.asarray(handle[DIVERGED][()], np.int64)
    n = complete_epochs(handle)
    n_seeds = handle["data/train_mask"].shape[0]
    if "metrics/train_loss" not in handle:
        return np.full(n_seeds, -1, np.int64)
    return first_nonfinite(handle["metrics/train_loss"][:, :n], handle["epochs"][:n])


def divergence_note(name: str, diverged: np.ndarray) -> str:
    """One line on a cell's diverged seeds ("" when none diverged)."""
    seeds = np.flatnonzero(diverged >= 0)
    if not seeds.size:
        return ""
    return (f"{name}: {seeds.size} of {diverged.size} seed(s) diverged (training loss not finite from epoch "
            f"{int(diverged[seeds].min())}; seeds {', '.join(map(str, seeds[:8]))}{' ...' if seeds.size > 8 else ''})")


def checkpoint_path(run_path: Path) -> Path:
    """Where a run file's training checkpoint lives while the cell trains."""
    return run_path.with_name(run_path.stem + ".ckpt")


def n_classes(config: dict) -> int:
    """Classes of a config's dataset (the softmax output's width); `model.classes` when the
    file says (run files written from other networks' activations by `ibrepro.write_run`)."""
    if "classes" in config.get("model", {}):
        return int(config["model"]["classes"])
    return 2 if config.get("dataset", "tishby12") == "tishby12" else 10


def layer_widths(config: dict, classes: int) -> list[int]:
    """Output width of every recorded layer: the hidden layers, then the softmax output."""
    return [*config["model"]["hidden"], classes]


def _stored_widths(handle: h5py.File, path: Path) -> list[int]:
    """Layer widths as the file stores them (for hand-made files whose config has no model)."""
    group = "activations" if "activations" in handle else "params"
    names = set(handle.get(group, {}))
    count = len(names)
    missing = [str(k) for k in range(count) if str(k) not in names]
    if not count or missing:
        raise UserError(f"{path}: {group}/ layers are not numbered 0..{max(count - 1, 0)}"
                        + (f" ({group}/{missing[0]} is missing)" if missing else ""))
    dataset = "{}/{}" if group == "activations" else "{}/{}/bias"
    return [handle[dataset.format(group, k)].shape[-1] for k in range(count)]


def check_structure(handle: h5py.File, path: Path) -> None:
    """UserError naming the first dataset that is missing or whose shape does not match the
    config (layers numbered 0..L-1, widths chained from the input width, S and E agreeing)."""
    config = run_config(handle)
    try:
        n_eval, width_in = handle["data/x"].shape
        n_seeds = handle["data/train_mask"].shape[0]
        n_epochs = handle["epochs"].shape[0]
    except (KeyError, ValueError) as exc:
        raise UserError(f"{path}: missing or malformed data ({exc})") from None
    if "params" not in handle and "activations" not in handle:
        raise UserError(f"{path}: neither params/ nor activations/ is present")
    if "hidden" in config.get("model", {}):
        widths = layer_widths(config, n_classes(config))
    else:
        widths = _stored_widths(handle, path)
    expected: dict[str, tuple[int, ...]] = {}
    for k, width in enumerate(widths):
        if "params" in handle:
            expected[f"params/{k}/kernel"] = (n_seeds, n_epochs, width_in, width)
            expected[f"params/{k}/bias"] = (n_seeds, n_epochs, width)
        if "activations" in handle:
            expected[f"activations/{k}"] = (n_seeds, n_epochs, n_eval, width)
        width_in = width
    for group in ("params", "activations"):
        extra = sorted(set(handle.get(group, {})) - {str(k) for k in range(len(widths))})
        if extra:
            raise UserError(f"{path}: {group}/{extra[0]} is not a layer of the config's "
                            f"{len(widths)} layers")
    for name, shape in expected.items():
        if name not in handle:
            raise UserError(f"{path}: dataset {name} is missing (the config has {len(widths)} layers)")
        found = handle[name].shape
        # version 1 arrays may hold one snapshot more than `epochs` while it is written
        if found != shape and not (found[:1] + found[2:] == shape[:1] + shape[2:] and found[1] >= shape[1]):
            raise UserError(f"{path}: dataset {name} has shape {found}, the config gives {shape}")
