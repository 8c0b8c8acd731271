"""The analysis stage: stream run files through estimators into `<cell>.mi.h5`.

`analyze_path` takes a cell file or an experiment directory, validates every estimator name,
setting and run file before writing anything, then for each cell reads
`activations/<k>[s0:s1, e0:e1]` in memory-bounded blocks on a small thread pool and writes one
group per estimator setting (DESIGN §7): `ixt`, `ity` (S, E, L) in bits, `epochs` (E,),
`seeds` (S,), attrs `estimator`, the parameters by name (kde: `bound`), `every`, `seeds`
(`all` or e.g. `0-9,12`), `run_status`, `source`, `ibrepro_version`. The run file is only
ever opened read-only. A group is written under a temporary name and renamed over the old one,
so an interrupted write never leaves a half-written group under its real name.

Besides the estimator parameters, `--set` takes two thinning options shared by all estimators:
`every=K` (every K-th logged epoch, starting at the first) and `seeds=SPEC` (`all`, or e.g.
`0-9,12`). Non-default thinning is part of the group name (`..._every10`, `..._seeds0-9,12`),
so a quick thinned run never replaces a full one.
"""

from __future__ import annotations

import logging
import math
import os
import queue
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

import ibrepro
from ibrepro.analysis import estimators
from ibrepro.errors import UserError
from ibrepro.analysis.estimators.base import Block, Estimator, Labels, Param, Value
from ibrepro.train.runfile import complete_epochs, open_run, run_config

log = logging.getLogger(__name__)

BLOCK_BYTES = 32 * 2**20  # activations read per block (one block per worker in flight, plus one)
# rows (seed-epochs x inputs) per block: keeps an estimator's per-row temporaries (~8 bytes each)
# under glibc's largest mmap threshold, so they are recycled instead of freshly mapped each time
BLOCK_ROWS = 2**20
PARTIAL = ".partial"  # suffix of a group still being written
COMPLETE_ATTR = "_complete"  # set on a partial group once every dataset is in place

COMMON_PARAMS = (
    Param("every", int, 1, "every", "analyse every K-th logged epoch (the first, then every K-th)", low=1),
    Param("seeds", str, "all", "seeds", "seeds to analyse: all, or indices and ranges like 0-9,12"),
)


@dataclass(frozen=True)
class Request:
    """Validated estimators and settings of one `analyze` call."""

    chosen: tuple[Estimator, ...]
    given: dict[str, dict[str, Value]]  # estimator name -> parameters set by the user
    every: int
    seeds: str


@dataclass(frozen=True)
class Cell:
    """What analysis needs from one run file (read before any work starts)."""

    path: Path
    config: dict
    status: str
    epochs: np.ndarray  # logged epoch numbers of the complete snapshots
    labels: Labels
    layers: tuple[str, ...]  # names under activations/, in layer order
    shapes: tuple[tuple[int, ...], ...]  # per layer (S, E_stored, N, width)
    chunks: tuple[tuple[int, ...] | None, ...]
    dtype: np.dtype

    @property
    def n_seeds(self) -> int:
        return self.shapes[0][0]

    @property
    def mi_path(self) -> Path:
        return estimates_path(self.path)


def estimates_path(run_path: Path) -> Path:
    """The estimates file beside a run file: cell.h5 -> cell.mi.h5."""
    return run_path.with_name(run_path.name[: -len(".h5")] + ".mi.h5")


def analyze_path(path: str | Path, estimator_names: Sequence[str] | None = None,
                 settings: Mapping[str, str] | Sequence[str] | None = None, progress: bool = True,
                 say: Callable[[str], None] | None = None, workers: int | None = None) -> list[Path]:
    """Estimate I(X;T), I(T;Y) for a cell file or every cell of a directory; returns the .mi.h5 paths.

    `settings` holds `--set` values (estimator parameters, `every`, `seeds`) as {key: text}
    or as "key=value" strings; `say` receives notes such as "cell still training" (default:
    logging). Raises UserError, before writing anything, for unknown estimators or settings,
    bad values and unreadable run files.
    """
    say = say or log.warning
    if settings is not None and not isinstance(settings, Mapping):
        settings = pairs_to_settings(settings)
    request = parse_request(estimator_names or [estimators.DEFAULT], settings or {})
    plans = [plan_cell(read_cell(p), request) for p in find_cells(Path(path))]
    workers = workers or _default_workers()
    with _progress(progress) as bar:
        for plan in plans:
            cell = plan.cell
            if cell.status != "complete":
                state = "still training" if cell.status == "running" else f"status {cell.status!r}"
                say(f"{cell.path.name}: {state}; analysing its {len(cell.epochs)} complete snapshots "
                    f"(up to epoch {int(cell.epochs[-1])})")
            for estimator, values in plan.settings:
                results = run_estimator(plan, estimator, values, bar, workers)
                write_groups(cell.mi_path, estimate_groups(plan, estimator, values, results))
    return [plan.cell.mi_path for plan in plans]


