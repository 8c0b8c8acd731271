"""What one `ibrepro analyze` call asks for: estimators, their settings, seeds and epochs.

Besides the estimator parameters, `--set` takes options shared by all estimators: two for
thinning, `every=K` (every K-th logged epoch from the first, and always the last) and
`seeds=SPEC` (`all`, or e.g. `0-9,12`), and `labels=drawn|soft`: I(T;Y) from the recorded
draw of labels, or from p(y|x) (noisy tishby12 labels, `data.gamma > 0`; on runs with
deterministic labels p(y|x) is one-hot and soft equals drawn). Everything is checked before
any work starts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ibrepro.analysis import estimators
from ibrepro.analysis.cell import RunRecord
from ibrepro.analysis.estimators.base import Estimator, Labels, Param, Value
from ibrepro.config import split_setting
from ibrepro.data.labels import label_distribution
from ibrepro.errors import UserError

log = logging.getLogger(__name__)

COMMON_PARAMS = (
    Param("every", int, 1, "every", "analyse every K-th logged epoch (the first, every K-th, and the last)", low=1),
    Param("seeds", str, "all", "seeds", "seeds to analyse: all, or indices and ranges like 0-9,12"),
    Param("labels", str, "drawn", "labels", "I(T;Y) from the drawn labels, or soft: from p(y|x) "
          "(noisy labels, data.gamma > 0)", choices=("drawn", "soft")),
)


@dataclass(frozen=True)
class Request:
    """Validated estimators and settings of one `analyze` call."""

    chosen: tuple[Estimator, ...]
    given: dict[str, dict[str, Value]]  # estimator name -> parameters set by the user
    every: int
    seeds: str
    soft: bool  # soft-label I(T;Y), from p(y|x)


def pairs_to_settings(items: Sequence[str]) -> dict[str, str]:
    """{key: value} from "key=value" strings (the last of repeated keys wins)."""
    return dict(split_setting(item) for item in items)


def parse_request(names: Sequence[str], settings: Mapping[str, str]) -> Request:
    """Check estimator names and `--set` strings; each key must belong to a chosen estimator."""
    chosen = tuple(dict.fromkeys(estimators.get(n) for n in names))
    given: dict[str, dict[str, Value]] = {e.name: {} for e in chosen}
    common = {p.name: p for p in COMMON_PARAMS}
    values: dict[str, Value] = {p.name: p.default for p in COMMON_PARAMS}
    for key, text in settings.items():
        owners = [e for e in chosen if key in e.param_index]
        if key in common:
            values[key] = common[key].parse(text)
        elif not owners:
            known = sorted({p.name for e in chosen for p in e.params} | set(common))
            raise UserError(f"unknown parameter {key!r} for estimator(s) "
                            f"{', '.join(e.name for e in chosen)}; known: {', '.join(known)}")
        for e in owners:
            param = e.param_index[key]
            if key != param.name:
                log.warning("%s: --set %s is deprecated, use %s=%s", e.name, key, param.name, text)
            given[e.name][param.name] = param.parse(text)
    seeds = str(values["seeds"])
    parse_seeds(seeds, None)
    soft = values["labels"] == "soft"
    hard_only = [e.name for e in chosen if soft and not e.soft_labels]
    if hard_only:
        able = ", ".join(n for n, e in estimators.REGISTRY.items() if e.soft_labels)
        raise UserError(f"estimator(s) {', '.join(hard_only)} cannot use soft labels (labels=soft); "
                        f"those that can: {able}")
    return Request(chosen, given, int(values["every"]), seeds, soft)


def parse_seeds(spec: str, n_seeds: int | None) -> np.ndarray:
    """Seed indices from `all` or a list like `0-9,12` (checked against n_seeds when given)."""
    if spec.strip() == "all":
        return np.arange(n_seeds if n_seeds is not None else 0)
    picked: set[int] = set()
    try:
        for part in spec.split(","):
            first, _, last = part.strip().partition("-")
            a, b = int(first), int(last or first)
            if a > b or a < 0:
                raise ValueError
            picked.update(range(a, b + 1))
    except ValueError:
        raise UserError(f"seeds must be 'all' or indices and ranges like 0-9,12; got {spec!r}") from None
    if n_seeds is not None and max(picked) >= n_seeds:
        raise UserError(f"seeds {spec!r} asks for seed {max(picked)} but the run has {n_seeds} seeds (0-{n_seeds - 1})")
    return np.array(sorted(picked))


def epoch_positions(n_epochs: int, every: int) -> np.ndarray:
    """Positions of the analysed logged epochs: 0, K, 2K, ... and always the last one.

    The last logged epoch holds the "final" numbers every claim uses, so thinning keeps it.
    """
    return np.union1d(np.arange(0, n_epochs, every), [n_epochs - 1])


def compact_seeds(seeds: np.ndarray) -> str:
    """0,1,2,3,7 -> '0-3,7'."""
    runs, start = [], 0
    for k in range(1, len(seeds) + 1):
        if k == len(seeds) or seeds[k] != seeds[k - 1] + 1:
            a, b = int(seeds[start]), int(seeds[k - 1])
            runs.append(f"{a}-{b}" if b > a else f"{a}")
            start = k
    return ",".join(runs)


@dataclass(frozen=True)
class AnalysisPlan:
    """One cell's work: selected seeds and epoch positions, full parameters per estimator."""

    cell: RunRecord
    labels: Labels
    seeds: np.ndarray  # seed indices
    epoch_index: np.ndarray  # positions in cell.epochs
    every: int
    settings: tuple[tuple[Estimator, dict[str, Value]], ...]

    @property
    def suffix(self) -> str:
        """Group-name suffix for soft labels and non-default thinning."""
        suffix = "_soft" if self.labels.soft is not None else ""
        suffix += f"_every{self.every}" if self.every > 1 else ""
        if len(self.seeds) != self.cell.n_seeds:
            suffix += "_seeds" + compact_seeds(self.seeds)
        return suffix


def plan_cell(cell: RunRecord, request: Request) -> AnalysisPlan:
    """Resolve a request for one cell (UserError for bad seeds or parameters, or no snapshot yet)."""
    if len(cell.epochs) == 0:
        raise UserError(f"{cell.path} has no complete snapshot yet")
    seeds = parse_seeds(request.seeds, cell.n_seeds)
    settings = tuple((e, e.resolve(request.given[e.name], cell.config)) for e in request.chosen)
    soft = label_distribution(cell.config, cell.y, cell.p_y1) if request.soft else None
    return AnalysisPlan(cell, Labels.from_labels(cell.y, soft), seeds, epoch_positions(len(cell.epochs), request.every),
                    request.every, settings)
