"""Everything the claims stage reads: a cell's run file and estimate groups (read-only).

The one place where the claims stage reads files: estimates through
`ibrepro.report.plots.load` (to be switched to `ibrepro.analysis.estimatesfile` when it lands),
plus the attrs that loader leaves out (`labels`, the `seeds` dataset), and the last logged
epoch's activations for the self-consistency measures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ibrepro.analysis.analyze import estimates_path
from ibrepro.errors import UserError
from ibrepro.report.plots.load import Cell, load_cell
from ibrepro.train.runfile import complete_epochs, open_run


@dataclass(frozen=True)
class Group:
    """One estimate group: `ixt`, `ity` (S, E, L) in bits at `epochs`, for run seeds `seeds`."""

    name: str
    estimator: str
    params: dict
    labels: str  # "drawn" or "soft"
    seeds: np.ndarray
    epochs: np.ndarray
    ixt: np.ndarray
    ity: np.ndarray


def read_cell(path: Path, estimators: tuple[str, ...] = ()) -> tuple[Cell, list[Group]]:
    """The cell and its estimate groups (those of `estimators`, by estimator or group name;
    all when empty)."""
    cell = load_cell(Path(path))
    if cell.epochs.size == 0:
        raise UserError(f"{path} has no complete snapshot yet")
    chosen = [e for e in cell.estimates
              if not estimators or e.estimator in estimators or e.group in estimators]
    extra = _group_attrs(estimates_path(cell.path), [e.group for e in chosen])
    groups = []
    for e in chosen:
        labels, seeds = extra[e.group]
        seeds = np.arange(e.ixt.shape[0]) if seeds is None else seeds
        groups.append(Group(e.group, e.estimator, dict(e.params), labels, seeds, e.epochs,
                            e.ixt, e.ity))
    return cell, groups


def _group_attrs(path: Path, names: list[str]) -> dict[str, tuple[str, np.ndarray | None]]:
    if not names:
        return {}
    with h5py.File(path, "r") as f:
        out = {}
        for name in names:
            group = f[name]
            labels = group.attrs.get("labels", "drawn")
            labels = labels.decode() if isinstance(labels, bytes) else str(labels)
            out[name] = (labels, group["seeds"][()] if "seeds" in group else None)
        return out


def final_activations(path: Path, seeds: np.ndarray) -> list[np.ndarray] | None:
    """Each layer's activations (S, N, w) at the last complete logged epoch for the given run
    seeds, as stored; None when the run file stores no activations."""
    with open_run(path) as run:
        last = complete_epochs(run) - 1
        if "activations" not in run or last < 0:
            return None
        names = sorted(run["activations"], key=int)
        return [np.asarray(run["activations"][k][:, last])[seeds] for k in names]


def global_ranges(path: Path, seeds: np.ndarray) -> np.ndarray:
    """(S, 2): each seed's min and max over every layer and complete logged epoch."""
    with open_run(path) as run:
        n = complete_epochs(run)
        lo = np.full(len(seeds), np.inf)
        hi = np.full(len(seeds), -np.inf)
        for data in run["activations"].values():
            for start in range(0, n, 16):
                block = np.asarray(data[:, start: min(n, start + 16)], np.float64)[seeds]
                lo = np.fmin(lo, np.nanmin(block, axis=(1, 2, 3)))
                hi = np.fmax(hi, np.nanmax(block, axis=(1, 2, 3)))
    return np.stack([lo, hi], axis=1)