def estimate_groups(plan: CellPlan, estimator: Estimator, values: Mapping[str, Value],
                    results: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, tuple[dict, dict]]:
    """{group name: (datasets, attrs)} for one estimator setting's results (DESIGN §7)."""
    groups = {}
    for variant, arrays in results.items():
        seeds = "all" if len(plan.seeds) == plan.cell.n_seeds else _compact(plan.seeds)
        attrs = {"estimator": estimator.name, **values, "every": plan.every, "seeds": seeds,
                 "run_status": plan.cell.status, "source": plan.cell.path.name,
                 "ibrepro_version": ibrepro.__version__}
        if variant:
            attrs["bound"] = variant
        datasets = {**arrays, "epochs": plan.cell.epochs[plan.epoch_index], "seeds": plan.seeds}
        groups[estimator.group_name(values, variant) + plan.suffix] = (datasets, attrs)
    return groups


def pairs_to_settings(items: Sequence[str]) -> dict[str, str]:
    """{key: value} from "key=value" strings (the last of repeated keys wins)."""
    settings = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set wants key=value, got {item!r}")
        settings[key.strip()] = value.strip()
    return settings


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
            known = sorted({p for e in chosen for p in e.param_index} | set(common))
            raise UserError(f"unknown parameter {key!r} for estimator(s) "
                            f"{', '.join(e.name for e in chosen)}; known: {', '.join(known)}")
        for e in owners:
            given[e.name][key] = e.param_index[key].parse(text)
    seeds = str(values["seeds"])
    parse_seeds(seeds, None)
    return Request(chosen, given, int(values["every"]), seeds)


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


def find_cells(path: Path) -> list[Path]:
    """The run file itself, or every *.h5 in a directory that is not a *.mi.h5."""
    if path.is_dir():
        cells = sorted(p for p in path.glob("*.h5") if not p.name.endswith(".mi.h5"))
        if not cells:
            raise UserError(f"no run files (*.h5) in {path}")
        return cells
    if not path.exists():
        raise UserError(f"no such file or directory: {path}")
    if path.name.endswith(".mi.h5") or not path.name.endswith(".h5"):
        raise UserError(f"{path} is not a run file (expected <cell>.h5)")
    return [path]


def read_cell(path: Path) -> Cell:
    """Read and check what analysis needs from a run file (UserError when it is unusable)."""
    with open_run(path) as run:
        try:
            config = run_config(run)
            status = str(run.attrs.get("status", "unknown"))
            n_epochs = complete_epochs(run)
            epochs = run["epochs"][:n_epochs]
            y = run["data/y"][()]
            names = tuple(sorted(run["activations"], key=_layer_order))
            layers = [run["activations"][k] for k in names]
            shapes = tuple(d.shape for d in layers)
            chunks = tuple(d.chunks for d in layers)
            dtype = layers[0].dtype if layers else np.dtype(np.float64)
        except (KeyError, OSError, ValueError, TypeError) as exc:
            raise UserError(f"{path} is not a usable run file ({exc.__class__.__name__}: {exc})") from None
    if not layers or not isinstance(config, dict):
        raise UserError(f"{path} is not a usable run file (no activations or no config)")
    bad = [s for s in shapes if len(s) != 4 or s[0] != shapes[0][0] or s[0] < 1 or s[2] != y.shape[0]
           or s[1] < n_epochs]
    if bad or y.ndim != 1:
        raise UserError(f"{path}: activations {shapes} do not match {y.shape[0]} labels and {n_epochs} epochs")
    if n_epochs == 0:
        raise UserError(f"{path} has no complete snapshot yet")
    if dtype.kind != "f":
        dtype = np.dtype(np.float64)
    return Cell(path, config, status, np.asarray(epochs), Labels.from_labels(y), names, shapes, chunks, dtype)


