"""The information plane of one cell (paper Fig. 3 style).

Every layer's (I(X;T), I(T;Y)) at every logged epoch, averaged over seeds, coloured by
epoch on a log colour scale; thin grey lines join the layers at a few epochs.
"""

from __future__ import annotations

import textwrap

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from ibrepro.analysis.results import CellResults, Estimate, IBBound
from ibrepro.claims.caveats import estimate_caveats, figure_lines, on_bit_scale
from ibrepro.claims.phases import summary
from ibrepro.report.plots import style

TITLE_CHARS = 48  # of a title line over a one-column information plane
GRID_TITLE_CHARS = 32  # over one panel of `infoplane_grid`
CAVEAT_CHARS = 40  # of a caveat line written inside a panel

N_JOINED_EPOCHS = 6


def joined_epoch_indices(epochs: np.ndarray, count: int = N_JOINED_EPOCHS) -> np.ndarray:
    """Indices of about `count` log-spaced logged epochs (first and last included)."""
    epochs = np.asarray(epochs, float)
    targets = np.geomspace(max(epochs[0], 1.0), max(epochs[-1], 1.0), count)
    return np.unique([int(np.argmin(np.abs(np.log(np.maximum(epochs, 1.0) / t)))) for t in targets])


def draw_infoplane(
    ax: Axes,
    estimate: Estimate,
    *,
    n_inputs: int,
    label_entropy: float,
    norm: LogNorm,
    per_seed: bool = False,
    bound: IBBound | None = None,
    limits: Limits | None = None,
) -> None:
    """Draw one estimate's information plane on `ax` (axes in bits, see `plane_limits`), with
    the estimator's caveats (`ibrepro.claims.caveats`) written in the panel."""
    ixt = summary(estimate.ixt).center  # (E, L)
    ity = summary(estimate.ity).center
    n_layers = ixt.shape[1]
    if per_seed:
        for seed in range(estimate.ixt.shape[0]):
            for k in range(n_layers):
                ax.plot(estimate.ixt[seed, :, k], estimate.ity[seed, :, k], lw=0.4, alpha=0.3,
                        color=style.layer_colour(k, n_layers), zorder=1)
    for i in joined_epoch_indices(estimate.epochs):
        ax.plot(ixt[i], ity[i], color=style.JOIN_COLOUR, lw=0.5, zorder=2)
    colours = style.epoch_colours(estimate.epochs, norm)
    ax.scatter(ixt.ravel(), ity.ravel(), c=np.repeat(colours, n_layers, axis=0), s=7,
               linewidths=0, zorder=3, rasterized=True)
    if bound is not None and x_ceiling(estimate, n_inputs) is not None:  # the bound is in I(X;T) of X itself
        ax.plot(bound.ixt, bound.ity, color="black", lw=1.0, zorder=4, label="IB bound")
    ax.axhline(label_entropy, color=style.REFERENCE_COLOUR, lw=0.6, ls="--", zorder=0)
    ax.text(0.01, label_entropy, "H(Y)", va="bottom", ha="left", fontsize=6.5,
            color=style.REFERENCE_COLOUR, transform=ax.get_yaxis_transform())
    (x_lo, x_hi), (y_lo, y_hi) = limits or plane_limits(estimate, n_inputs, label_entropy)
    ax.set_xlim(x_lo, x_hi)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    ax.set_ylim(y_lo, y_hi)
    _tag_layers(ax, ixt, ity)  # after the limits: tags that would overlap on the page are merged
    ax.set_xlabel("I(X;T) (bits)")
    ax.set_ylabel("I(T;Y) (bits)")
    write_caveats(ax, estimate, label_entropy)


def write_caveats(ax: Axes, estimate: Estimate, label_entropy: float,
                  quantities: tuple[str, ...] = ("ixt", "ity")) -> None:
    """The estimate's broken inequalities (`ibrepro.claims.caveats`) of `quantities`, one line
    per kind, under the panel's x label, where they hide no point (the claims file and the
    report say the same in full, per layer)."""
    breaks = estimate_caveats(estimate.estimator, estimate.epochs, estimate.ixt, estimate.ity, label_entropy)
    lines = figure_lines(breaks, estimate.ixt.shape[2], quantities)
    if lines:
        text = "\n".join(textwrap.fill(line, CAVEAT_CHARS, subsequent_indent="   ") for line in lines)
        ax.annotate(text, (0.0, 0.0), xycoords=ax.xaxis.label, xytext=(0, -3), textcoords="offset points",
                    ha="left", va="top", fontsize=5, color=style.CAVEAT_COLOUR, gid="caveats",
                    annotation_clip=False)


