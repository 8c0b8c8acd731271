"""A cell's results as every later stage sees them: `CellResults` and `load_cell`.

What claims, figures and report read of one cell (metrics, gradient norms, MI estimates and
the IB bound) is small, so it is read into plain arrays once and the files are closed;
activations are never loaded. This module sits in the analysis stage that writes the
estimates, so claims and report both depend on it and never on each other.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import h5py
import numpy as np

from ibrepro.analysis.cell import RunRecord, find_cells, read_cell
from ibrepro.analysis.estimatesfile import Estimate, IBBound, read_estimates
from ibrepro.config import get as config_get
from ibrepro.data.labels import label_entropy
from ibrepro.errors import UserError
from ibrepro.train.runfile import GRADIENT_NAMES, METRIC_NAMES, diverged_epochs, divergence_note, open_run

__all__ = ["CellResults", "Estimate", "IBBound", "config_value", "find_cells", "load_cell",
           "partial_label", "select_estimates"]


@dataclass(frozen=True)
class CellResults:
    """What the figures and the report of one cell need: its run file's metadata (`run`),
    metrics, gradient statistics and estimates."""

    run: RunRecord
    metrics: dict[str, np.ndarray]  # name -> (S, E)
    gradients: dict[str, np.ndarray] | None  # name -> (S, E, L); None if unusable
    missing: dict[str, str]  # "metrics"/"gradients" -> why they are unusable
    estimates: tuple[Estimate, ...] = ()
    ib_bound: IBBound | None = None
    has_estimates_file: bool = False
    notes: tuple[str, ...] = ()  # estimate groups left out, and why
    final_epoch: int | None = None  # the last epoch the run's schedule logs (None: unknown)

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

    def coverage(self, epochs: np.ndarray | None = None) -> str:
        """'' when `epochs` (default: the run's complete snapshots) reach the run's last
        scheduled epoch, else "partial: up to epoch N of M"."""
        epochs = self.epochs if epochs is None else epochs
        return partial_label(int(epochs[-1]) if len(epochs) else None, self.final_epoch)

    @property
    def label_entropy(self) -> float:
        """H(Y) in bits over the evaluation inputs."""
        return label_entropy(self.run.y)


def partial_label(last_epoch: int | None, final_epoch: int | None) -> str:
    """"partial: up to epoch N of M" when results stop at N before the run's last epoch M, else ''."""
    if final_epoch is None or (last_epoch is not None and last_epoch >= final_epoch):
        return ""
    return f"partial: up to epoch {'–' if last_epoch is None else last_epoch} of {final_epoch}"


def load_cell(path: Path) -> CellResults:
    """Read a run file and its estimates file (if any). Seeds whose training diverged are left
    out of every estimate group (unless all of a group's seeds did), and a note says how many:
    claims, figures and report all see the same seeds.

    UserError when an estimate group was computed from another run: another `run_id`, or
    epochs the run file has no complete snapshot of (it was trained again since)."""
    run = read_cell(path)
    with open_run(path) as handle:
        n_epochs = len(run.epochs)
        final_epoch = _final_epoch(handle, run)
        metrics = _read_group(handle, "metrics", METRIC_NAMES, n_epochs)
        gradients = _read_group(handle, "gradients", GRADIENT_NAMES, n_epochs)
        diverged = diverged_epochs(handle)
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
    for estimate in estimates:
        _check_same_run(run, estimate)
    note = divergence_note(run.name, diverged)
    if note:
        estimates = tuple(_on_seeds(estimate, diverged < 0) for estimate in estimates)
        left_out = "" if (diverged >= 0).all() else ": left out of the estimates the claims and figures use"
        notes = (*notes, note + left_out)
    return CellResults(run=run, metrics=metrics, gradients=None if "gradients" in missing else gradients,
                       missing=missing, estimates=estimates, ib_bound=bound,
                       has_estimates_file=has_estimates, notes=notes, final_epoch=final_epoch)


def _on_seeds(estimate: Estimate, keep: np.ndarray) -> Estimate:
    """The estimate on the run seeds `keep` (S_run,) marks; unchanged when that leaves all or none."""
    seeds = np.arange(estimate.ixt.shape[0]) if estimate.seeds is None else estimate.seeds
    kept = keep[seeds]
    if kept.all() or not kept.any():
        return estimate
    return replace(estimate, seeds=seeds[kept], ixt=estimate.ixt[kept], ity=estimate.ity[kept],
                   extras={name: values[kept] for name, values in estimate.extras.items()})


def _final_epoch(handle: h5py.File, run: RunRecord) -> int | None:
    """The last epoch of the run's schedule: the preallocated `epochs` ends with it; a file
    that grows its arrays (schema 1) knows it only from its config while it runs."""
    scheduled = int(handle["epochs"][-1]) if handle["epochs"].shape[0] else None
    planned = config_value(run.config, "train.epochs")
    if run.status != "complete" and isinstance(planned, int):
        return max(planned, scheduled or 0)
    return scheduled


def _check_same_run(run: RunRecord, estimate: Estimate) -> None:
    """UserError when ESTIMATE was not computed from this run file's snapshots."""
    where = f"{run.estimates_path.name}: group {estimate.group!r}"
    fix = f"remove {run.estimates_path.name} and rerun `ibrepro analyze {run.path}`"
    theirs = str(estimate.attrs.get("run_id") or "")
    if theirs and run.run_id and theirs != run.run_id:
        raise UserError(f"{where} was estimated on another run (run_id {theirs}, "
                        f"{run.path.name} has {run.run_id}): {fix}")
    unknown = np.setdiff1d(estimate.epochs, run.epochs)
    if unknown.size:
        raise UserError(f"{where} has epoch {int(unknown[0])}, which {run.path.name} has no complete "
                        f"snapshot of (it holds {run.epochs.size}): estimated on another run; {fix}")


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