def _layer_order(name: str) -> tuple[int, str]:
    return (int(name), name) if name.isdigit() else (10**9, name)


@dataclass(frozen=True)
class CellPlan:
    """One cell's work: selected seeds and epoch positions, full parameters per estimator."""

    cell: Cell
    seeds: np.ndarray  # seed indices
    epoch_index: np.ndarray  # positions in cell.epochs
    every: int
    settings: tuple[tuple[Estimator, dict[str, Value]], ...]

    @property
    def suffix(self) -> str:
        """Group-name suffix for non-default thinning."""
        suffix = f"_every{self.every}" if self.every > 1 else ""
        if len(self.seeds) != self.cell.n_seeds:
            suffix += "_seeds" + _compact(self.seeds)
        return suffix


def plan_cell(cell: Cell, request: Request) -> CellPlan:
    """Resolve a request for one cell (UserError for bad seeds, parameters or estimates file)."""
    seeds = parse_seeds(request.seeds, cell.n_seeds)
    epoch_index = np.arange(0, len(cell.epochs), request.every)
    settings = tuple((e, e.resolve(request.given[e.name], cell.config)) for e in request.chosen)
    if cell.mi_path.exists():
        try:
            with h5py.File(cell.mi_path, "r"):
                pass
        except OSError:
            raise UserError(f"{cell.mi_path} exists but is not a readable HDF5 file; move it away first") from None
    return CellPlan(cell, seeds, epoch_index, request.every, settings)


def _compact(seeds: np.ndarray) -> str:
    """0,1,2,3,7 -> '0-3,7'."""
    runs, start = [], 0
    for k in range(1, len(seeds) + 1):
        if k == len(seeds) or seeds[k] != seeds[k - 1] + 1:
            a, b = int(seeds[start]), int(seeds[k - 1])
            runs.append(f"{a}-{b}" if b > a else f"{a}")
            start = k
    return ",".join(runs)


# ---- block planning and reading -------------------------------------------------------------


@dataclass(frozen=True)
class BlockSpec:
    """One read: seeds[s_lo:s_hi] (consecutive run positions) x epoch positions e_lo:e_hi."""

    layer: int
    s_lo: int
    s_hi: int
    e_lo: int
    e_hi: int


