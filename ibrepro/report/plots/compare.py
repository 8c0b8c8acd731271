"""Estimator comparison: one cell's information planes under each estimator setting."""

from __future__ import annotations

from matplotlib.figure import Figure

from ibrepro.report.plots.infoplane import GRID_TITLE_CHARS, infoplane_grid, plane_title
from ibrepro.report.plots.load import CellResults, Estimate


def compare_figure(cell: CellResults, estimates: tuple[Estimate, ...], per_seed: bool = False) -> Figure:
    """The cell's information plane for each estimator group, side by side."""
    panels = [(plane_title(est, width=GRID_TITLE_CHARS), cell, est) for est in estimates]
    return infoplane_grid(panels, f"{cell.name}: the same run under {len(estimates)} "
                          "estimator settings", per_seed=per_seed)
