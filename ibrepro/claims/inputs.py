"""Everything the claims stage reads: a cell's run file and estimate groups (read-only).

The one place where the claims stage reads files: the cell and its estimates through
`ibrepro.analysis.results` (which reads `ibrepro.analysis.estimatesfile`), and activations
through the one activation reader (stored, or recomputed from `params/`) for the
self-consistency measures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ibrepro.analysis.activations import activation_layers, block_layers
from ibrepro.analysis.results import CellResults, load_cell
from ibrepro.errors import UserError
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


def load_groups(path: Path, estimators: tuple[str, ...] = ()) -> tuple[CellResults, list[Group]]:
    """The cell and its estimate groups (those of `estimators`, by estimator or group name;
    all when empty), on the seeds the results model keeps (diverged seeds left out there)."""
    cell = load_cell(Path(path))
    if cell.epochs.size == 0:
        raise UserError(f"{path} has no complete snapshot yet")
    chosen = [e for e in cell.estimates
              if not estimators or e.estimator in estimators or e.group in estimators]
    beyond = next((e for e in chosen if e.seeds is not None and e.seeds.size and e.seeds.max() >= cell.run.n_seeds),
                  None)
    if beyond is not None:
        raise UserError(f"{cell.run.estimates_path}: group {beyond.group!r} names run seed {int(beyond.seeds.max())}, "
                        f"the run has {cell.run.n_seeds} seeds; the file is damaged (move it away and analyze again)")
    groups = [Group(e.group, e.estimator, dict(e.params), str(e.attrs.get("labels", "drawn")),
                    np.arange(e.ixt.shape[0]) if e.seeds is None else e.seeds, e.epochs, e.ixt, e.ity)
              for e in chosen]
    return cell, groups


def activations_at(path: Path, seeds: np.ndarray, epoch: int) -> list[np.ndarray] | None:
    """Each layer's activations (S, N, w) at logged `epoch` for the given run seeds (stored or
    recomputed); None when that epoch has no complete snapshot."""
    with open_run(path) as run:
        epochs = run["epochs"][: complete_epochs(run)]
        index = np.flatnonzero(epochs == epoch)
        if not index.size:
            return None
        return [np.asarray(layer[:, int(index[0])])[seeds] for layer in activation_layers(run)]


def global_ranges(path: Path, seeds: np.ndarray) -> np.ndarray:
    """(S, 2): each seed's min and max over every layer and complete logged epoch."""
    with open_run(path) as run:
        n = complete_epochs(run)
        lo = np.full(len(seeds), np.inf)
        hi = np.full(len(seeds), -np.inf)
        for start in range(0, n, 16):  # every layer of a block at once (one forward pass when recomputed)
            for data in block_layers(run, np.s_[:], np.s_[start: min(n, start + 16)]):
                block = np.asarray(data, np.float64)[seeds]
                lo = np.fmin(lo, np.nanmin(block, axis=(1, 2, 3)))
                hi = np.fmax(hi, np.nanmax(block, axis=(1, 2, 3)))
    return np.stack([lo, hi], axis=1)
