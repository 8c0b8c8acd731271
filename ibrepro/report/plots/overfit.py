"""Claim v in one figure: I(T;Y) of the deep layers beside the generalisation gap, over epochs.

With too little training data the paper sees I(T;Y) of the deep layers fall late in training
(overfitting in the information plane); the gap between test and training loss shows the same
overfitting from the outside. Each deep layer's late fall is labelled with the number the
claims file records (`ity_late_fall`, from `ibrepro.claims.marks.layer_numbers`).
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ibrepro.analysis.results import CellResults, Estimate
from ibrepro.claims.marks import layer_numbers
from ibrepro.claims.phases import generalisation_gap
from ibrepro.claims.rules import Rules
from ibrepro.claims.verdicts import interval_text
from ibrepro.report.plots import style
from ibrepro.report.plots.curves import draw_band

GAP_COLOUR = "0.2"


@style.styled
def overfit_figure(cell: CellResults, estimate: Estimate, layers: list[int], rules: Rules = Rules()) -> Figure:
    """I(T;Y) of `layers` (left axis) and test − train loss (right axis) against epochs.

    Lines are seed means, bands ±1 std; the gap is left out (with a note) when the cell has
    no test loss.
    """
    fig = style.new_figure(style.COLUMN_WIDTH, 2.8)
    ax = fig.add_subplot()
    n_layers = estimate.ity.shape[2]
    numbers = layer_numbers(estimate.epochs, estimate.ixt, estimate.ity, rules)
    for k in layers:
        fall = numbers[k]["ity_late_fall"]
        counted, seeds = numbers[k]["ity_late_fall_counts"]
        draw_band(ax, estimate.epochs, estimate.ity[:, :, k], style.layer_colour(k),
                  f"{style.layer_label(k, n_layers)}: late fall {interval_text(fall, 2)} bits "
                  f"({counted}/{seeds} seeds count)")
        ax.lines[-1].set_gid(f"late_fall:{k}")
    style.log_scales(ax)
    ax.set_xlabel("epoch")
    ax.set_ylabel("I(T;Y) (bits)")
    handles, _ = ax.get_legend_handles_labels()
    gap = generalisation_gap(cell.metrics.get("test_loss"), cell.metrics["train_loss"])
    if np.isfinite(gap).any():
        twin = ax.twinx()
        twin.spines["right"].set_visible(True)
        draw_band(twin, cell.epochs, gap, GAP_COLOUR, "test − train loss", ls="--")
        twin.axhline(0.0, color=style.REFERENCE_COLOUR, lw=0.5, zorder=0)
        twin.set_ylabel("test − train loss")
        handles.append(Line2D([], [], color=GAP_COLOUR, ls="--", label="test − train loss"))
    else:
        handles.append(Line2D([], [], color="none", label="no test loss recorded"))
    fig.legend(handles=handles, loc="outside lower center", ncols=1)
    fig.suptitle(f"{cell.name}: deep layers' I(T;Y) and the generalisation gap\n"
                 f"{style.estimator_title(estimate.estimator, estimate.params)}\n"
                 f"{style.seed_summary(estimate.ity.shape[0], spread=True)}\n"
                 "late fall = smoothed peak − last, mean over seeds"
                 + (f"\n{cell.coverage(estimate.epochs)}" if cell.coverage(estimate.epochs) else ""), fontsize=7)
    return fig
