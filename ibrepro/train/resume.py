"""Whether an existing cell file may be continued, and from where.

A file is continued only when its schema, config (keys that change nothing aside) and device
count match; its checkpoint is used only when it belongs to the file and is not ahead of it.
Anything else starts the cell over: with --force when the file would be deleted, else said.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import jax
import numpy as np

from ibrepro import config as cfg
from ibrepro.errors import UserError
from ibrepro.train import checkpoint
from ibrepro.train.lock import check_not_open
from ibrepro.train.runfile import SCHEMA, checkpoint_path, run_config, run_status
from ibrepro.train.writer import RunWriter

# keys that do not change what is computed: a resume ignores them
RESUME_IGNORED = ("data.dir", "log.checkpoint_seconds")


def _start_over(path: Path, force: bool, why: str) -> None:
    """Delete a cell's files to start it over (with --force), unless another process holds them."""
    if not force:
        raise UserError(f"{path} {why}; use --force to start over or --out to write elsewhere")
    check_not_open(path)
    path.unlink(missing_ok=True)
    checkpoint.remove(checkpoint_path(path))


def existing_status(path: Path, config: dict, force: bool, device_count: int) -> str | None:
    """"complete" or "running" for a run file this config may continue, None when there is
    none (or it was removed under --force); UserError when it may not be touched."""
    for taken in (path, checkpoint_path(path)):
        if taken.is_dir():
            raise UserError(f"{taken} is a directory, where the cell's {taken.suffix} file belongs; "
                            "move it away or write elsewhere with --out")
    if not path.exists():
        return None
    check_not_open(path, exclusive=False)
    try:
        with h5py.File(path, "r", locking=False) as handle:
            schema = handle.attrs.get("schema")
            foreign = schema is None and "config" not in handle.attrs
            if not foreign:
                stored = run_config(handle)
                status = run_status(handle)
                devices = int(handle.attrs.get("device_count", 0))
    except OSError:
        _start_over(path, force, "exists but is not a readable HDF5 file")
        return None
    except (UserError, KeyError, ValueError, TypeError):
        _start_over(path, force, "exists but its config cannot be read")
        return None
    if foreign:
        raise UserError(f"{path} exists and is not an ibrepro run file; move it away first")
    # the cell's own resolved config: the sweep table (which lists the other cells) is left out
    differing = [k for k in cfg.differing_keys(stored, config)
                 if k not in RESUME_IGNORED and k.split(".")[0] != "sweep"]
    if schema != SCHEMA:
        _start_over(path, force, f"was written by another version (schema {schema!r}, this one writes {SCHEMA})")
    elif differing:
        _start_over(path, force, f"was trained with a different config ({', '.join(differing)})")
    elif status != "complete" and devices != device_count:
        _start_over(path, force, f"was trained on {devices} device(s) and this run would use {device_count}, "
                    "which would not repeat it bit for bit")
    else:
        return status
    return None


def resume_point(writer: RunWriter, state, schedule: np.ndarray, devices: int, say) -> tuple[object, int]:
    """(state, snapshots to keep): the checkpoint when it agrees with the file, else a fresh start."""
    host = jax.tree.map(np.asarray, state)
    saved = writer.load_checkpoint(host)
    if saved is None:
        if writer.complete:
            say(f"{writer.path.name}: no usable checkpoint; training the cell from the start")
        return host, 0
    restored, meta = saved
    n = int(meta.get("n_snapshots", -1))
    problem = ("it belongs to another run" if meta.get("run_id") != writer.run_id
               else f"it is ahead of the file ({n} snapshots, the file has {writer.complete})" if n > writer.complete
               else "it was made on another device count" if int(meta.get("device_count", -1)) != devices
               else "its epoch is not in the schedule"
               if not (0 < n <= len(schedule) and schedule[n - 1] == meta.get("epoch"))
               else "")
    if problem:
        say(f"{writer.path.name}: the checkpoint does not match the run file ({problem}); "
            "training the cell from the start")
        return host, 0
    return restored, n
