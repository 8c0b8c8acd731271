"""Estimator comparison: one cell's information planes under each estimator setting, and a
quantized run's exact information beside its binning estimate."""

from __future__ import annotations

from matplotlib.figure import Figure

from ibrepro.analysis.results import CellResults, Estimate
from ibrepro.report.plots import style
from ibrepro.report.plots.infoplane import GRID_TITLE_CHARS, infoplane_grid, plane_title


def compare_figure(cell: CellResults, estimates: tuple[Estimate, ...], per_seed: bool = False) -> Figure:
    """The cell's information plane for each estimator group, side by side.

    Each panel keeps its own axes: estimators measure on different scales (kNN's I(X;T) is a
    differential entropy that can be negative; Rényi's depends on its kernel width).
    """
    panels = [(plane_title(est, width=GRID_TITLE_CHARS) + _partial(cell, est), cell, est) for est in estimates]
    return infoplane_grid(panels, f"{cell.name}: the same run under {len(estimates)} "
                          "estimator settings (each panel on its own axes)", per_seed=per_seed, shared=False)


def _partial(cell: CellResults, estimate: Estimate) -> str:
    partial = cell.coverage(estimate.epochs)
    return f"\n{partial}" if partial else ""


def exact_binning_pair(estimates: tuple[Estimate, ...]) -> tuple[Estimate, Estimate] | None:
    """The cell's `exact` group and a binning group (the paper's, else per-layer), if it has both."""
    exact = next((e for e in estimates if e.estimator == "exact"), None)
    binned = next((e for kind in ("binning", "binning-layer") for e in estimates if e.estimator == kind), None)
    return (exact, binned) if exact is not None and binned is not None else None


def exact_binning_figure(cell: CellResults, exact: Estimate, binned: Estimate, per_seed: bool = False) -> Figure:
    """A quantized (or binary) run's exact information plane beside its binning estimate."""
    panels = [(f"exact (the network's own levels)\n{style.seed_summary(exact.ixt.shape[0])}"
               + _partial(cell, exact), cell, exact),
              (plane_title(binned) + _partial(cell, binned), cell, binned)]
    return infoplane_grid(panels, f"{cell.name}: exact MI vs binning, same run", per_seed=per_seed)
