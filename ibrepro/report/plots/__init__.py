"""`ibrepro plot`: figures (PNG and PDF) for a cell or a whole experiment directory.

Files are opened read-only; a figure whose data is missing is skipped with a message
saying what is missing and how to get it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure

from ibrepro.analysis.results import CellResults, Estimate, find_cells, load_cell, select_estimates
from ibrepro.claims.phases import deep_layers
from ibrepro.claims.rules import Rules
from ibrepro.errors import UserError
from ibrepro.report.plots import style
from ibrepro.report.plots.clustering import CLUSTERING, clustering_figure
from ibrepro.report.plots.compare import compare_figure, exact_binning_figure, exact_binning_pair
from ibrepro.report.plots.curves import layer_curves_figure, learning_figure
from ibrepro.report.plots.gradients import gradients_figure
from ibrepro.report.plots.index import write_index
from ibrepro.report.plots.infoplane import infoplane_figure
from ibrepro.report.plots.overfit import overfit_figure
from ibrepro.report.plots.sweep import (
    DEPTH_KEY,
    depth_figure,
    matching_estimates,
    order_cells,
    sweep_infoplane_figure,
    sweep_keys,
)

__all__ = ["PlotReport", "make_figures", "plot_path"]

log = logging.getLogger(__name__)


@dataclass
class PlotReport:
    """What `make_figures` wrote and what it had to leave out."""

    out_dir: Path
    figures: list[Path] = field(default_factory=list)  # PNG and PDF of each figure
    skipped: list[str] = field(default_factory=list)  # one line each: what and why
    captions: dict[str, str] = field(default_factory=dict)  # PNG name -> caption
    index: list[Path] = field(default_factory=list)
    movies: list[Path] = field(default_factory=list)  # animations, when asked for

    def save(self, fig: Figure, stem: str, caption: str) -> None:
        """Write one figure (PNG + PDF) and remember its caption."""
        self.figures += style.save_figure(fig, self.out_dir, stem)
        self.captions[f"{stem}.png"] = caption


def plot_path(path: str | Path, out: str | Path | None = None, estimator: str | None = None,
              per_seed: bool = False, rules: Rules = Rules()) -> list[Path]:
    """Draw every figure for PATH; return the files written. Skips are logged as warnings."""
    report = make_figures(path, out=out, estimator=estimator, per_seed=per_seed, rules=rules)
    for message in report.skipped:
        log.warning("skipped: %s", message)
    return report.figures


def make_figures(path: str | Path, out: str | Path | None = None, estimator: str | None = None,
                 per_seed: bool = False, rules: Rules = Rules()) -> PlotReport:
    """Draw the figures of a cell file or an experiment directory into OUT.

    OUT defaults to `figures/` beside the cell file, or inside the experiment directory.
    ESTIMATOR selects estimate groups by estimator name or group name (default: all).
    Raises UserError for a missing path, a directory without run files, or an estimator
    computed for no cell. RULES are the claims' thresholds: the numbers figures mark
    (compression onset, late falls, epochs to the compressed state) are measured with them.
    """
    path = Path(path)
    return draw_figures(path, [load_cell(p) for p in find_cells(path)], out, estimator, per_seed, rules)


def draw_figures(path: Path, cells: list[CellResults], out: str | Path | None = None,
                 estimator: str | None = None, per_seed: bool = False, rules: Rules = Rules()) -> PlotReport:
    """`make_figures` for cells already loaded from PATH (a cell file or experiment directory)."""
    chosen = select_estimates(cells, estimator)
    out_dir = Path(out) if out is not None else (path if path.is_dir() else path.parent) / "figures"
    try:
        if out_dir.exists() and not out_dir.is_dir():
            raise UserError(f"output path {out_dir} exists and is not a directory")
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output directory {out_dir}: {exc.strerror}") from None
    report = PlotReport(out_dir=out_dir)
    for cell in cells:
        _cell_figures(report, cell, chosen[cell.name], estimator, per_seed, rules)
    if path.is_dir() and len(cells) > 1:
        _sweep_figures(report, path, cells, chosen, per_seed, rules)
    report.index = write_index(out_dir, report.captions)
    return report


def _cell_figures(report: PlotReport, cell: CellResults, estimates: tuple[Estimate, ...],
                  estimator: str | None, per_seed: bool, rules: Rules) -> None:
    report.skipped += [f"{cell.name}: {note}" for note in cell.notes]
    if cell.epochs.size == 0:
        report.skipped.append(f"all figures for {cell.name}: no logged epoch is complete yet")
        return
    name = style.safe_name(cell.name)
    running = "" if cell.status == "complete" else f" (run status: {cell.status})"
    if cell.metrics:
        report.save(learning_figure(cell), f"{name}_learning",
                    f"{cell.name}: train/test loss and accuracy vs epochs{running}")
    else:
        report.skipped.append(f"learning curves for {cell.name}: {cell.missing['metrics']}")
    if cell.gradients is not None:
        report.save(gradients_figure(cell), f"{name}_gradients",
                    f"{cell.name}: gradient mean and std over ‖W‖ per layer, SNR and "
                    f"drift→diffusion transition, weight norms{running}")
    else:
        report.skipped.append(f"gradient SNR for {cell.name}: {cell.missing['gradients']}")
    if not cell.has_estimates_file:
        report.skipped.append(f"information planes for {cell.name}: no estimates; "
                              f"run `ibrepro analyze {cell.path}` first")
        return
    if not estimates:
        have = ", ".join(sorted({e.group for e in cell.estimates})) or "none"
        wanted = f"{estimator!r} " if estimator else ""
        report.skipped.append(f"information planes for {cell.name}: no {wanted}estimates "
                              f"(groups present: {have})")
        return
    for est in estimates:
        what = style.estimator_title(est.estimator, est.params)
        group = style.safe_name(est.group)
        report.save(infoplane_figure(cell, est, per_seed), f"{name}_infoplane_{group}",
                    f"{cell.name}: information plane, {what}, colour = epoch{running}")
        report.save(layer_curves_figure(cell, est, rules), f"{name}_layers_{group}",
                    f"{cell.name}: I(X;T) and I(T;Y) per layer vs epochs, {what}")
        if CLUSTERING in est.extras:
            report.save(clustering_figure(cell, est), f"{name}_clustering_{group}",
                        f"{cell.name}: I(X;T) beside the class clustering of each layer vs epochs, {what}")
    deep = deep_layers(len(cell.config["model"]["hidden"]))
    if cell.metrics and deep:
        for est in estimates:
            report.save(overfit_figure(cell, est, deep, rules), f"{name}_overfit_{style.safe_name(est.group)}",
                        f"{cell.name}: I(T;Y) of the deeper hidden layers and the generalisation gap "
                        f"(test − train loss) vs epochs (claim v), {style.estimator_title(est.estimator, est.params)}")
    if len(estimates) > 1:
        report.save(compare_figure(cell, estimates, per_seed), f"{name}_compare_estimators",
                    f"{cell.name}: information planes under {len(estimates)} estimator settings")
    pair = exact_binning_pair(estimates)
    if pair is not None:
        report.save(exact_binning_figure(cell, *pair, per_seed), f"{name}_exact_vs_binning",
                    f"{cell.name}: the exact information plane of the quantized run beside "
                    f"{style.estimator_title(pair[1].estimator, pair[1].params)} of the same run")


def _sweep_figures(report: PlotReport, directory: Path, cells: list[CellResults],
                   chosen: dict[str, tuple[Estimate, ...]], per_seed: bool, rules: Rules) -> None:
    keys = sweep_keys(cells)
    if not keys:
        report.skipped.append(f"sweep figures for {directory}: the cells' config has no sweep")
        return
    cells = order_cells(cells, keys)
    experiment = str(cells[0].config.get("name") or directory.name)
    stem = style.safe_name(experiment)
    groups = list(dict.fromkeys(e.group for c in cells for e in chosen[c.name]))
    if not groups:
        report.skipped.append(f"sweep figures for {experiment}: no cell has estimates; "
                              f"run `ibrepro analyze {directory}` first")
        return
    swept = ", ".join(keys)
    drawn: set[str] = set()
    for group in groups:
        if group in drawn:
            continue
        reference = next(e for c in cells for e in chosen[c.name] if e.group == group)
        estimates = matching_estimates([chosen[c.name] for c in cells], reference)
        drawn |= {e.group for e in estimates if e is not None}
        missing = [c.name for c, e in zip(cells, estimates) if e is None]
        if missing:
            report.skipped.append(f"sweep panels without {group!r} estimates: {', '.join(missing)}")
        what = style.estimator_title(*next((e.estimator, e.params) for e in estimates if e))
        report.save(sweep_infoplane_figure(experiment, cells, estimates, keys, per_seed),
                    f"{stem}_sweep_infoplane_{style.safe_name(group)}",
                    f"{experiment}: information plane per cell over {swept}, {what}")
        if DEPTH_KEY in keys and len(cells) - len(missing) > 1:
            report.save(depth_figure(experiment, cells, estimates, keys, rules),
                        f"{stem}_depth_compression_{style.safe_name(group)}",
                        f"{experiment}: epochs to the compressed state vs number of hidden "
                        f"layers, {what}")
