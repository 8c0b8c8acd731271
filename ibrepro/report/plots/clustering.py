"""Compression beside clustering (Goldfeld et al. 2019): I(X;T) of a noise-injected network
and the class clustering ratio of its representations, per layer against epochs.

Lines are means over seeds, bands ±1 standard deviation; epochs on a log axis.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ibrepro.analysis.results import CellResults, Estimate
from ibrepro.report.plots import style
from ibrepro.report.plots.curves import draw_band

CLUSTERING = "clustering"  # the estimates dataset drawn in the right panel


@style.styled
def clustering_figure(cell: CellResults, estimate: Estimate) -> Figure:
    """I(X;T) per layer (left) and the clustering ratio per layer (right) against epochs."""
    fig = style.new_figure(style.FULL_WIDTH, 2.6)
    ax_x, ax_c = fig.subplots(1, 2)
    ratio = estimate.extras[CLUSTERING]
    n_layers = estimate.ixt.shape[2]
    unestimated = []
    for k in range(n_layers):
        colour, label = style.layer_colour(k, n_layers), style.layer_label(k, n_layers)
        if np.isfinite(estimate.ixt[:, :, k]).any():
            draw_band(ax_x, estimate.epochs, estimate.ixt[:, :, k], colour, label)
        else:
            unestimated.append(label)
        draw_band(ax_c, estimate.epochs, ratio[:, :, k], colour, label)
    if unestimated:  # e.g. deeper layers of a run file without the network's parameters
        ax_x.text(0.5, 0.04, f"no estimate: {', '.join(unestimated)}", transform=ax_x.transAxes,
                  ha="center", fontsize=6.5, color=style.REFERENCE_COLOUR)
    for ax in (ax_x, ax_c):
        style.log_scales(ax)
        ax.set_xlabel("epoch")
        ax.set_ylim(bottom=0)
    ax_x.axhline(np.log2(cell.n_inputs), color=style.REFERENCE_COLOUR, lw=0.6, ls="--", zorder=0)
    ax_x.set_ylabel("I(X;T) (bits)")
    ax_x.set_title("I(X;T) per layer (dashed: H(X))")
    ax_c.set_ylabel("RMS distance: same / other class")
    ax_c.set_title("clustering of S per layer (lower: tighter classes)")
    handles, _ = ax_c.get_legend_handles_labels()
    fig.legend(handles=handles, loc="outside lower center", ncols=min(n_layers, 7))
    fig.suptitle(f"{cell.name}: compression and clustering, {style.seed_summary(estimate.ixt.shape[0], spread=True)}\n"
                 f"{style.estimator_title(estimate.estimator, estimate.params)}", fontsize=8)
    return fig
