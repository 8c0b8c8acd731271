"""Curves against epochs: per-layer MI estimates, and learning curves (loss, accuracy).

Lines are means over seeds, bands ±1 standard deviation; epochs on a log axis. The I(X;T)
panel marks each layer's compression onset as claim i and ii measure it
(`ibrepro.claims.marks.layer_numbers`, recorded in the claims file as `onset_epoch`).
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ibrepro.analysis.results import CellResults, Estimate, config_value
from ibrepro.claims.marks import ONSET_STATISTIC, layer_numbers
from ibrepro.claims.phases import summary
from ibrepro.claims.rules import Rules
from ibrepro.report.plots import style
from ibrepro.report.plots.infoplane import write_caveats, x_ceiling

TRAIN_COLOUR = style.OKABE_ITO[3]  # blue
TEST_COLOUR = style.OKABE_ITO[4]  # vermillion


def draw_band(ax: Axes, epochs: np.ndarray, values: np.ndarray, colour: str, label: str,
              ls: str = "-") -> None:
    """Seed mean of `values` (S, E) as a line, ±1 std as a band; epochs ≤ 0 left out."""
    keep = epochs > 0
    mean, std, _ = summary(values[:, keep])
    ax.plot(epochs[keep], mean, color=colour, ls=ls, label=label,
            marker=style.marker_for(int(keep.sum())), ms=2.5)
    ax.fill_between(epochs[keep], mean - std, mean + std, color=colour, alpha=0.2, lw=0)


@style.styled
def layer_curves_figure(cell: CellResults, estimate: Estimate, rules: Rules = Rules()) -> Figure:
    """I(X;T) and I(T;Y) of every layer against epochs, for one estimator setting; triangles
    mark each layer's compression onset (with its interval over seeds as a bar)."""
    fig = style.new_figure(style.FULL_WIDTH, 2.5)
    ax_x, ax_y = fig.subplots(1, 2)
    n_layers = estimate.ixt.shape[2]
    numbers = layer_numbers(estimate.epochs, estimate.ixt, estimate.ity, rules)
    for k in range(n_layers):
        label = style.layer_label(k, n_layers)
        colour = style.layer_colour(k, n_layers)
        draw_band(ax_x, estimate.epochs, estimate.ixt[:, :, k], colour, label)
        draw_band(ax_y, estimate.epochs, estimate.ity[:, :, k], colour, label)
        _mark_onset(ax_x, estimate, k, numbers[k]["onset_epoch"], colour)
    for ax in (ax_x, ax_y):
        style.log_scales(ax)
    h_x = x_ceiling(estimate, cell.n_inputs)
    if h_x is not None:
        ax_x.axhline(h_x, color=style.REFERENCE_COLOUR, lw=0.6, ls="--", zorder=0)
    ax_y.axhline(cell.label_entropy, color=style.REFERENCE_COLOUR, lw=0.6, ls="--", zorder=0)
    for ax, name, ref in ((ax_x, "I(X;T)", "H(X)"), (ax_y, "I(T;Y)", "H(Y)")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{name} (bits)")
        low = ax.dataLim.y0  # below 0 only for estimators that can go there (kNN's differential I(X;T))
        ax.set_ylim(bottom=min(0.0, low - 0.05 * ax.dataLim.height) if np.isfinite(low) else 0.0)
        ax.set_title(f"{name} per layer (dashed: {ref})")
    write_caveats(ax_x, estimate, cell.label_entropy, ("ixt",))
    write_caveats(ax_y, estimate, cell.label_entropy, ("ity",))
    scale = "dashed: H(X)" if h_x is not None else "no H(X): not on its scale"
    ax_x.set_title(f"I(X;T) per layer ({scale})\n▼ compression onset, {ONSET_STATISTIC}", fontsize=7)
    handles, _ = ax_x.get_legend_handles_labels()
    fig.legend(handles=handles, loc="outside lower center", ncols=min(n_layers, 7))
    partial = cell.coverage(estimate.epochs)
    fig.suptitle(f"{cell.name}: {style.estimator_title(estimate.estimator, estimate.params)}, "
                 f"{style.seed_summary(estimate.ixt.shape[0], spread=True)}"
                 + (f" ({partial})" if partial else ""), fontsize=8)
    return fig


def _mark_onset(ax: Axes, estimate: Estimate, k: int, onset: list[float], colour: str) -> None:
    """A triangle on layer k's seed-mean I(X;T) at its onset epoch, the interval as a bar."""
    epoch, low, high = onset
    if not np.isfinite(epoch):
        return
    height = np.interp(np.log(epoch), np.log(np.maximum(estimate.epochs, 1)), summary(estimate.ixt[:, :, k]).center)
    ax.plot([epoch], [height], marker="v", ms=5, color=colour, mec="black", mew=0.4, zorder=5, gid=f"onset:{k}")
    if np.isfinite(low) and np.isfinite(high):
        ax.plot([low, high], [height, height], color=colour, lw=0.8, marker="|", ms=4, zorder=4)


@style.styled
def learning_figure(cell: CellResults) -> Figure:
    """Train and test loss and accuracy against epochs (test left out when it is all NaN)."""
    fig = style.new_figure(style.FULL_WIDTH, 2.5)
    ax_loss, ax_acc = fig.subplots(1, 2)
    no_test = _no_test_note(cell)
    for ax, kind in ((ax_loss, "loss"), (ax_acc, "acc")):
        for split, colour, ls in (("train", TRAIN_COLOUR, "-"), ("test", TEST_COLOUR, "--")):
            values = cell.metrics.get(f"{split}_{kind}")
            if values is not None and np.isfinite(values).any():
                draw_band(ax, cell.epochs, values, colour, split, ls)
        style.log_scales(ax, y=kind == "loss")
        ax.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy loss")
    ax_acc.set_ylabel("accuracy")
    ax_loss.set_title("loss")
    ax_acc.set_title("accuracy")
    handles, _ = (ax_loss if ax_loss.lines else ax_acc).get_legend_handles_labels()
    if no_test:
        handles.append(Line2D([], [], color="none", label=no_test))
    fig.legend(handles=handles, loc="outside lower center", ncols=3)
    n_seeds = next(iter(cell.metrics.values())).shape[0]
    partial = cell.coverage()
    fig.suptitle(f"{cell.name}: learning curves, {style.seed_summary(n_seeds, spread=True)}"
                 + (f" ({partial})" if partial else ""), fontsize=8)
    return fig


def _no_test_note(cell: CellResults) -> str:
    """Legend text when there is no test data ('' when there is)."""
    test = [cell.metrics[n] for n in ("test_loss", "test_acc") if n in cell.metrics]
    if any(np.isfinite(v).any() for v in test):
        return ""
    fraction = config_value(cell.config, "train.train_fraction")
    if fraction is not None and fraction >= 1:
        return f"test: none (train_fraction = {fraction:g}, no held-out data)"
    return "test: not recorded"
