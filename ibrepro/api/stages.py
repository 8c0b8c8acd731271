"""The pipeline's stages as functions, `ibrepro.stages.<name>`: what each CLI command calls.

train -> analyze -> bound -> claims -> plot -> report; each reads the previous stage's files
and writes its own beside them (DESIGN.md section 7), so a script can drive a whole
experiment without a subprocess. Bad input raises ValueError (the CLI prints its message).

Examples:
    >>> import ibrepro, tempfile
    >>> config = {"name": "doc", "dataset": "tishby12", "model": {"hidden": [4, 3]},
    ...           "train": {"epochs": 4, "seeds": 1}, "log": {"snapshots": 3}}
    >>> out = tempfile.mkdtemp()
    >>> [(path, outcome)] = ibrepro.stages.train(config, out)
    >>> path.name, outcome
    ('cell.h5', 'trained')
    >>> [p.name for p in ibrepro.stages.analyze(path)]
    ['cell.mi.h5']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ibrepro.api.inputs import user_errors

PathLike = str | Path


@user_errors
def train(config: PathLike | Mapping[str, Any], out: PathLike = "runs", *, overrides: Sequence[str] = (),
          force: bool = False, on_cell: Callable[[int, int, str], None] | None = None,
          on_snapshot: Callable[[Any], None] | None = None, say: Callable[[str], None] | None = None,
          stop: Any = None, allow_divergence: bool = False) -> list[tuple[Path, str]]:
    """Train every cell of an experiment into `out/<name>/<cell>.h5`; re-running resumes.

    Args:
        config: An experiment file (TOML) or its table as a dict (DESIGN.md section 7 keys).
        out: The output directory.
        overrides: "key=value" changes, as `--set` takes them.
        force: Start over cells whose stored config differs.
        on_cell: Called with (index, count, name) as each cell starts.
        on_snapshot: Called with each snapshot's progress (epoch, metrics) after it is written.
        say: Receives one-line notes (e.g. results set aside by a new run).
        stop: A stop request polled after every snapshot: a checkpoint is written, then Interrupted.
        allow_divergence: Return normally when a seed's training loss became non-finite (the run
            file records it in `diverged`); otherwise UserError names the diverged cells.

    Returns:
        (run file, "trained" | "resumed" | "skipped") per cell.

    References:
        Shwartz-Ziv & Tishby (2017), arXiv:1703.00810, section 3 (the 12-bit task and network).
    """
    from ibrepro import config as cfg
    from ibrepro.jaxsetup import configure
    from ibrepro.train.loop import train_experiment

    configure()
    resolved = (cfg.resolve(dict(config), list(overrides)) if isinstance(config, Mapping)
                else cfg.load(config, list(overrides)))
    return train_experiment(resolved, Path(out), force=force, on_cell=on_cell, on_snapshot=on_snapshot,
                            say=say, stop=stop, allow_divergence=allow_divergence)


@user_errors
def analyze(path: PathLike, estimators: Sequence[str] = ("binning",),
            settings: Mapping[str, Any] | Sequence[str] | None = None, *, progress: bool = False,
            say: Callable[[str], None] | None = None) -> list[Path]:
    """Estimate I(X;T), I(T;Y) per seed, epoch and layer into `<cell>.mi.h5` beside each run file.

    Args:
        path: A run file or an experiment directory.
        estimators: Estimator names (binning, binning-layer, adaptive, kde, exact, knn, renyi, noisy).
        settings: Estimator parameters and options by name ({"n_bins": 30, "every": 10}), or
            "key=value" strings as `--set` takes them.
        progress: Show a progress bar on stderr.
        say: Receives notes (e.g. "still training"); default: logging.

    Returns:
        The estimates files written.

    References:
        DESIGN.md section 4 (estimators) and 7 (the estimates file).
    """
    from ibrepro.analysis.analyze import analyze_path
    from ibrepro.jaxsetup import configure

    configure()
    if settings is None or isinstance(settings, Mapping):
        settings = {str(key): str(value) for key, value in (settings or {}).items()}
    return analyze_path(path, list(estimators), settings, progress=progress, say=say)


@user_errors
def bound(path: PathLike) -> list[Path]:
    """Compute the IB curve of each cell's data into its `<cell>.mi.h5` (group `ib-bound`).

    Args:
        path: A run file or an experiment directory.

    Returns:
        The estimates files written.

    References:
        Tishby, Pereira & Bialek (1999), the information bottleneck method.
    """
    from ibrepro.ib.bound import bound_path

    return bound_path(path)


@user_errors
def claims(path: PathLike, estimators: Sequence[str] = (),
           rules: Mapping[str, float] | Sequence[str] | None = None) -> list[Path]:
    """Judge the paper's claims into `<cell>.claims.json` (and `claims.json` of a directory).

    Args:
        path: A run file or an experiment directory.
        estimators: Estimator or group names to judge (default: every group).
        rules: Changed rule thresholds by name ({"compression_share": 0.6}) or "name=value" strings.

    Returns:
        The claims files written.

    References:
        DESIGN.md section 7 (claims file); `ibrepro.judge` for the verdicts as data.
    """
    from ibrepro.claims.judge import judge_path

    _check_estimator_names(path, list(estimators))
    return judge_path(path, tuple(estimators), rule_set(rules))


@user_errors
def plot(path: PathLike, out: PathLike | None = None, estimator: str | None = None, per_seed: bool = False,
         rules: Mapping[str, float] | Sequence[str] | None = None, movie: bool = False):
    """Draw the figures (PNG and PDF) of a cell or an experiment, marking the numbers the claims
    measure under `rules`; with `movie`, also the information-plane animations. Returns what was
    written and skipped (`.figures`, `.skipped`, `.out_dir`, `.movies`)."""
    from ibrepro.report.plots import make_figures
    from ibrepro.report.plots.movie import write_movies

    _check_estimator_names(path, [estimator] if estimator else [])
    report = make_figures(path, out=out, estimator=estimator, per_seed=per_seed, rules=rule_set(rules))
    report.movies = write_movies(path, report.out_dir, estimator) if movie else []
    return report


@user_errors
def report(path: PathLike, estimator: str | None = None, out: PathLike | None = None,
           rules: Mapping[str, float] | Sequence[str] | None = None):
    """Write report.md and report.html (claims updated first where stale); returns the paths
    (`.markdown`, `.html`, `.figures`) and notes (`.skipped`, `.judged`)."""
    from ibrepro.jaxsetup import configure
    from ibrepro.report.render import write_report

    configure()
    _check_estimator_names(path, [estimator] if estimator else [])
    return write_report(path, estimator=estimator, out=out, rules=rule_set(rules))


def rule_set(rules: Mapping[str, float] | Sequence[str] | None):
    """Rules from {name: value} or "name=value" strings (the CLI's --rule)."""
    from ibrepro.claims.rules import parse_rules

    if rules is None:
        return parse_rules(())
    items = [f"{k}={v}" for k, v in rules.items()] if isinstance(rules, Mapping) else list(rules)
    return parse_rules(items)


def _check_estimator_names(path: Path, names: list[str]) -> None:
    """UserError (one line, the known names) unless every `--estimator` name is an estimator
    or the name of an estimate group of a cell under `path`."""
    if not names:
        return
    import h5py

    from ibrepro.analysis.cell import find_cells
    from ibrepro.analysis.estimators import REGISTRY
    from ibrepro.errors import UserError
    from ibrepro.layout import estimates_path

    groups: set[str] = set()
    for run in find_cells(path):
        try:
            with h5py.File(estimates_path(run), "r", locking=False) as estimates:
                groups |= {name for name, g in estimates.items()
                           if isinstance(g, h5py.Group) and g.attrs.get("estimator") != "ib-bound"}
        except OSError:  # none yet, or unreadable: the stage itself says so
            continue
    unknown = [name for name in names if name not in REGISTRY and name not in groups]
    if unknown:
        found = f"estimate groups in {path}: {', '.join(sorted(groups))}" if groups else f"no estimate groups in {path}"
        raise UserError(f"unknown --estimator {', '.join(map(repr, unknown))}; estimators: {', '.join(REGISTRY)}; "
                        f"{found}")
