"""The analysis stage: run files through estimators into `<cell>.mi.h5`.

`analyze_path` takes a cell file or an experiment directory, checks every estimator name,
setting, run file and estimates file before any work starts, then for each cell streams the
activations through each chosen estimator setting (`stream.run_estimator`) and writes one
group per setting (DESIGN §7) through `estimatesfile.write_groups`, which replaces the file
atomically. The run file is only ever read. Non-default thinning (`every`, `seeds`) is part
of the group name (`..._every10`, `..._seeds0-9,12`), so a quick thinned run never replaces
a full one; so is `labels=soft` (`..._soft`, attr `labels` = "soft": I(T;Y) from p(y|x)), so
soft-label groups sit beside the drawn-label ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np

import ibrepro
from ibrepro.analysis import estimators
from ibrepro.analysis.cell import find_cells, read_cell
from ibrepro.analysis.estimatesfile import check_writable, write_groups
from ibrepro.analysis.estimators.base import Estimator, Value
from ibrepro.analysis.request import AnalysisPlan, compact_seeds, pairs_to_settings, parse_request, plan_cell
from ibrepro.analysis.stream import default_workers, run_estimator
from ibrepro.data.labels import is_deterministic
from ibrepro.train.runfile import diverged_epochs, divergence_note, open_run

log = logging.getLogger(__name__)


def plan_path(path: str | Path, estimator_names: Sequence[str] | None = None,
              settings: Mapping[str, str] | Sequence[str] | None = None) -> list[AnalysisPlan]:
    """Check everything one `analyze` call asks for, before any work: the plan of each cell.

    `settings` holds `--set` values (estimator parameters, `every`, `seeds`) as {key: text}
    or as "key=value" strings. Raises UserError for unknown estimators or settings, bad
    values, unreadable run files and estimates files that cannot be written.
    """
    if settings is not None and not isinstance(settings, Mapping):
        settings = pairs_to_settings(settings)
    request = parse_request(estimator_names or [estimators.DEFAULT], settings or {})
    plans = [plan_cell(read_cell(p), request) for p in find_cells(Path(path))]
    for plan in plans:
        check_writable(plan.cell.estimates_path)
    return plans


def analyze_path(path: str | Path, estimator_names: Sequence[str] | None = None,
                 settings: Mapping[str, str] | Sequence[str] | None = None, progress: bool = True,
                 say: Callable[[str], None] | None = None, workers: int | None = None) -> list[Path]:
    """Estimate I(X;T), I(T;Y) for a cell file or every cell of a directory; returns the .mi.h5 paths.

    Everything is checked first (`plan_path`); `say` receives notes such as "cell still
    training" (default: logging).
    """
    say = say or log.warning
    plans = plan_path(path, estimator_names, settings)
    workers = workers or default_workers()
    with _progress(progress) as bar:
        for plan in plans:
            cell = plan.cell
            if cell.status != "complete":
                state = "still training" if cell.status == "running" else f"status {cell.status!r}"
                say(f"{cell.path.name}: {state}; analysing its {len(cell.epochs)} complete snapshots "
                    f"(up to epoch {int(cell.epochs[-1])})")
            with open_run(cell.path) as run:
                diverged = divergence_note(cell.path.name, diverged_epochs(run))
            if diverged:
                say(f"{diverged}: its estimates are NaN where the activations are not finite")
            if plan.labels.soft is not None and is_deterministic(plan.labels.soft):
                say(f"{cell.path.name}: labels are deterministic (p(y|x) is one-hot), so its "
                    "soft-label estimates equal the drawn-label ones")
            for estimator, values in plan.settings:
                results = run_estimator(plan, estimator, values, bar, workers)
                write_groups(cell.estimates_path, estimate_groups(plan, estimator, values, results))
    return [plan.cell.estimates_path for plan in plans]


def estimate_groups(plan: AnalysisPlan, estimator: Estimator, values: Mapping[str, Value],
                    results: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, tuple[dict, dict]]:
    """{group name: (datasets, attrs)} for one estimator setting's results (DESIGN §7)."""
    cell = plan.cell
    seeds = "all" if len(plan.seeds) == cell.n_seeds else compact_seeds(plan.seeds)
    groups = {}
    for variant, arrays in results.items():
        attrs = {"estimator": estimator.name, **values, "every": plan.every, "seeds": seeds,
                 "labels": "drawn" if plan.labels.soft is None else "soft", "run_status": cell.status,
                 "source": cell.path.name,
                 "run_id": cell.run_id, "ibrepro_version": ibrepro.__version__}
        if variant:
            attrs["bound"] = variant
        datasets = {**arrays, "epochs": cell.epochs[plan.epoch_index], "seeds": plan.seeds}
        groups[estimator.group_name(values, variant) + plan.suffix] = (datasets, attrs)
    return groups


def _progress(enabled: bool):
    """A rich progress display on stderr with ETA, or nothing."""
    if not enabled:
        return nullcontext(None)
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                    console=Console(stderr=True))
