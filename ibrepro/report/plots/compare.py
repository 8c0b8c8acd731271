"""Estimator comparison: one cell's information planes under each estimator setting."""

from __future__ import annotations

from matplotlib.figure import Figure

from ibrepro.report.plots.infoplane import infoplane_grid, plane_title
from ibrepro.report.plots.load import Cell, Estimate


def compare_figure(cell: Cell, estimates: tuple[Estimate, ...], per_seed: bool = False) -> Figure:
    """The cell's information plane for each estimator group, side by side.

    Each panel keeps its own axes: estimators measure on different scales (kNN's I(X;T) is a
    differential entropy that can be negative; Rényi's depends on its kernel width).
    """
    panels = [(plane_title(est), cell, est) for est in estimates]
    return infoplane_grid(panels, f"{cell.name}: the same run under {len(estimates)} "
                          "estimator settings (each panel on its own axes)", per_seed=per_seed, shared=False)
