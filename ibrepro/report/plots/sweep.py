"""Figures across the cells of a sweep: information planes per cell (paper Figs. 3 and 5,
Saxe et al.'s activations) and, for a depth sweep, epochs to the compressed state.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ibrepro.analysis.results import CellResults, Estimate, config_value
from ibrepro.claims.phases import epochs_to_compressed, summary
from ibrepro.report.plots import style
from ibrepro.report.plots.infoplane import infoplane_grid

DEPTH_KEY = "model.hidden"
COMPRESSED_FRACTION = 0.1  # compressed: within this share of the total drop from the final value


def sweep_keys(cells: list[CellResults]) -> list[str]:
    """The dotted keys swept over (from the first cell's config), in the order given."""
    sweep = cells[0].config.get("sweep") or {}
    return list(sweep) if isinstance(sweep, dict) else []


def order_cells(cells: list[CellResults], keys: list[str]) -> list[CellResults]:
    """Cells in the order of the sweep's value lists (cartesian product order)."""
    sweep = cells[0].config.get("sweep") or {}

    def position(cell: CellResults) -> tuple:
        places = []
        for key in keys:
            value, options = config_value(cell.config, key), sweep.get(key, [])
            places.append(options.index(value) if value in options else len(options))
        return (*places, cell.name)

    return sorted(cells, key=position)


def panel_title(cell: CellResults, keys: list[str]) -> str:
    """A short title naming the cell's swept values, e.g. 'train 5%, tanh'."""
    return ", ".join(_describe(key, config_value(cell.config, key)) for key in keys) or cell.name


def _describe(key: str, value) -> str:
    short = key.split(".")[-1]
    if short == "train_fraction" and isinstance(value, (int, float)):
        return f"train {100 * value:g}%"
    if short == "hidden" and isinstance(value, list):
        return f"{len(value)} hidden: " + "-".join(map(str, value))
    if short == "activation":
        return str(value)
    return f"{short}={value}"


def sweep_infoplane_figure(experiment: str, cells: list[CellResults], estimates: list[Estimate | None],
                           keys: list[str], per_seed: bool = False) -> Figure:
    """One information plane per cell, shared axes and colour bar."""
    est = next(e for e in estimates if e is not None)
    counts = sorted({e.ixt.shape[0] for e in estimates if e is not None})
    seeds = (style.seed_summary(counts[0]) if len(counts) == 1
             else f"mean of {counts[0]}–{counts[-1]} seeds")
    title = f"{experiment}: {style.estimator_title(est.estimator, est.params)}, {seeds} per panel"
    panels = [(panel_title(c, keys), c, e) for c, e in zip(cells, estimates)]
    return infoplane_grid(panels, title, per_seed=per_seed)


@style.styled
def depth_figure(experiment: str, cells: list[CellResults], estimates: list[Estimate | None],
                 keys: list[str]) -> Figure:
    """Epochs to reach the compressed state against the number of hidden layers.

    `ibrepro.claims.rules.epochs_to_compressed` per seed and layer; each seed's value is the mean
    over its compressing layers; points are seed means, bars ±1 std. Other swept keys, if
    any, give one line each.
    """
    others = [key for key in keys if key != DEPTH_KEY]
    first = next(e for e in estimates if e is not None)
    series: dict[str, list[tuple[int, float, float]]] = {}
    for cell, est in zip(cells, estimates):
        if est is None:
            continue
        reached = epochs_to_compressed(est.epochs, est.ixt, fraction=COMPRESSED_FRACTION)
        per_seed = summary(reached, axis=1).center
        mean, std, _ = summary(per_seed)
        depth = len(config_value(cell.config, DEPTH_KEY))
        series.setdefault(panel_title(cell, others) if others else "", []).append((depth, mean, std))
    fig = style.new_figure(style.COLUMN_WIDTH, 2.7)
    ax = fig.add_subplot()
    for i, (label, points) in enumerate(series.items()):
        depth, mean, std = np.array(sorted(points)).T
        ax.errorbar(depth, mean, yerr=std, marker="o", ms=3.5, capsize=2, lw=1,
                    color=style.OKABE_ITO[(i + 3) % len(style.OKABE_ITO)], label=label or None)
    if others:
        ax.legend()
    ax.set_ylim(bottom=0)
    ax.set_xlabel("number of hidden layers")
    ax.set_ylabel("epochs to compressed state")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_title(f"{experiment}: {style.estimator_title(first.estimator, first.params)}\n"
                 "compressed = first epoch after the I(X;T) peak\nwith I(X;T) ≤ final + "
                 f"{COMPRESSED_FRACTION:g}·(peak − final)\n"
                 "mean over compressing layers; bars ±1 std over seeds",
                 fontsize=6.5)
    return fig
