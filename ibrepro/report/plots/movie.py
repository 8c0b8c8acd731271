"""The information-plane animation (the picture of the paper's talks): every layer's
(I(X;T), I(T;Y)), averaged over seeds, moving over the logged epochs, coloured by layer, with
its path so far and an epoch counter.

Written as GIF (matplotlib's Pillow writer, always available) and, where ffmpeg is on the
PATH, as MP4 too. Frames are the logged epochs (log-spaced by the training schedule), thinned
evenly to at most `max_frames`.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.animation import FFMpegWriter, PillowWriter
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

# the results model as the plots package re-exports it (its home module moves with issue 25)
from ibrepro.analysis.results import CellResults, Estimate, find_cells, load_cell, select_estimates
from ibrepro.claims.phases import summary
from ibrepro.report.plots import style
from ibrepro.report.plots.infoplane import plane_limits

__all__ = ["frame_indices", "movie_figure", "write_movie", "write_movies"]

MAX_FRAMES = 120
FPS = 12
DPI = 100
SIZE = (4.8, 3.6)  # inches: 480 x 360 pixels at DPI


def frame_indices(n_epochs: int, max_frames: int = MAX_FRAMES) -> np.ndarray:
    """Positions on the epoch axis shown as frames: all of them, or `max_frames` spread evenly
    (the first and the last included)."""
    if n_epochs <= max_frames:
        return np.arange(n_epochs)
    return np.unique(np.linspace(0, n_epochs - 1, max_frames).round().astype(int))


class _Plane:
    """The animated artists of one information plane: a path and a head per layer."""

    def __init__(self, fig: Figure, cell: CellResults, estimate: Estimate):
        self.ixt = summary(estimate.ixt).center  # (E, L), mean over seeds
        self.ity = summary(estimate.ity).center
        self.epochs = estimate.epochs
        n_layers = self.ixt.shape[1]
        ax = fig.add_subplot()
        (x_lo, x_hi), (y_lo, y_hi) = plane_limits(estimate, cell.n_inputs, cell.label_entropy)
        ax.set(xlim=(x_lo, x_hi), ylim=(y_lo, y_hi), xlabel="I(X;T) (bits)", ylabel="I(T;Y) (bits)")
        ax.axhline(cell.label_entropy, color=style.REFERENCE_COLOUR, lw=0.6, ls="--", zorder=0)
        if cell.ib_bound is not None:
            ax.plot(cell.ib_bound.ixt, cell.ib_bound.ity, color="black", lw=1.0, zorder=1)
        colours = [style.layer_colour(k, n_layers) for k in range(n_layers)]
        self.paths = [ax.plot([], [], color=c, lw=0.9, alpha=0.55, zorder=2)[0] for c in colours]
        self.heads = [ax.plot([], [], "o", color=c, ms=6, mec="white", mew=0.6, zorder=3)[0]
                      for c in colours]
        self.counter = ax.text(1.0, 1.02, "", transform=ax.transAxes, ha="right", va="bottom",
                               fontsize=10, family="monospace")
        handles = [Line2D([], [], color=c, marker="o", lw=0.9, label=style.layer_label(k, n_layers))
                   for k, c in enumerate(colours)]
        if cell.ib_bound is not None:
            handles.append(Line2D([], [], color="black", lw=1.0, label="IB bound"))
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4))
        seeds = style.seed_summary(estimate.ixt.shape[0])
        where = cell.config.get("name", cell.name) + ("" if cell.name == "cell" else f" / {cell.name}")
        ax.set_title(f"{where}: {style.estimator_title(estimate.estimator, estimate.params)}\n{seeds}", loc="left")

    def show(self, i: int) -> None:
        """Draw the layers at logged epoch position `i` with their paths up to it."""
        for k, (path, head) in enumerate(zip(self.paths, self.heads)):
            path.set_data(self.ixt[: i + 1, k], self.ity[: i + 1, k])
            head.set_data(self.ixt[i : i + 1, k], self.ity[i : i + 1, k])
        self.counter.set_text(f"epoch {int(self.epochs[i]):>6d}")


@style.styled
def movie_figure(cell: CellResults, estimate: Estimate) -> tuple[Figure, _Plane]:
    """The animation's figure and its artists (call `.show(i)` to move to epoch position i)."""
    fig = style.new_figure(*SIZE)
    return fig, _Plane(fig, cell, estimate)


def write_movie(cell: CellResults, estimate: Estimate, stem: Path, max_frames: int = MAX_FRAMES,
                fps: int = FPS) -> list[Path]:
    """Write `stem`.gif, and `stem`.mp4 when ffmpeg is available; return the files written."""
    fig, plane = movie_figure(cell, estimate)
    frames = frame_indices(len(plane.epochs), max_frames)
    writers = [(PillowWriter(fps=fps), stem.with_suffix(".gif"))]
    if FFMpegWriter.isAvailable():
        writers.append((FFMpegWriter(fps=fps, codec="h264", extra_args=["-pix_fmt", "yuv420p"]),
                        stem.with_suffix(".mp4")))
    for writer, path in writers:
        with matplotlib.rc_context(style.RC), writer.saving(fig, str(path), DPI):
            for i in frames:
                plane.show(int(i))
                writer.grab_frame()
    return [path for _, path in writers]


def write_movies(path: str | Path, out: str | Path, estimator: str | None = None) -> list[Path]:
    """An animation per cell and estimate group of PATH (a cell file or an experiment directory)
    into OUT, named `<cell>_movie_<group>`; returns the files written."""
    out = Path(out)
    cells = [load_cell(p) for p in find_cells(Path(path))]
    chosen = select_estimates(cells, estimator)
    written = []
    for cell in cells:
        for est in chosen[cell.name]:
            if est.epochs.size:
                stem = out / f"{style.safe_name(cell.name)}_movie_{style.safe_name(est.group)}"
                written += write_movie(cell, est, stem)
    return written
