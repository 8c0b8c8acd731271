"""The `ibrepro analyze` runs `scripts/reproduce.sh` makes for an experiment file.

Every experiment gets the defaults: the paper's fixed binning (tishby12) or per-layer binning
(MNIST, whose layers need not stay in [-1, 1]); exact MI when every cell is quantized or
binary; KDE bounds on every 4th logged epoch; and, when a cell has noisy labels
(`data.gamma > 0`), binning and KDE again with soft labels (I(T;Y) from p(y|x)), the estimates
its IB-bound claim is judged on. An experiment asks for more in its `[reproduce]` table, one
entry per `analyze` run, made in order after the defaults:

    [[reproduce.analyze]]
    estimators = ["knn", "renyi"]   # one or more estimator names (`analyze --estimator`)
    set = { every = 4 }             # optional: the run's settings (`analyze --set key=value`)

Every entry is checked as `analyze` checks its arguments (estimator names, setting names and
values) before anything runs.

    python -m ibrepro.reproduce_plan EXPERIMENT.toml

prints the experiment's name on the first line, then one line per `analyze` run: a stage name
(unique, usable as a file name), then the `analyze` arguments, all separated by tabs.
"""

from __future__ import annotations

import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ibrepro import config as cfg
from ibrepro.analysis.request import parse_request
from ibrepro.errors import UserError

TABLE = "reproduce"
ENTRY_KEYS = {"estimators", "set"}


@dataclass(frozen=True)
class AnalyzeRun:
    """One `ibrepro analyze` run of the plan: its stage name, estimators and settings."""

    stage: str
    estimators: tuple[str, ...]
    settings: tuple[tuple[str, str], ...] = ()

    @property
    def args(self) -> list[str]:
        """The run's `analyze` options."""
        chosen = [a for name in self.estimators for a in ("--estimator", name)]
        return chosen + [a for key, text in self.settings for a in ("--set", f"{key}={text}")]


def _setting_text(value: object) -> str | None:
    """A TOML value as `--set` text; None for a value that has none (tables, arrays)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str) and value and not re.search(r"\s", value):
        return value
    return None


def _stage_name(estimators: tuple[str, ...], settings: tuple[tuple[str, str], ...]) -> str:
    words = [*estimators, *(part for pair in settings for part in pair)]
    return "analyze-" + re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(words))


def parse_table(table: object, source: str) -> tuple[AnalyzeRun, ...]:
    """The runs of a `[reproduce]` table, its shape checked (UserError naming `source`)."""
    where = f"{source}: [{TABLE}]"
    if not isinstance(table, dict) or set(table) - {"analyze"}:
        raise UserError(f"{where} takes one key, analyze (an array of tables: estimators = [...], set = {{...}})")
    entries = table.get("analyze", [])
    if not isinstance(entries, list):
        raise UserError(f"{where} analyze must be an array of tables ([[{TABLE}.analyze]])")
    runs = []
    for k, entry in enumerate(entries, 1):
        at = f"{where} analyze entry {k}"
        if not isinstance(entry, dict) or set(entry) - ENTRY_KEYS:
            raise UserError(f"{at} takes the keys estimators and set, got {entry!r}")
        estimators = entry.get("estimators")
        if not isinstance(estimators, list) or not estimators or not all(isinstance(e, str) for e in estimators):
            raise UserError(f"{at}: estimators must be a non-empty list of estimator names")
        given = entry.get("set", {})
        if not isinstance(given, dict):
            raise UserError(f"{at}: set must be a table of setting = value")
        settings = tuple((str(key), _setting_text(value)) for key, value in given.items())
        bad = [key for key, text in settings if text is None]
        if bad:
            raise UserError(f"{at}: set {', '.join(bad)} must be a number, true/false or a word without spaces")
        runs.append(AnalyzeRun(_stage_name(tuple(estimators), settings), tuple(estimators), settings))
    return tuple(runs)


def default_runs(config: dict) -> tuple[AnalyzeRun, ...]:
    """The analyses every experiment gets (module docstring), from its resolved config."""
    cells = [cell for _, cell in cfg.cells(config)]
    binning = "binning" if config["dataset"] == "tishby12" else "binning-layer"
    discrete = all(c["model"]["quantize_bits"] > 0 or c["model"]["activation"] == "sign" for c in cells)
    noisy = any(c["data"]["gamma"] > 0 for c in cells)
    every4 = (("every", "4"),)
    soft = (("labels", "soft"),)
    runs = [AnalyzeRun("analyze-binning", (binning,))]
    if discrete:
        runs.append(AnalyzeRun("analyze-exact", ("exact",)))
    runs.append(AnalyzeRun("analyze-kde", ("kde",), every4))
    if noisy:
        runs += [AnalyzeRun("analyze-binning-soft", (binning,), soft),
                 AnalyzeRun("analyze-kde-soft", ("kde",), every4 + soft)]
    return tuple(runs)


def check_runs(runs: tuple[AnalyzeRun, ...], source: str) -> None:
    """Check every run's estimators and settings as `analyze` would, and that no run (or stage
    name) comes twice: a table entry may not repeat a default."""
    seen = set()
    for run in runs:
        same = {run.stage, (tuple(sorted(run.estimators)), tuple(sorted(run.settings)))}
        if same & seen:
            raise UserError(f"{source}: [{TABLE}] asks twice for {' '.join(run.args)} "
                            "(listed twice, or one of the runs every experiment gets)")
        seen |= same
        try:
            parse_request(run.estimators, dict(run.settings))
        except UserError as exc:
            raise UserError(f"{source}: [{TABLE}] {' '.join(run.args)}: {exc}") from None


def plan(path: Path) -> tuple[str, tuple[AnalyzeRun, ...]]:
    """The experiment's name and its `analyze` runs, defaults first, every one checked."""
    config = cfg.load(path)
    raw = tomllib.loads(path.read_text())  # valid TOML: cfg.load read it
    runs = default_runs(config) + parse_table(raw.get(TABLE, {}), str(path))
    check_runs(runs, str(path))
    return config["name"], runs


def main(argv: list[str]) -> int:
    """Print the plan of one experiment file (module docstring); 1 with a one-line error."""
    if len(argv) != 1:
        print("usage: python -m ibrepro.reproduce_plan EXPERIMENT.toml", file=sys.stderr)
        return 2
    try:
        name, runs = plan(Path(argv[0]))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(name)
    for run in runs:
        print("\t".join([run.stage, *run.args]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
