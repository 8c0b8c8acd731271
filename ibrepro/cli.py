"""The `ibrepro` command: argument parsing and user-facing messages only."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ibrepro.errors import UserError
from ibrepro.jaxsetup import configure as configure_jax

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Reproduce the information plane of deep networks (Shwartz-Ziv & Tishby 2017).")
console = Console(stderr=True)


@app.callback()
def _root() -> None:
    """Train networks, estimate their information plane, and draw the paper's figures."""


def _fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@app.command()
def train(
    config_path: Path = typer.Argument(..., metavar="CONFIG.toml", help="Experiment file."),
    out: Path = typer.Option(Path("runs"), "--out", help="Output directory."),
    set_: List[str] = typer.Option([], "--set", help="Override a config key: key=value (repeatable)."),
    force: bool = typer.Option(False, "--force", help="Start over cells whose stored config differs."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Train every cell of an experiment; re-running resumes interrupted cells."""
    configure_jax()
    from ibrepro import config as cfg
    from ibrepro.train.loop import train_experiment

    started = time.monotonic()
    try:
        config = cfg.load(config_path, set_)
        cells = cfg.cells(config)
        n_cells = len(cells)
        if any(c["dataset"] == "tishby12" and c["train"]["train_fraction"] == 1.0 for _, c in cells):
            console.print("note: train_fraction = 1 leaves no test set; test metrics are NaN", highlight=False)
        with _TrainProgress(n_cells, config["train"]["epochs"], enabled=progress) as bar:
            results = train_experiment(config, out, force=force, on_cell=bar.cell, on_snapshot=bar.snapshot)
    except UserError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted; run the same command again to resume", 130)
    counts = {k: sum(1 for _, outcome in results if outcome == k) for k in ("trained", "resumed", "skipped")}
    summary = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
    console.print(f"{len(results)} cell(s) ({summary}) in {time.monotonic() - started:.1f} s "
                  f"-> {out / config['name']}", highlight=False)


@app.command()
def analyze(
    path: Path = typer.Argument(..., metavar="PATH", help="A cell file (<cell>.h5) or an experiment directory."),
    estimator: List[str] = typer.Option([], "--estimator", help="binning (default), binning-layer, adaptive, kde or exact (repeatable)."),
    set_: List[str] = typer.Option([], "--set", help="Estimator parameter or option, key=value (repeatable): n_bins, lo, hi, range, sigma2, levels, every, seeds."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Estimate I(X;T) and I(T;Y) per seed, epoch and layer into <cell>.mi.h5 beside each run file."""
    configure_jax()
    from ibrepro.analysis.analyze import analyze_path

    started = time.monotonic()
    try:
        written = analyze_path(path, estimator, set_, progress=progress,
                               say=lambda note: console.print(f"note: {note}", highlight=False, soft_wrap=True))
    except UserError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted; estimates written before the interruption are kept", 130)
    console.print(f"{len(written)} cell(s) analysed in {time.monotonic() - started:.1f} s -> "
                  f"{', '.join(str(p) for p in written)}", highlight=False, soft_wrap=True)


@app.command()
def plot(
    path: Path = typer.Argument(..., metavar="PATH", help="A cell file (<cell>.h5) or an experiment directory."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output directory (default: figures/ beside the cell, or in the directory)."),
    estimator: Optional[str] = typer.Option(None, "--estimator", help="Only estimate groups of this estimator (or group name)."),
    per_seed: bool = typer.Option(False, "--per-seed", help="Also draw each seed's trace in the information planes."),
) -> None:
    """Draw the figures (PNG and PDF) of a cell or of every cell of an experiment."""
    from ibrepro.report.plots import make_figures

    try:
        report = make_figures(path, out=out, estimator=estimator, per_seed=per_seed)
    except UserError as exc:
        _fail(str(exc))
    for message in report.skipped:
        console.print(f"skipped: {message}", highlight=False, soft_wrap=True)
    console.print(f"{len(report.figures) // 2} figure(s) as PNG + PDF -> {report.out_dir} "
                  f"(index: {report.out_dir / 'index.html'})", highlight=False, soft_wrap=True)


@app.command()
def bound(
    path: Path = typer.Argument(..., metavar="CELL", help="A cell file (<cell>.h5) or an experiment directory."),
) -> None:
    """Compute the IB curve of each cell's data into its <cell>.mi.h5 (group ib-bound)."""
    from ibrepro.ib.bound import bound_path

    try:
        written = bound_path(path)
    except UserError as exc:
        _fail(str(exc))
    console.print(f"IB bound of {len(written)} cell(s) -> {', '.join(str(p) for p in written)}",
                  highlight=False, soft_wrap=True)


@app.command()
def report(
    path: Path = typer.Argument(..., metavar="PATH", help="A cell file (<cell>.h5) or an experiment directory."),
    estimator: Optional[str] = typer.Option(None, "--estimator", help="Estimate group to judge the claims on, by estimator or group name (default: the first binning group)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output directory (default: the cell's directory or the experiment directory)."),
) -> None:
    """Write report.md and report.html: figures, the paper's five claims with numbers and verdicts, settings."""
    configure_jax()
    from ibrepro.report.render import write_report

    try:
        result = write_report(path, estimator=estimator, out=out)
    except UserError as exc:
        _fail(str(exc))
    for message in result.skipped:
        console.print(f"skipped figure: {message}", highlight=False, soft_wrap=True)
    console.print(f"report -> {result.markdown} and {result.html} (figures in {result.figures})",
                  highlight=False, soft_wrap=True)


class _TrainProgress:
    """A rich progress display: cells, epochs of the current cell, loss and accuracy."""

    def __init__(self, n_cells: int, epochs: int, enabled: bool):
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=console, disable=not enabled,
        )
        self.cells = self.progress.add_task("cells", total=n_cells, info="")
        self.epochs = self.progress.add_task("epochs", total=epochs, info="")

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def cell(self, index: int, total: int, name: str) -> None:
        self.progress.update(self.cells, completed=index, info=name)
        self.progress.reset(self.epochs)

    def snapshot(self, snap) -> None:
        self.progress.update(
            self.epochs, completed=snap.epoch, total=snap.epochs,
            info=f"loss {snap.train_loss:.3f} train acc {snap.train_acc:.3f} test acc {snap.test_acc:.3f}")
        if snap.epoch == snap.epochs:
            self.progress.advance(self.cells)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    sys.exit(main())
