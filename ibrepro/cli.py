"""The `ibrepro` command: argument parsing and user-facing messages only."""

from __future__ import annotations

import functools
import os
import signal
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.text import Text

from ibrepro.errors import UserError
from ibrepro.helplists import ListingCommand
from ibrepro.jaxsetup import configure as configure_jax
from ibrepro.mallocsetup import reuse_freed_memory
from ibrepro.progress import CellsProgress, TrainProgress
from ibrepro.train.interrupt import StopRequest, interrupts_kept

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Reproduce the information plane of deep networks (Shwartz-Ziv & Tishby 2017).")
EARLY_INTERRUPT = StopRequest()  # Ctrl-C between the start of `main` and the command's own handler
console = Console(stderr=True, markup=False)  # messages hold paths and names, printed as they are
# options train and analyze share
PROGRESS_OPTION = typer.Option(True, "--progress/--no-progress", help="Show a progress bar.")
CLUSTER_OPTION = typer.Option(
    None, "--cluster", help="Run cells as Dask tasks: local:N, tcp://HOST:PORT, slurm or pbs (needs the cluster "
        "extra).")
CLUSTER_CONFIG_OPTION = typer.Option(None, "--cluster-config", help="dask-jobqueue settings (YAML) for --cluster "
        "slurm/pbs.")


def _print_version(value: bool) -> None:
    if value:
        from ibrepro import __version__

        print(f"ibrepro {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="Print the version and exit."),
) -> None:
    """Train networks, estimate their information plane, and draw the paper's figures.

    Stages: train (run file <cell>.h5) -> analyze (<cell>.mi.h5) -> bound -> claims
    (<cell>.claims.json) -> plot / report. Documentation: docs/ (make docs), README.md.
    """


def _say(message: str) -> None:
    """Print one message as plain text (no rich markup: brackets in names stay)."""
    console.print(message, markup=False, highlight=False, soft_wrap=True)


def _fail(message: str, code: int = 2) -> None:
    console.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _interruptible(message: str):
    """A command that Ctrl-C stops from its first second: one line (`message`), exit 130; a
    UserError anywhere in it (also in set-up, e.g. XLA_FLAGS) is one line, exit 2."""
    def wrap(command):
        @functools.wraps(command)
        def run(*args, **kwargs):
            if EARLY_INTERRUPT.requested:
                _fail(f"interrupted; {message}", 130)
            with interrupts_kept() as sigint:
                try:
                    result = command(*args, **kwargs)
                except UserError as exc:
                    _fail(str(exc))
                except BaseException as exc:  # an interrupt while a module loads may arrive as another error
                    if not (sigint.requested or isinstance(exc, KeyboardInterrupt)):
                        raise
                    _fail(f"interrupted; {message}", 130)
                if sigint.requested:
                    _fail(f"interrupted; {message}", 130)
            return result
        return run
    return wrap


def _check_cluster_options(cluster: str | None, cluster_config: Path | None) -> None:
    if cluster_config is not None and not cluster:
        _fail("--cluster-config needs --cluster slurm or --cluster pbs")


