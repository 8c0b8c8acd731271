"""Reading what the figures need from run files and estimates files (read-only).

Everything a figure draws is small (metrics, gradient norms, MI estimates), so a cell is
read into plain arrays once and the files are closed; activations are never loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from ibrepro.analysis.analyze import COMMON_PARAMS, PARTIAL, estimates_path, find_cells
from ibrepro.config import get as config_get
from ibrepro.errors import UserError
from ibrepro.analysis.estimators import REGISTRY
from ibrepro.train.runfile import GRADIENT_NAMES, METRIC_NAMES, complete_epochs, open_run, run_config

__all__ = ["Cell", "Estimate", "IBBound", "config_value", "find_cells", "load_cell",
           "select_estimates"]

IB_BOUND = "ib-bound"
PROVENANCE_ATTRS = ("ibrepro_version", "run_status", "source")  # not estimator settings


@dataclass(frozen=True)
class Estimate:
    """One estimator setting's results: `ixt`, `ity` (S, E, L) in bits at `epochs` (E,), and
    any further (S, E, L) datasets of the group in `extras` (e.g. noisy's `ixt_se`, `clustering`)."""

    group: str
    estimator: str
    params: dict  # the settings that define it (for titles); all attrs stay in the file
    epochs: np.ndarray
    ixt: np.ndarray
    ity: np.ndarray
    extras: dict = field(default_factory=dict)


@dataclass(frozen=True)
class IBBound:
    """The IB curve (I(X;T), I(T;Y)) in bits, ordered by I(X;T)."""

    ixt: np.ndarray
    ity: np.ndarray


@dataclass(frozen=True)
class Cell:
    """What the figures of one cell need."""

    path: Path
    name: str
    config: dict
    status: str
    epochs: np.ndarray  # (E,) complete logged epochs
    n_inputs: int  # N evaluation inputs: H(X) = log2 N
    label_entropy: float  # H(Y) in bits over the evaluation inputs
    metrics: dict[str, np.ndarray]  # name -> (S, E)
    gradients: dict[str, np.ndarray] | None  # name -> (S, E, L); None if unusable
    missing: dict[str, str]  # "metrics"/"gradients" -> why they are unusable
    estimates: tuple[Estimate, ...] = ()
    ib_bound: IBBound | None = None
    has_estimates_file: bool = False
    notes: tuple[str, ...] = ()  # estimate groups left out, and why


def load_cell(path: Path) -> Cell:
    """Read a run file and its estimates file (if any) into a Cell."""
    notes: list[str] = []
    with open_run(path) as run:
        try:
            n_epochs = complete_epochs(run)
            config = run_config(run)
            epochs = np.asarray(run["epochs"][:n_epochs])
            labels = np.asarray(run["data/y"][:])
        except KeyError as exc:
            raise UserError(f"{path} is not a complete run file ({exc})") from None
        status = str(run.attrs.get("status", "unknown"))
        metrics = _read_group(run, "metrics", METRIC_NAMES, n_epochs)
        gradients = _read_group(run, "gradients", GRADIENT_NAMES, n_epochs)
    missing = {}
    if not any(np.isfinite(v).any() for v in metrics.values()):
        missing["metrics"] = "no metrics recorded" if not metrics else "metrics are all NaN"
        metrics = {}
    absent = [name for name in GRADIENT_NAMES if name not in gradients]
    if len(absent) == len(GRADIENT_NAMES):
        missing["gradients"] = "the run file has no gradients group"
    elif absent:
        missing["gradients"] = f"gradients/{', '.join(absent)} missing"
    elif not _positive_somewhere(gradients, epochs):
        missing["gradients"] = "gradient mean and weight norms are all NaN or zero"
    mi_path = estimates_path(path)
    estimates, bound = _read_estimates(mi_path, notes) if mi_path.exists() else ((), None)
    return Cell(
        path=path,
        name=path.name[: -len(".h5")],
        config=config,
        status=status,
        epochs=epochs,
        n_inputs=labels.shape[0],
        label_entropy=_entropy_bits(labels),
        metrics=metrics,
        gradients=None if "gradients" in missing else gradients,
        estimates=estimates,
        ib_bound=bound,
        has_estimates_file=mi_path.exists(),
        missing=missing,
        notes=tuple(notes),
    )


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


def _entropy_bits(labels: np.ndarray) -> float:
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def _read_estimates(path: Path, notes: list[str]) -> tuple[tuple[Estimate, ...], IBBound | None]:
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise UserError(f"{path} is not a readable HDF5 file ({exc.__class__.__name__})") from None
    estimates, bound = [], None
    with handle:
        for name, group in handle.items():
            if not isinstance(group, h5py.Group):
                continue
            if name.endswith(PARTIAL):
                notes.append(f"{path.name}: group {name!r} is still being written (left out)")
                continue
            attrs = {key: _attr(value) for key, value in group.attrs.items()}
            kind = attrs.pop("estimator", None)
            if kind == IB_BOUND:
                curve = _read_bound(group)
                if curve is None:
                    notes.append(f"{path.name}: IB bound group {name!r} is malformed (left out)")
                bound = bound or curve
                continue
            if kind is None or not {"ixt", "ity", "epochs"} <= set(group):
                notes.append(f"{path.name}: group {name!r} is incomplete (left out)")
                continue
            epochs = np.asarray(group["epochs"][:])
            ixt, ity = np.asarray(group["ixt"], float), np.asarray(group["ity"], float)
            if ixt.ndim != 3 or ixt.shape != ity.shape or ixt.shape[1] < epochs.size:
                notes.append(f"{path.name}: group {name!r} has ixt/ity of shapes {ixt.shape}, "
                             f"{ity.shape}, not (seeds, {epochs.size} epochs, layers) (left out)")
                continue
            ixt, ity = ixt[:, : epochs.size], ity[:, : epochs.size]
            if not (np.isfinite(ixt) & np.isfinite(ity)).any():
                notes.append(f"{path.name}: group {name!r} has no finite estimates (left out)")
                continue
            extras = {key: np.asarray(group[key], float)[:, : epochs.size] for key in group
                      if key not in ("ixt", "ity", "epochs", "seeds") and group[key].shape == group["ixt"].shape}
            estimates.append(Estimate(group=name, estimator=str(kind),
                                      params=_settings(str(kind), attrs), epochs=epochs,
                                      ixt=ixt, ity=ity, extras=extras))
    return tuple(estimates), bound


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
    """The attrs that define an estimate: the estimator's parameters, the KDE bound, and
    `every`/`seeds` thinning when not at their defaults (provenance attrs left out)."""
    common = {p.name: p.default for p in COMMON_PARAMS}
    known = REGISTRY.get(kind)
    names = ([p.name for p in known.params] + ["bound"] if known
             else [n for n in attrs if n not in PROVENANCE_ATTRS and n not in common])
    settings = {n: attrs[n] for n in names if n in attrs}
    settings.update({n: attrs[n] for n, default in common.items()
                     if n in attrs and attrs[n] != default})
    return settings


def _attr(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def select_estimates(cells: list[Cell], name: str | None) -> dict[str, tuple[Estimate, ...]]:
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