def plan_blocks(cell: Cell, layer: int, seeds: np.ndarray, n_epochs: int,
                batch_limit: int | None) -> tuple[list[BlockSpec], int, int]:
    """Blocks covering (selected seeds) x (n_epochs selected epochs) of one layer.

    Returns the blocks and the block shape (seeds, epochs): when the layer's chunks span
    several seeds a block takes many seeds of one epoch range, else one seed's epoch range.
    """
    _, _, n, width = cell.shapes[layer]
    rows = max(1, min(BLOCK_BYTES // (n * width * cell.dtype.itemsize), BLOCK_ROWS // n))
    if batch_limit:
        rows = min(rows, batch_limit)
    chunk = cell.chunks[layer]
    runs = _seed_runs(seeds)
    longest = max(b - a for a, b in runs)
    if chunk is not None and chunk[0] > 1:
        bs = _even_split(longest, rows)
        be = _even_split(n_epochs, max(1, rows // bs))
    else:
        be = _even_split(n_epochs, rows)
        bs = _even_split(longest, max(1, rows // be))
    blocks = [BlockSpec(layer, s, min(s + bs, b), e, min(e + be, n_epochs))
              for a, b in runs for s in range(a, b, bs) for e in range(0, n_epochs, be)]
    return blocks, bs, be


def _even_split(total: int, most: int) -> int:
    """The smallest part size that cuts `total` into as few parts of at most `most` as possible."""
    return -(-total // -(-total // most))


def _seed_runs(seeds: np.ndarray) -> list[tuple[int, int]]:
    """Positions [a, b) in `seeds` of runs of consecutive seed indices."""
    breaks = np.flatnonzero(np.diff(seeds) != 1) + 1
    edges = [0, *breaks.tolist(), len(seeds)]
    return list(zip(edges[:-1], edges[1:]))


class _Buffers:
    """A few reusable, 64-byte aligned, pre-touched byte buffers (fresh pages are slow to map)."""

    def __init__(self, count: int, nbytes: int):
        self._free: queue.Queue = queue.Queue()
        for _ in range(count):
            raw = np.empty(nbytes + 64, np.uint8)
            raw.fill(0)  # touch every page now, once
            offset = (-raw.ctypes.data) % 64
            self._free.put(raw[offset:offset + nbytes])

    def take(self) -> np.ndarray:
        return self._free.get()

    def give(self, raw: np.ndarray) -> None:
        self._free.put(raw)


def _read(run: h5py.File, cell: Cell, spec: BlockSpec, seeds: np.ndarray, epoch_index: np.ndarray,
          out: np.ndarray) -> None:
    """Read one block into `out` (bs, be, N, w)."""
    s0, s1 = int(seeds[spec.s_lo]), int(seeds[spec.s_hi - 1]) + 1
    epochs = epoch_index[spec.e_lo:spec.e_hi].tolist()
    data = run["activations"][cell.layers[spec.layer]]
    # one hyperslab when the epochs are consecutive; strided hyperslabs are very slow in HDF5
    if epochs[-1] - epochs[0] + 1 == len(epochs):
        reads = [(np.s_[s0:s1, epochs[0]:epochs[-1] + 1], np.s_[:, :])]
    else:
        reads = [(np.s_[s0:s1, e:e + 1], np.s_[:, j:j + 1]) for j, e in enumerate(epochs)]
    try:
        for source, dest in reads:
            if data.dtype == out.dtype:
                data.read_direct(out, source_sel=source, dest_sel=dest)
            else:
                out[dest] = data[source]
    except (OSError, KeyError, ValueError) as exc:
        raise UserError(f"cannot read {cell.path} ({exc.__class__.__name__}: {exc}); is it truncated?") from None


def iter_blocks(cell: Cell, run: h5py.File, seeds: np.ndarray, epoch_index: np.ndarray) -> Iterator[Block]:
    """Every layer's blocks in turn, read one at a time (for estimators' `prepare`)."""
    for layer, (_, _, n, width) in enumerate(cell.shapes):
        blocks, bs, be = plan_blocks(cell, layer, seeds, len(epoch_index), None)
        for spec in blocks:
            out = np.empty((spec.s_hi - spec.s_lo, spec.e_hi - spec.e_lo, n, width), cell.dtype)
            _read(run, cell, spec, seeds, epoch_index, out)
            yield Block(out.reshape(-1, n, width), np.repeat(seeds[spec.s_lo:spec.s_hi], out.shape[1]),
                        np.tile(epoch_index[spec.e_lo:spec.e_hi], out.shape[0]), layer)


# ---- running ------------------------------------------------------------------------------


def run_estimator(plan: CellPlan, estimator: Estimator, values: Mapping[str, Value], bar,
                  workers: int) -> dict[str, dict[str, np.ndarray]]:
    """{variant: {"ixt": .., "ity": .., extras..}} arrays (S_sel, E_sel, L) in bits for one cell
    and estimator setting.

    Blocks are read and estimated on `workers` threads (h5py reads are serialised, estimator
    kernels release the GIL), with at most workers + 1 blocks in memory.
    """
    cell = plan.cell
    shape = (len(plan.seeds), len(plan.epoch_index), len(cell.shapes))
    results: dict[str, dict[str, np.ndarray]] = {v: {} for v in estimator.variants}
    label = f"{cell.path.stem} · {estimator.name}"
    with open_run(cell.path) as run:
        context = None
        if estimator.from_run is not None:
            context = estimator.from_run(run, values)
        elif estimator.prepare is not None:
            task = bar.add_task(f"{label} (ranges)", total=None) if bar else None
            context = estimator.prepare(iter_blocks(cell, run, plan.seeds, np.arange(len(cell.epochs))), values)
            if bar:
                bar.remove_task(task)
        jobs = []
        for layer in range(len(cell.shapes)):
            blocks, bs, be = plan_blocks(cell, layer, plan.seeds, len(plan.epoch_index), estimator.batch_limit)
            jobs += [(spec, bs * be if estimator.fixed_batch else None) for spec in blocks]
        row_bytes = max(n * width for _, _, n, width in cell.shapes) * cell.dtype.itemsize
        buffers = _Buffers(workers + 1, max(BLOCK_BYTES, row_bytes))
        task = bar.add_task(label, total=math.prod(shape)) if bar else None

        def work(spec: BlockSpec, batch: int | None):
            raw = buffers.take()
            try:
                return spec, _estimate_block(run, plan, estimator, values, context, spec, batch, raw)
            finally:
                buffers.give(raw)

        def store(future: Future) -> None:
            spec, out = future.result()
            for variant, arrays in out.items():
                for name, part in arrays.items():
                    target = results[variant].setdefault(name, np.full(shape, np.nan))
                    target[spec.s_lo:spec.s_hi, spec.e_lo:spec.e_hi, spec.layer] = part
            if bar:
                bar.advance(task, (spec.s_hi - spec.s_lo) * (spec.e_hi - spec.e_lo))

        with ThreadPoolExecutor(max_workers=workers) as pool:
            pending: set[Future] = set()
            for job in jobs:
                if len(pending) > workers:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        store(future)
                pending.add(pool.submit(work, *job))
            for future in pending:
                store(future)
        if bar:
            bar.remove_task(task)
    return results


def _estimate_block(run: h5py.File, plan: CellPlan, estimator: Estimator, values: Mapping[str, Value],
                    context: Any, spec: BlockSpec, batch: int | None, raw: np.ndarray):
    """Read one block into the byte buffer `raw` and estimate it: {variant: (ixt, ity) (bs, be)}.

    With `batch`, the estimator sees that many seed-epochs: the block, then leftover buffer data.
    """
    cell = plan.cell
    _, _, n, width = cell.shapes[spec.layer]
    ns, ne = spec.s_hi - spec.s_lo, spec.e_hi - spec.e_lo
    row = n * width * cell.dtype.itemsize
    _read(run, cell, spec, plan.seeds, plan.epoch_index, raw[: ns * ne * row].view(cell.dtype).reshape(ns, ne, n, width))
    count = batch or ns * ne
    seed_of = np.repeat(plan.seeds[spec.s_lo:spec.s_hi], ne)
    epoch_of = np.tile(plan.epoch_index[spec.e_lo:spec.e_hi], ns)
    seed_of = np.concatenate([seed_of, np.full(count - ns * ne, seed_of[-1])])
    epoch_of = np.concatenate([epoch_of, np.full(count - ns * ne, epoch_of[-1])])
    block = Block(raw[: count * row].view(cell.dtype).reshape(count, n, width), seed_of, epoch_of, spec.layer)
    out = estimator.estimate(block, cell.labels, values, context)
    return {v: _named_results(result, ns, ne) for v, result in out.items()}


def _named_results(result: tuple, ns: int, ne: int) -> dict[str, np.ndarray]:
    """{"ixt", "ity", extras..} as (ns, ne) from an estimate's (ixt, ity[, extras]) per seed-epoch."""
    ixt, ity, *more = result
    named = {"ixt": ixt, "ity": ity, **(more[0] if more else {})}
    return {name: np.asarray(a)[: ns * ne].reshape(ns, ne) for name, a in named.items()}


def _default_workers() -> int:
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def _progress(enabled: bool):
    """A rich progress display on stderr with ETA, or nothing."""
    if not enabled:
        return nullcontext(None)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                    console=Console(stderr=True))


# ---- writing ------------------------------------------------------------------------------


def write_groups(path: Path, groups: Mapping[str, tuple[Mapping[str, np.ndarray], Mapping[str, Any]]]) -> None:
    """Write or replace groups {name: (datasets, attrs)} in an estimates file.

    Each group is written as `<name>.partial`, marked complete, then moved over `<name>`;
    other groups are left alone. Partial groups left by an interrupted run are finished
    (if marked complete) or removed first.
    """
    try:
        handle = h5py.File(path, "a")
    except OSError as exc:
        raise UserError(f"cannot write {path} ({exc}); is another process using it?") from None
    with handle as f:
        _recover(f)
        for name, (datasets, attrs) in groups.items():
            partial = name + PARTIAL
            if partial in f:
                del f[partial]
            group = f.create_group(partial)
            for key, value in datasets.items():
                group.create_dataset(key, data=value)
            for key, value in attrs.items():
                group.attrs[key] = value
            group.attrs[COMPLETE_ATTR] = True
            f.flush()
            if name in f:
                del f[name]
            f.move(partial, name)
            del f[name].attrs[COMPLETE_ATTR]
            f.flush()


def _recover(f: h5py.File) -> None:
    for partial in [k for k in f if k.endswith(PARTIAL)]:
        name = partial[: -len(PARTIAL)]
        if f[partial].attrs.get(COMPLETE_ATTR, False) and name not in f:
            f.move(partial, name)
            del f[name].attrs[COMPLETE_ATTR]
        else:
            del f[partial]
