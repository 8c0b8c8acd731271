"""The one figure style: sizes, fonts, colours, epoch colour scale, saving.

Layer colours are the Okabe–Ito palette (colour-blind safe); epochs use a sequential
colormap on a log scale. Figures are built on `matplotlib.figure.Figure` directly (no
pyplot, no display) and rendered with the Agg (PNG) and PDF canvases.
"""

from __future__ import annotations

import functools
import io
import re
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from ibrepro.durable import write_file

COLUMN_WIDTH = 3.4  # inches: one column of a two-column paper
FULL_WIDTH = 7.0  # inches: the full text width
PNG_DPI = 200

# Okabe & Ito (2008), black and yellow moved last (least visible on white).
OKABE_ITO = (
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#009E73",  # bluish green
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#000000",  # black
    "#F0E442",  # yellow
)
OUTPUT_COLOUR = "#CC79A7"  # reddish purple; black is kept for the IB bound
HIDDEN_COLOURS = tuple(c for c in OKABE_ITO if c not in (OUTPUT_COLOUR, "#000000"))
EPOCH_CMAP = "viridis"
JOIN_COLOUR = "0.6"  # the grey lines joining layers at one epoch
REFERENCE_COLOUR = "0.45"  # reference lines: H(X), H(Y), SNR = 1
CAVEAT_COLOUR = "#a00000"  # an estimator's broken inequality, written in the panel

RC = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 6.5,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "lines.linewidth": 1.2,
    "axes.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "figure.constrained_layout.use": True,
}


def styled(build):
    """Decorator: run a figure-building function under the shared rc settings."""

    @functools.wraps(build)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(RC):
            return build(*args, **kwargs)

    return wrapper


def new_figure(width: float, height: float) -> Figure:
    """A blank figure of the given size in inches, not attached to any display."""
    return Figure(figsize=(width, height))


def layer_colour(k: int, n_layers: int | None = None) -> str:
    """Colour of layer k (0-based). Given `n_layers`, the output layer (the last) has its own
    colour, so hidden layer i and the output keep their colours across networks of any depth."""
    if n_layers is not None and k == n_layers - 1:
        return OUTPUT_COLOUR
    return HIDDEN_COLOURS[k % len(HIDDEN_COLOURS)]


def layer_label(k: int, n_layers: int) -> str:
    """'layer 1'.. for hidden layers, 'output' for the last one."""
    return "output" if k == n_layers - 1 else f"layer {k + 1}"


def epoch_norm(epochs: np.ndarray) -> LogNorm:
    """Log colour scale over the logged epochs (epoch 0 is shown with epoch 1's colour)."""
    positive = np.asarray(epochs)[np.asarray(epochs) > 0]
    vmin = float(positive.min()) if positive.size else 1.0
    vmax = max(float(np.max(epochs)), vmin * 10)
    return LogNorm(vmin=vmin, vmax=vmax, clip=True)


def epoch_colours(epochs: np.ndarray, norm: LogNorm) -> np.ndarray:
    """RGBA colour of each epoch under `norm`."""
    cmap = matplotlib.colormaps[EPOCH_CMAP]
    return cmap(norm(np.maximum(np.asarray(epochs, float), norm.vmin)))


def epoch_mappable(norm: LogNorm) -> matplotlib.cm.ScalarMappable:
    """What a colour bar for `norm` is drawn from."""
    return matplotlib.cm.ScalarMappable(norm=norm, cmap=EPOCH_CMAP)


def seed_summary(n_seeds: int, spread: bool = False) -> str:
    """'1 seed', 'mean of 5 seeds' or 'mean ± 1 std over 5 seeds'."""
    if n_seeds == 1:
        return "1 seed"
    return f"mean ± 1 std over {n_seeds} seeds" if spread else f"mean of {n_seeds} seeds"


def marker_for(n_points: int) -> str | None:
    """A small point marker when a curve has so few points that a line alone may not show."""
    return "o" if n_points <= 20 else None


def log_scales(ax, y: bool = False) -> bool:
    """Log x (and y) scale if the lines drawn so far have a point that can show on them.

    Call before adding reference lines (axhline/axvline). A panel with nothing to show is
    left with a 'no data' note and no ticks (log axes with no positive data cannot be drawn,
    and matplotlib's default ±0.05 ticks would look like a scale). Returns whether the
    scales were set.
    """
    points = [line.get_xydata() for line in ax.lines]
    xy = np.concatenate(points) if points else np.empty((0, 2))
    ok = np.isfinite(xy).all(axis=1) & (xy[:, 0] > 0) & ((xy[:, 1] > 0) if y else True)
    if not ok.any():
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center")
        ax.set_xticks([])
        ax.set_yticks([])
        return False
    ax.set_xscale("log")
    if y:
        ax.set_yscale("log")
    return True


def estimator_title(estimator: str, params: dict) -> str:
    """'binning (n_bins=30, lo=-1, hi=1)' from an estimator name and its parameters."""
    if not params:
        return estimator
    inner = ", ".join(f"{key}={_short(value)}" for key, value in params.items())
    return f"{estimator} ({inner})"


def _short(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def safe_name(text: str) -> str:
    """A file-name-safe version of `text` (letters, digits, '.', '_', '-')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


def save_figure(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    """Write `stem`.png (PNG_DPI) and `stem`.pdf into out_dir, each whole or not at all
    (UserError when it cannot be written); return both paths."""
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"]
    png, pdf = io.BytesIO(), io.BytesIO()
    with matplotlib.rc_context(RC):
        fig.savefig(png, format="png", dpi=PNG_DPI)
        fig.set_layout_engine("none")  # keep the layout just computed: the PDF has the same size
        fig.savefig(pdf, format="pdf")
    for path, image in zip(paths, (png, pdf)):
        write_file(path, image.getvalue())
    return paths
