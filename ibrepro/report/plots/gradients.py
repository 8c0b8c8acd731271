"""Gradient signal-to-noise figure (paper Fig. 4, DESIGN §5).

Per layer (each weight matrix: hidden layers and the output layer), the norm of the
epoch's mean gradient and the gradient standard deviation, both divided by ‖W‖_F, against
epochs on log-log axes, averaged over seeds; their ratio (the SNR); and ‖W‖_F itself. The dotted
lines mark the drift→diffusion transition of the seed-mean SNR drawn here
(`ibrepro.claims.marks.seed_mean_transition`, DESIGN §5), which the claims file records per
layer as `drift_epoch_seed_mean`. Claim ii measures the crossing per seed: its geometric mean
and 95 % interval over seeds (`drift_epoch`) are drawn as a bar at SNR = 1 per layer.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ibrepro.analysis.results import CellResults
from ibrepro.claims import marks
from ibrepro.claims import phases as claims
from ibrepro.report.plots import style


def seed_mean_gradients(cell: CellResults) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seed means of mean/‖W‖, std/‖W‖ and ‖W‖, each (E, L)."""
    grads = cell.gradients
    return (claims.summary(grads["mean_norm"] / grads["weight_norm"]).center,
            claims.summary(grads["std_norm"] / grads["weight_norm"]).center,
            claims.summary(grads["weight_norm"]).center)


@style.styled
def gradients_figure(cell: CellResults) -> Figure:
    """Normalised gradient mean and std, their ratio, and the weight norms, per layer."""
    positive = cell.epochs > 0
    epochs = cell.epochs[positive]
    mean, std, weight = (a[positive] for a in seed_mean_gradients(cell))
    n_layers = mean.shape[1]
    marker = style.marker_for(len(epochs))
    transitions = marks.seed_mean_transition(cell.epochs, cell.gradients)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(std > 0, mean / std, np.nan)
    fig = style.new_figure(style.FULL_WIDTH, 2.6)
    ax_norm, ax_snr, ax_weight = fig.subplots(1, 3)
    for k in range(n_layers):
        colour = style.layer_colour(k, n_layers)
        ax_norm.plot(epochs, mean[:, k], color=colour, marker=marker, ms=2.5)
        ax_norm.plot(epochs, std[:, k], color=colour, ls="--", marker=marker, ms=2.5)
        ax_snr.plot(epochs, snr[:, k], color=colour, marker=marker, ms=2.5)
        ax_weight.plot(epochs, weight[:, k], color=colour, marker=marker, ms=2.5,
                       label=style.layer_label(k, n_layers))
    style.log_scales(ax_norm, y=True)
    snr_drawn = style.log_scales(ax_snr, y=True)
    style.log_scales(ax_weight)
    for k, epoch in enumerate(transitions):
        if np.isfinite(epoch):
            for ax in (ax_norm, ax_snr):
                ax.axvline(epoch, color=style.layer_colour(k, n_layers), ls=":", lw=0.9, gid=f"drift:{k}")
    if snr_drawn:
        ax_snr.axhline(1.0, color=style.REFERENCE_COLOUR, lw=0.6)
        _per_seed_bars(ax_snr, cell)
        ax_snr.set_title(f"signal-to-noise ratio\n{_transition_text(transitions)}")
    else:
        ax_snr.set_title("signal-to-noise ratio: undefined\nstd = 0 (one minibatch per epoch?)")
    for ax in (ax_norm, ax_snr, ax_weight):
        ax.set_xlabel("epoch")
    ax_norm.set_ylabel("gradient norm / ‖W‖")
    ax_snr.set_ylabel("SNR = mean / std")
    ax_weight.set_ylabel("‖W‖ (Frobenius)")
    ax_norm.set_title("mean (solid) and std (dashed)" if snr_drawn else "mean")
    ax_weight.set_title("weight norms")
    style_keys = [Line2D([], [], color="0.3", label="mean")]
    if snr_drawn:  # else std is 0 throughout: no std line, SNR or transition to key
        style_keys += [
            Line2D([], [], color="0.3", ls="--", label="std"),
            Line2D([], [], color="0.3", ls=":", label="drift→diffusion: seed-mean SNR's last fall below 1"),
            Line2D([], [], color="0.3", marker="o", ms=4, label="per seed (claim ii): geometric mean, 95 % interval"),
        ]
    layer_keys, _ = ax_weight.get_legend_handles_labels()
    fig.legend(handles=layer_keys + style_keys, loc="outside lower center",
               ncols=min(len(layer_keys) + 3, 5))
    n_seeds = cell.gradients["mean_norm"].shape[0]
    partial = cell.coverage()
    fig.suptitle(f"{cell.name}: gradient statistics per layer, {style.seed_summary(n_seeds)}"
                 + (f" ({partial})" if partial else ""), fontsize=8)
    return fig


def _per_seed_bars(ax, cell: CellResults) -> None:
    """Per layer, claim ii's per-seed transition: geometric mean (dot) and 95 % interval (bar)
    over seeds, stacked just above SNR = 1."""
    per_seed = marks.seed_transitions(cell.epochs, cell.gradients)
    n_layers = per_seed.shape[1]
    for k in range(n_layers):
        centre, low, high = marks.epoch_interval(per_seed[:, k])
        if np.isfinite(centre):
            y = 1.12 ** (k + 1)
            errors = [[centre - low], [high - centre]] if np.isfinite(low) else None
            bars = ax.errorbar([centre], [y], xerr=errors, fmt="o", ms=4, lw=1.6, capsize=2.5, mec="white",
                               mew=0.6, zorder=5, color=style.layer_colour(k, n_layers))
            bars.lines[0].set_gid(f"drift_per_seed:{k}")


def _transition_text(transitions: np.ndarray) -> str:
    found = np.sort(transitions[np.isfinite(transitions)])
    if not found.size:
        return "no drift→diffusion transition found"
    low, high = f"{found[0]:.0f}", f"{found[-1]:.0f}"
    span = low if low == high else f"{low}–{high}"
    missing = transitions.size - found.size
    rest = f"; {missing} layer(s) none" if missing else ""
    return f"seed-mean SNR's last fall below 1: epoch {span}{rest}"
