"""Training checkpoints: the state keyed by parameter and optimizer-state names, written
atomically (`ibrepro.durable`: temporary file, fsync, rename, fsync of the directory).

A checkpoint holds `meta` (run_id, epoch, n_snapshots, device_count) and the training state
as flax's state dict (msgpack), so restoring checks every name and shape against the state
the current code builds instead of trusting the order of leaves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from ibrepro.durable import write_atomically


def save(path: Path, state: Any, meta: dict) -> None:
    """Store a (host or device) training state with its metadata."""
    host = jax.tree.map(np.asarray, state)
    payload = serialization.msgpack_serialize({"meta": meta, "state": serialization.to_state_dict(host)})
    write_atomically(path, payload)


def load(path: Path, target: Any) -> tuple[Any, dict] | None:
    """(state shaped like `target`, meta), or None when there is no usable checkpoint
    (missing, unreadable, or names and shapes that do not match `target`)."""
    if not path.is_file():
        return None
    try:
        saved = serialization.msgpack_restore(path.read_bytes())
        state = serialization.from_state_dict(target, saved["state"])
        meta = dict(saved["meta"])
    except Exception:  # a damaged or foreign checkpoint is as good as none: the caller says so
        return None
    shapes_match = jax.tree.all(jax.tree.map(lambda a, b: np.shape(a) == np.shape(b), state, target))
    return (state, meta) if shapes_match else None


def remove(path: Path) -> None:
    """Delete a checkpoint (and a leftover temporary file) if present."""
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".tmp").unlink(missing_ok=True)
