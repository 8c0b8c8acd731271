"""Reading what the figures need from run files and estimates files (read-only).

Everything a figure draws is small (metrics, gradient norms, MI estimates), so a cell is
read into plain arrays once and the files are closed; activations are never loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ibrepro.analysis.cell import Cell, find_cells, read_cell
from ibrepro.analysis.estimatesfile import Estimate, IBBound, read_estimates
from ibrepro.config import get as config_get
from ibrepro.data.labels import label_entropy
from ibrepro.errors import UserError
from ibrepro.train.runfile import GRADIENT_NAMES, METRIC_NAMES, open_run

__all__ = ["CellResults", "Estimate", "IBBound", "config_value", "find_cells", "load_cell",
           "select_estimates"]


@dataclass(frozen=True)
class CellResults:
    """What the figures and the report of one cell need: its run file's metadata (`run`),
    metrics, gradient statistics and estimates."""

    run: Cell
    metrics: dict[str, np.ndarray]  # name -> (S, E)
    gradients: dict[str, np.ndarray] | None  # name -> (S, E, L); None if unusable
    missing: dict[str, str]  # "metrics"/"gradients" -> why they are unusable
    estimates: tuple[Estimate, ...] = ()
    ib_bound: IBBound | None = None
    has_estimates_file: bool = False
    notes: tuple[str, ...] = ()  # estimate groups left out, and why

    @property
    def path(self) -> Path:
        return self.run.path

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def config(self) -> dict:
        return self.run.config

    @property
    def status(self) -> str:
        return self.run.status

    @property
    def epochs(self) -> np.ndarray:
        return self.run.epochs

    @property
    def n_inputs(self) -> int:
        """N evaluation inputs: H(X) = log2 N."""
        return self.run.n_inputs

    @property
    def label_entropy(self) -> float:
        """H(Y) in bits over the evaluation inputs."""
        return label_entropy(self.run.y)


def load_cell(path: Path) -> CellResults:
    """Read a run file and its estimates file (if any)."""
    run = read_cell(path)
    with open_run(path) as handle:
        n_epochs = len(run.epochs)
        metrics = _read_group(handle, "metrics", METRIC_NAMES, n_epochs)
        gradients = _read_group(handle, "gradients", GRADIENT_NAMES, n_epochs)
    missing = {}
    if not any(np.isfinite(v).any() for v in metrics.values()):
        missing["metrics"] = "no metrics recorded" if not metrics else "metrics are all NaN"
        metrics = {}
    absent = [name for name in GRADIENT_NAMES if name not in gradients]
    if len(absent) == len(GRADIENT_NAMES):
        missing["gradients"] = "the run file has no gradients group"
    elif absent:
        missing["gradients"] = f"gradients/{', '.join(absent)} missing"
    elif not _positive_somewhere(gradients, run.epochs):
        missing["gradients"] = "gradient mean and weight norms are all NaN or zero"
    has_estimates = run.estimates_path.exists()
    estimates, bound, notes = read_estimates(run.estimates_path) if has_estimates else ((), None, ())
    return CellResults(run=run, metrics=metrics, gradients=None if "gradients" in missing else gradients,
                       missing=missing, estimates=estimates, ib_bound=bound,
                       has_estimates_file=has_estimates, notes=notes)


def _read_group(run: h5py.File, group: str, names: tuple[str, ...], n_epochs: int) -> dict:
    if group not in run:
        return {}
    return {
        name: np.asarray(run[group][name][:, :n_epochs], float)
        for name in names
        if name in run[group]
    }


def _positive_somewhere(gradients: dict[str, np.ndarray], epochs: np.ndarray) -> bool:
    """Whether some layer has a finite, positive gradient mean and ‖W‖ at an epoch > 0.

    (The std may be 0 throughout: with one minibatch per epoch it has nothing to vary over.)
    """
    later = epochs > 0
    mean, weight = gradients["mean_norm"][:, later], gradients["weight_norm"][:, later]
    return bool((np.isfinite(mean) & (mean > 0) & np.isfinite(weight) & (weight > 0)).any())


def select_estimates(cells: list[CellResults], name: str | None) -> dict[str, tuple[Estimate, ...]]:
    """Each cell's estimator groups chosen by NAME (attr `estimator` or group name; None: all).

    Raises UserError when NAME matches no group in any cell, listing what exists.
    """
    chosen = {
        cell.name: tuple(e for e in cell.estimates if name is None or name in (e.estimator, e.group))
        for cell in cells
    }
    if name is not None and not any(chosen.values()):
        kinds = sorted({e.estimator for c in cells for e in c.estimates})
        groups = sorted({e.group for c in cells for e in c.estimates})
        if not groups:
            raise UserError(f"no estimates computed for {name!r}: run `ibrepro analyze` first")
        raise UserError(
            f"no estimates for {name!r}; computed estimators: {', '.join(kinds)}"
            f" (groups: {', '.join(groups)})"
        )
    return chosen


def config_value(config: dict, dotted: str):
    """The value at a dotted key ('train.train_fraction') of a stored config, or None."""
    try:
        return config_get(config, dotted)
    except (KeyError, TypeError):
        return None
