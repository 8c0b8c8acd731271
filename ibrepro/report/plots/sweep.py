"""Figures across the cells of a sweep: information planes per cell (paper Figs. 3 and 5,
Saxe et al.'s activations) and, for a depth sweep, epochs to the compressed state.
"""

from __future__ import annotations

import textwrap

import numpy as np
from matplotlib.figure import Figure

from ibrepro.analysis.results import CellResults, Estimate, config_value
from ibrepro.claims.marks import DEPTH_LAYERS, depth_epochs
from ibrepro.claims.rules import Rules, depth
from ibrepro.claims.verdicts import interval_text
from ibrepro.report.plots import style
from ibrepro.report.plots.infoplane import infoplane_grid

DEPTH_KEY = "model.hidden"


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
    """One information plane per cell, shared axes and colour bar; the title names the
    estimator settings all panels share (a setting that follows the cell is left out)."""
    est = next(e for e in estimates if e is not None)
    counts = sorted({e.ixt.shape[0] for e in estimates if e is not None})
    seeds = (style.seed_summary(counts[0]) if len(counts) == 1
             else f"mean of {counts[0]}–{counts[-1]} seeds")
    shared = {k: v for k, v in est.params.items() if all(e.params.get(k) == v for e in estimates if e is not None)}
    title = f"{experiment}: {style.estimator_title(est.estimator, shared)}, {seeds} per panel"
    panels = [(panel_title(c, keys) + _partial(c, e), c, e) for c, e in zip(cells, estimates)]
    return infoplane_grid(panels, title, per_seed=per_seed)


def matching_estimates(cells_estimates: list[tuple[Estimate, ...]], reference: Estimate) -> list[Estimate | None]:
    """Per cell, the estimate group that matches REFERENCE: the group of the same name, else the
    cell's one group of the same estimator and labels (a setting that follows the cell, such as
    the noisy estimator's β = the cell's noise, names each cell's group differently)."""
    out = []
    for estimates in cells_estimates:
        same = [e for e in estimates if e.group == reference.group]
        kin = [e for e in estimates if e.estimator == reference.estimator
               and e.attrs.get("labels", "drawn") == reference.attrs.get("labels", "drawn")]
        out.append(same[0] if same else kin[0] if len(kin) == 1 else None)
    return out


def _partial(cell: CellResults, estimate: Estimate | None) -> str:
    partial = "" if estimate is None else cell.coverage(estimate.epochs)
    return f"\n{partial}" if partial else ""


@style.styled
def depth_figure(experiment: str, cells: list[CellResults], estimates: list[Estimate | None],
                 keys: list[str], rules: Rules = Rules()) -> Figure:
    """Epochs to reach the compressed state against the number of hidden layers: claim iv's
    numbers (`ibrepro.claims.rules.depth` on `ibrepro.claims.marks.depth_epochs`), the median
    over seeds with its 95 % interval; "never" (a seed whose layers do not compress) sits at
    the top. Other swept keys, if any, give one line each."""
    others = [key for key in keys if key != DEPTH_KEY]
    first = next(e for e in estimates if e is not None)
    families: dict[str, dict[int, object]] = {}
    for cell, est in zip(cells, estimates):
        if est is not None:
            n_hidden = len(config_value(cell.config, DEPTH_KEY))
            families.setdefault(panel_title(cell, others) if others else "", {})[n_hidden] = \
                depth_epochs(est.epochs, est.ixt, n_hidden, rules)
    fig = style.new_figure(style.COLUMN_WIDTH, 2.9)
    ax = fig.add_subplot()
    top = max(float(e.epochs[-1]) for e in estimates if e is not None)
    lines = []
    for i, (label, per_depth) in enumerate(families.items()):
        claim = depth(per_depth, DEPTH_LAYERS, rules)
        medians = claim.measured.get("median_epochs", {})
        depths = sorted(per_depth)
        values = np.array([medians[str(d)] if str(d) in medians else [np.nan] * 3 for d in depths])
        shown = np.where(np.isfinite(values), values, 1.5 * top)
        colour = style.OKABE_ITO[(i + 3) % len(style.OKABE_ITO)]
        bars = ax.errorbar(depths, shown[:, 0], yerr=np.abs(shown[:, 1:].T - shown[:, 0]), marker="o",
                           ms=3.5, capsize=2, lw=1, color=colour, label=label or None)
        bars.lines[0].set_gid(f"depth:{label}")
        if "speedup" in claim.measured:
            lines.append(f"{label + ': ' if label else ''}shallowest/deepest "
                         f"{interval_text(claim.measured['speedup'], 2)}, claim iv {claim.verdict}")
    ax.axhline(1.5 * top, color=style.REFERENCE_COLOUR, lw=0.6, ls="--")
    ax.text(ax.get_xlim()[0], 1.5 * top, " never", va="bottom", fontsize=6, color="0.3")
    if others:
        ax.legend()
    ax.set_yscale("log")
    ax.set_xlabel("number of hidden layers")
    ax.set_ylabel("epochs to compressed state")
    ax.xaxis.get_major_locator().set_params(integer=True)
    rule = (f"compressed = first epoch after the I(X;T) peak with I(X;T) ≤ last + "
            f"{rules.compressed_fraction:g}·(peak − last), for {DEPTH_LAYERS}; median over seeds, "
            "bars 95 % interval (as claim iv)")
    ax.set_title("\n".join([f"{experiment}: {style.estimator_title(first.estimator, first.params)}",
                            textwrap.fill(rule, 62), *lines]), fontsize=6)
    return fig