Limits = tuple[tuple[float, float], tuple[float, float]]  # (x_lo, x_hi), (y_lo, y_hi)


def plane_limits(estimate: Estimate, n_inputs: int, label_entropy: float) -> Limits:
    """Axis limits: x from 0 to H(X) (`x_ceiling`) and y from 0 to H(Y), each widened (with a
    margin) to take in every seed's finite values, for estimators whose values leave those
    ranges; x fits the values alone for estimators with no H(X) ceiling or whose values stay
    far below it (kNN's differential scale, Rényi's kernel scale)."""

    def span(values: np.ndarray, hi: float, pad: float) -> tuple[float, float]:
        finite = values[np.isfinite(values)]
        lo, top = min(0.0, float(finite.min(initial=0.0))), max(hi, float(finite.max(initial=0.0)))
        return (lo - pad * (top - lo) if lo < 0 else 0.0), top + pad * (top - lo)

    h_x = x_ceiling(estimate, n_inputs)
    return span(estimate.ixt, 0.0 if h_x is None else h_x, 0.02), span(estimate.ity, label_entropy, 0.1)


def x_ceiling(estimate: Estimate, n_inputs: int) -> float | None:
    """H(X) in the estimator's scale: log2 of the inputs it sees (all N, or one minibatch for
    matrix-based Rényi); None for a differential scale (kNN) or a kernel scale (Rényi), whose
    I(X;T) is not measured against H(X)."""
    if not on_bit_scale(estimate.estimator):
        return None
    return float(np.log2(min(n_inputs, int(estimate.params.get("batch", n_inputs)))))


def union_limits(limits: list[Limits]) -> Limits:
    """The smallest limits holding all of `limits`."""
    return tuple((min(lim[a][0] for lim in limits), max(lim[a][1] for lim in limits)) for a in (0, 1))


TAG_FONTSIZE = 6  # points
# Tags closer than this share one: a fraction of the axes' height, and of their width per
# character of the two tags. Set for the smallest panels drawn (the estimator comparison's,
# about 2.5 x 1 in: a 6-point tag and two points of space are ~12 % of the height, a character
# with its share of space ~3 % of the width), in axes units so that the figure's later layout
# (constrained layout shrinking the axes) cannot make tags overlap.
TAG_NEAR_HEIGHT = 0.12
TAG_NEAR_PER_CHAR = 0.03


def _tag_layers(ax: Axes, ixt: np.ndarray, ity: np.ndarray) -> None:
    """Write each layer's number above its first finite point ('out' for the output); layers
    whose tags would overlap (anchors closer than `TAG_NEAR_HEIGHT` up or down and the tags'
    half-widths across, in axes units at the axes' current limits) share one tag ('1,2')."""
    n_layers = ixt.shape[1]
    to_axes = ax.transScale + ax.transLimits  # data -> axes fraction at the current limits
    tags: list[tuple[np.ndarray, tuple[float, float], list[str]]] = []  # axes position, anchor, names
    for k in range(n_layers):
        finite = np.flatnonzero(np.isfinite(ixt[:, k]) & np.isfinite(ity[:, k]))
        if not finite.size:
            continue
        name = "out" if k == n_layers - 1 else str(k + 1)
        anchor = (float(ixt[finite[0], k]), float(ity[finite[0], k]))
        at = to_axes.transform(anchor)
        shared = next((t for t in tags if _tags_overlap(t[0], ",".join(t[2]), at, name)), None)
        if shared is None:
            tags.append((at, anchor, [name]))
        else:
            shared[2].append(name)
    for _, anchor, names in tags:
        ax.annotate(",".join(names), anchor, xytext=(0, 4), ha="center", va="bottom", textcoords="offset points",
                    fontsize=TAG_FONTSIZE, zorder=5, gid=f"layer-tag:{','.join(names)}")


def _tags_overlap(at: np.ndarray, text: str, other_at: np.ndarray, other_text: str) -> bool:
    """Whether two tags at these axes positions would overlap (see TAG_NEAR_HEIGHT)."""
    across = TAG_NEAR_PER_CHAR * (len(text) + len(other_text) + 1) / 2
    return abs(at[1] - other_at[1]) < TAG_NEAR_HEIGHT and abs(at[0] - other_at[0]) < across