@app.command()
@_interruptible("run the same command again to resume from the last checkpoint")
def train(
    config_path: Path = typer.Argument(..., metavar="CONFIG.toml", help="Experiment file."),
    out: Path = typer.Option(Path("runs"), "--out", help="Output directory."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: key=value (repeatable)."),
    force: bool = typer.Option(False, "--force/--no-force", help="Start over cells whose stored config differs "
        "(their estimates and claims are set aside as <file>.old-<run id>)."),
    progress: bool = PROGRESS_OPTION,
    cluster: str | None = CLUSTER_OPTION,
    cluster_config: Path | None = CLUSTER_CONFIG_OPTION,
    allow_divergence: bool = typer.Option(False, "--allow-divergence", help="Exit 0 when a seed's training "
                                          "loss became non-finite (the run file records it in `diverged`)."),
) -> None:
    """Train every cell of an experiment; re-running resumes interrupted cells."""
    _check_cluster_options(cluster, cluster_config)
    configure_jax()
    from ibrepro import config as cfg
    from ibrepro.api import stages
    from ibrepro.data import full_batch
    from ibrepro.train.interrupt import Interrupted, stop_on_signals

    started = time.monotonic()
    try:
        config = cfg.load(config_path, set_)
        cells = cfg.cells(config)
        n_cells = len(cells)
        if any(c["dataset"] == "tishby12" and c["train"]["train_fraction"] == 1.0 for _, c in cells):
            _say("note: train_fraction = 1 leaves no test set; test metrics are NaN")
        full = [name for name, c in cells if full_batch(c)]
        if full:
            _say(f"warning: full-batch gradient descent ({', '.join(full)}): no minibatch noise; "
                 "gradient std is 0 and the SNR (claim ii) is undefined")
        if cluster:
            from ibrepro.cluster import train_experiment

            with CellsProgress(console, progress) as bar:
                results = train_experiment(config, out, force, cluster, cluster_config, bar.report)
        else:
            bar = TrainProgress(console, n_cells, config["train"]["epochs"], enabled=progress)
            with stop_on_signals() as stop, bar:
                results = stages.train(config, out, force=force, on_cell=bar.cell, on_snapshot=bar.snapshot,
                                       say=lambda note: _say(f"note: {note}"), stop=stop,
                                       allow_divergence=allow_divergence)
    except Interrupted as exc:
        _fail(str(exc), 130)
    except UserError as exc:
        _fail(str(exc))
    counts = {k: sum(1 for _, outcome in results if outcome == k) for k in ("trained", "resumed", "skipped")}
    summary = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
    _say(f"{len(results)} cell(s) ({summary}) in {time.monotonic() - started:.1f} s -> {out / config['name']}")


@app.command(cls=ListingCommand)
@_interruptible("estimates written before the interruption are kept")
def analyze(
    path: Path = typer.Argument(..., metavar="PATH", help="A cell file (<cell>.h5) or an experiment directory."),
    estimator: list[str] = typer.Option([], "--estimator", help="Estimator name (repeatable; listed below)."),
    set_: list[str] = typer.Option([], "--set", help="An estimator setting or a setting for every estimator, "
        "key=value (repeatable; listed below with defaults)."),
    progress: bool = PROGRESS_OPTION,
    cluster: str | None = CLUSTER_OPTION,
    cluster_config: Path | None = CLUSTER_CONFIG_OPTION,
    kernels: str | None = typer.Option(
        None, "--kernels", help="Where binning, adaptive, exact and kde finish: device (sort and count on JAX's "
        "default device), host (numpy), or auto (default: device on accelerators, host on CPUs); "
        "sets $IBREPRO_KERNELS."),
) -> None:
    """Estimate I(X;T) and I(T;Y) per seed, epoch and layer into <cell>.mi.h5 beside each run file."""
    _check_cluster_options(cluster, cluster_config)
    configure_jax()
    reuse_freed_memory()
    from ibrepro.analysis.estimators.placement import KERNEL_CHOICES, KERNELS_ENV

    if kernels is not None:
        if kernels not in KERNEL_CHOICES:
            _fail(f"--kernels must be one of {', '.join(KERNEL_CHOICES)}, got {kernels!r}")
        os.environ[KERNELS_ENV] = kernels  # read by every worker thread; cluster tasks carry it too

    started = time.monotonic()

    def say(note: str) -> None:
        _say(f"note: {note}")

    try:
        if cluster:
            from ibrepro.cluster import analyze_experiment

            written = analyze_experiment(path, estimator, set_, cluster, cluster_config, kernels, say)
        else:
            from ibrepro.api import stages

            written = stages.analyze(path, estimator, set_, progress=progress, say=say)
    except UserError as exc:
        _fail(str(exc))
    _say(f"{len(written)} cell(s) analysed in {time.monotonic() - started:.1f} s -> "
         f"{', '.join(str(p) for p in written)}")


@app.command()
@_interruptible("figures written before the interruption are kept; run the same command again")
def plot(
    path: Path = typer.Argument(..., metavar="PATH", help="A cell file (<cell>.h5) or an experiment directory."),
    out: Path | None = typer.Option(None, "--out", help="Output directory (default: figures/ beside the cell, or in "
        "the directory)."),
    estimator: str | None = typer.Option(None, "--estimator", help="Only estimate groups of this estimator (or group "
        "name)."),
    per_seed: bool = typer.Option(False, "--per-seed/--no-per-seed", help="Also draw each seed's trace in the "
        "information planes."),
    movie: bool = typer.Option(False, "--movie/--no-movie", help="Also write the information-plane animation "
        "(GIF, and MP4 where ffmpeg is installed) per cell and estimate group."),
    rule: list[str] = typer.Option([], "--rule", help="Change a claim rule's threshold for the numbers the figures "
        "mark: name=value (repeatable; as for `claims`)."),
) -> None:
    """Draw the figures (PNG and PDF) of a cell or of every cell of an experiment."""
    from ibrepro.api import stages

    try:
        report = stages.plot(path, out=out, estimator=estimator, per_seed=per_seed, rules=rule, movie=movie)
    except UserError as exc:
        _fail(str(exc))
    for message in report.skipped:
        _say(f"skipped: {message}")
    _say(f"{len(report.figures) // 2} figure(s) as PNG + PDF -> {report.out_dir} "
         f"(index: {report.out_dir / 'index.html'})")
    if movie:
        names = ", ".join(p.name for p in report.movies) or "none (no estimates)"
        _say(f"{len(report.movies)} animation file(s): {names}")


@app.command()
@_interruptible("the estimates files are unchanged")
def bound(
    path: Path = typer.Argument(..., metavar="CELL", help="A cell file (<cell>.h5) or an experiment directory."),
) -> None:
    """Compute the IB curve of each cell's data into its <cell>.mi.h5 (group ib-bound)."""
    from ibrepro.api import stages

    try:
        written = stages.bound(path)
    except UserError as exc:
        _fail(str(exc))
    _say(f"IB bound of {len(written)} cell(s) -> {', '.join(str(p) for p in written)}")


RULE_HELP = "Change a claim rule's threshold: name=value (repeatable; rules listed below with defaults)."


@app.command(cls=ListingCommand)
@_interruptible("run the same command again to judge the claims")
def claims(
    path: Path = typer.Argument(..., metavar="PATH", help="A cell file (<cell>.h5) or an experiment directory."),
    estimator: list[str] = typer.Option([], "--estimator", help="Only estimate groups of this estimator or group name "
        "(repeatable; default all)."),
    rule: list[str] = typer.Option([], "--rule", help=RULE_HELP),
) -> None:
    """Judge the paper's claims on every estimate group into <cell>.claims.json (and claims.json)."""
    from ibrepro.api import stages

    try:
        written = stages.claims(path, estimator, rule)
    except UserError as exc:
        _fail(str(exc))
    _say(f"claims -> {', '.join(str(p) for p in written)}")


@app.command(cls=ListingCommand)
@_interruptible("run the same command again to write the report")
def report(
    path: Path = typer.Argument(..., metavar="PATH", help="A cell file (<cell>.h5) or an experiment directory."),
    estimator: str | None = typer.Option(None, "--estimator", help="Only estimate groups of this estimator or group "
        "name (default: all)."),
    out: Path | None = typer.Option(None, "--out", help="Output directory (default: the cell's directory or the "
        "experiment directory)."),
    rule: list[str] = typer.Option([], "--rule", help=RULE_HELP),
) -> None:
    """Write report.md and report.html from the claims files (updated first where stale) and figures."""
    from ibrepro.api import stages

    try:
        result = stages.report(path, estimator=estimator, out=out, rules=rule)
    except UserError as exc:
        _fail(str(exc))
    for message in result.skipped:
        _say(f"skipped figure: {message}")
    if result.judged:
        _say(f"claims updated: {', '.join(str(p) for p in result.judged)}")
    _say(f"report -> {result.markdown} and {result.html} (figures in {result.figures})")


def main() -> None:
    """Console-script entry point: a Ctrl-C before the command starts is kept for it."""
    signal.signal(signal.SIGINT, lambda signum, frame: setattr(EARLY_INTERRUPT, "requested", True))
    app()


if __name__ == "__main__":
    sys.exit(main())