def layer_legend(ax: Axes, n_layers: int, with_bound: bool) -> None:
    """Legend of the per-seed trace colours (one per layer) and the IB bound."""
    handles = [Line2D([], [], color=style.layer_colour(k, n_layers), lw=1,
                      label=style.layer_label(k, n_layers) + " (seeds)") for k in range(n_layers)]
    if with_bound:
        handles.append(Line2D([], [], color="black", lw=1, label="IB bound"))
    ax.figure.legend(handles=handles, loc="outside lower center", ncols=3)


def colour_bar(fig: Figure, norm: LogNorm, axes) -> None:
    """The shared epoch colour bar beside `axes`."""
    fig.colorbar(style.epoch_mappable(norm), ax=axes, label="epoch", fraction=0.05, pad=0.02)


def plane_title(estimate: Estimate, prefix: str = "", width: int = TITLE_CHARS) -> str:
    """Estimator, parameters and seed count, for a panel title (lines of at most `width`
    characters where the words allow)."""
    seeds = style.seed_summary(estimate.ixt.shape[0])
    what = prefix + style.estimator_title(estimate.estimator, estimate.params)
    return f"{textwrap.fill(what, width, break_long_words=False)}\n{seeds}"


@style.styled
def infoplane_figure(cell: CellResults, estimate: Estimate, per_seed: bool = False) -> Figure:
    """One cell's information plane for one estimator setting."""
    fig = style.new_figure(style.COLUMN_WIDTH, 2.9)
    ax = fig.add_subplot()
    norm = style.epoch_norm(estimate.epochs)
    draw_infoplane(ax, estimate, n_inputs=cell.n_inputs, label_entropy=cell.label_entropy,
                   norm=norm, per_seed=per_seed, bound=cell.ib_bound)
    if per_seed:
        layer_legend(ax, estimate.ixt.shape[2], cell.ib_bound is not None)
    elif cell.ib_bound is not None:
        fig.legend(loc="outside lower center")
    colour_bar(fig, norm, ax)
    partial = cell.coverage(estimate.epochs)
    ax.set_title(plane_title(estimate, f"{cell.name}: ") + (f"\n{partial}" if partial else ""))
    return fig


@style.styled
def infoplane_grid(panels: list[tuple[str, CellResults, Estimate | None]], title: str,
                   per_seed: bool = False, shared: bool = True) -> Figure:
    """Information planes side by side (up to 3 per row) with a shared colour bar, and shared
    axes unless `shared` is False (estimators on different scales).

    Each panel is (title, cell, estimate); a None estimate leaves a 'not analysed' panel.
    """
    drawn = [(cell, est) for _, cell, est in panels if est is not None]
    ncols = 2 if len(panels) == 4 else min(len(panels), 3)
    nrows = -(-len(panels) // ncols)
    fig = style.new_figure(min(2.3 * ncols + 0.7, style.FULL_WIDTH + 0.5), 2.3 * nrows + 0.5)
    axes = fig.subplots(nrows, ncols, sharex=shared, sharey=shared, squeeze=False).ravel()
    norm = style.epoch_norm(np.concatenate([est.epochs for _, est in drawn]))
    common = union_limits([plane_limits(est, cell.n_inputs, cell.label_entropy) for cell, est in drawn])
    for i, (ax, (panel_title, cell, est)) in enumerate(zip(axes, panels)):
        if est is None:
            ax.text(0.5, 0.5, "not analysed", transform=ax.transAxes, ha="center")
        else:
            draw_infoplane(ax, est, n_inputs=cell.n_inputs, label_entropy=cell.label_entropy,
                           norm=norm, per_seed=per_seed, bound=cell.ib_bound,
                           limits=common if shared else None)
        ax.set_title(panel_title)
        ax.set_ylabel("I(T;Y) (bits)" if i % ncols == 0 or not shared else "")
        if shared and i + ncols < len(panels):  # a panel below shows the x axis
            ax.set_xlabel("")
        else:
            ax.set_xlabel("I(X;T) (bits)")
            ax.tick_params(labelbottom=True)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    with_bound = any(cell.ib_bound is not None for cell, _ in drawn)
    if per_seed:
        layer_legend(axes[0], max(est.ixt.shape[2] for _, est in drawn), with_bound)
    elif with_bound:
        fig.legend(handles=[Line2D([], [], color="black", lw=1, label="IB bound")],
                   loc="outside lower center")
    colour_bar(fig, norm, axes[: len(panels)].tolist())
    fig.suptitle(title, fontsize=8)
    return fig
