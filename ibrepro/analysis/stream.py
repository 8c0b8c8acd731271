"""Streaming activations through an estimator: block planning, reading and a worker pool.

A layer's activations (S, E, N, width) are read in memory-bounded blocks of consecutive seeds
and logged epochs that follow the file's chunks; blocks are estimated on a small thread pool
(h5py reads are serialised, estimator kernels release the GIL) with at most workers + 1
blocks in memory, in reused, pre-touched buffers.
"""

from __future__ import annotations

import math
import os
import queue
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from typing import Any

import h5py
import jax.numpy as jnp
import numpy as np

from ibrepro.analysis.activations import RecomputedLayer, activation_layers, block_layers
from ibrepro.analysis.cell import RunRecord
from ibrepro.analysis.estimators.base import Block, Estimator, Value, finite_rows
from ibrepro.analysis.estimators.placement import device_kernels
from ibrepro.analysis.request import AnalysisPlan
from ibrepro.errors import UserError
from ibrepro.train.runfile import complete_epochs, open_run

BLOCK_BYTES = 32 * 2**20  # activations read per block (one block per worker in flight, plus one)
# rows (seed-epochs x inputs) per block: keeps an estimator's per-row temporaries (~8 bytes each)
# under glibc's largest mmap threshold, so they are recycled instead of freshly mapped each time
BLOCK_ROWS = 2**20


@dataclass(frozen=True)
class BlockSpec:
    """One read: seeds[s_lo:s_hi] (consecutive run positions) x epoch positions e_lo:e_hi."""

    layer: int
    s_lo: int
    s_hi: int
    e_lo: int
    e_hi: int


def plan_blocks(cell: RunRecord, layer: int, seeds: np.ndarray, n_epochs: int,
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


class _SharedRecompute:
    """For a run file without stored activations: every layer of a (seeds x epochs) block comes
    from one forward pass, shared by that block's layer jobs and dropped once all have it (a
    layer-by-layer reader would recompute every layer below each layer again)."""

    def __init__(self, run: h5py.File, n_layers: int, on_device: bool = False):
        self.run, self.n_layers, self.on_device = run, n_layers, on_device
        self.lock = threading.Lock()
        self.entries: dict[tuple, dict] = {}

    def layer(self, s0: int, s1: int, epochs: list[int], k: int):
        """Layer k (S', E', N, w) of the block, computing the block's layers on first use
        (numpy arrays, or jax arrays left on the device with `on_device`)."""
        key = (s0, s1, tuple(epochs))
        with self.lock:
            entry = self.entries.get(key)
            owner = entry is None
            if owner:
                entry = self.entries[key] = {"ready": threading.Event(), "layers": None, "left": self.n_layers}
        if owner:
            try:
                entry["layers"] = _all_layers(self.run, s0, s1, epochs, self.on_device)
            finally:
                entry["ready"].set()
        entry["ready"].wait()
        with self.lock:
            entry["left"] -= 1
            if entry["left"] == 0:
                del self.entries[key]
        if entry["layers"] is None:
            raise UserError(f"cannot recompute the activations of {self.run.filename}")
        return entry["layers"][k]


def _all_layers(run: h5py.File, s0: int, s1: int, epochs: list[int], on_device: bool) -> list:
    """Every layer on seeds s0:s1 at the given epoch positions, one forward pass per run of
    consecutive epochs."""
    breaks = [0] + [j for j in range(1, len(epochs)) if epochs[j] != epochs[j - 1] + 1] + [len(epochs)]
    parts = [block_layers(run, slice(s0, s1), slice(epochs[a], epochs[b - 1] + 1), on_device)
             for a, b in zip(breaks, breaks[1:])]
    if len(parts) == 1:
        return parts[0]
    return [(jnp if on_device else np).concatenate(layer, axis=1) for layer in zip(*parts)]


def _extent(spec: BlockSpec, seeds: np.ndarray, epoch_index: np.ndarray) -> tuple[int, int, list[int]]:
    """A block's run-file seeds s0:s1 and epoch positions."""
    return int(seeds[spec.s_lo]), int(seeds[spec.s_hi - 1]) + 1, epoch_index[spec.e_lo:spec.e_hi].tolist()


def _read(run: h5py.File, cell: RunRecord, spec: BlockSpec, seeds: np.ndarray, epoch_index: np.ndarray,
          out: np.ndarray, shared: _SharedRecompute | None = None) -> None:
    """Read one block into `out` (bs, be, N, w)."""
    s0, s1, epochs = _extent(spec, seeds, epoch_index)
    if shared is not None:
        out[...] = shared.layer(s0, s1, epochs, spec.layer)
        return
    data = activation_layers(run)[spec.layer]  # stored, or recomputed from params/
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


def iter_blocks(cell: RunRecord, run: h5py.File, seeds: np.ndarray, epoch_index: np.ndarray) -> Iterator[Block]:
    """Every layer's blocks in turn, read one at a time (for estimators' `prepare`); values that
    are not finite (a diverged seed) are NaN."""
    for layer, (_, _, n, width) in enumerate(cell.shapes):
        blocks, bs, be = plan_blocks(cell, layer, seeds, len(epoch_index), None)
        for spec in blocks:
            out = np.empty((spec.s_hi - spec.s_lo, spec.e_hi - spec.e_lo, n, width), cell.dtype)
            _read(run, cell, spec, seeds, epoch_index, out)
            out[np.isinf(out)] = np.nan
            yield Block(out.reshape(-1, n, width), np.repeat(seeds[spec.s_lo:spec.s_hi], out.shape[1]), layer,
                        cell.x, np.tile(epoch_index[spec.e_lo:spec.e_hi], out.shape[0]))


def run_estimator(plan: AnalysisPlan, estimator: Estimator, values: Mapping[str, Value], bar,
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
        check_same_run(run, cell)
        context = None
        if estimator.from_run is not None:
            context = estimator.from_run(run, values)
        elif estimator.prepare is not None:
            task = bar.add_task(f"{label} (ranges)", total=None) if bar else None
            context = estimator.prepare(iter_blocks(cell, run, plan.seeds, np.arange(len(cell.epochs))), values)
            if bar:
                bar.remove_task(task)
        jobs, shared = [], None
        if isinstance(activation_layers(run)[0], RecomputedLayer):
            # block-major: the same blocks for every layer (sized by the widest), each block
            # recomputed once for all its layers; `workers` blocks are worked on side by side
            # (layer k of each, then layer k + 1), so each worker recomputes a block of its own
            shared = _SharedRecompute(run, len(cell.shapes), estimator.device_path and device_kernels())
            widest = int(np.argmax([shape[3] for shape in cell.shapes]))
            blocks, bs, be = plan_blocks(cell, widest, plan.seeds, len(plan.epoch_index), estimator.batch_limit)
            jobs = [(replace(spec, layer=k), bs * be if estimator.fixed_batch else None)
                    for first in range(0, len(blocks), workers) for k in range(len(cell.shapes))
                    for spec in blocks[first:first + workers]]
        else:
            for layer in range(len(cell.shapes)):
                blocks, bs, be = plan_blocks(cell, layer, plan.seeds, len(plan.epoch_index), estimator.batch_limit)
                jobs += [(spec, bs * be if estimator.fixed_batch else None) for spec in blocks]
        row_bytes = max(n * width for _, _, n, width in cell.shapes) * cell.dtype.itemsize
        buffers = _Buffers(workers + 1, max(BLOCK_BYTES, row_bytes))
        task = bar.add_task(label, total=math.prod(shape)) if bar else None

        def work(spec: BlockSpec, batch: int | None):
            raw = buffers.take()
            try:
                return spec, _estimate_block(run, plan, estimator, values, context, spec, batch, raw, shared)
            finally:
                buffers.give(raw)

        def store(future: Future) -> None:
            try:
                spec, out = future.result()
            except UserError as exc:  # raised by an estimator (e.g. exact on a float layer): name the cell
                raise UserError(f"{cell.path.name}: {exc}") from None
            for variant, arrays in out.items():
                for name, part in arrays.items():
                    target = results[variant].get(name)
                    if target is None:  # not setdefault: it would build the default every time
                        target = results[variant][name] = np.full(shape, np.nan)
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


def check_same_run(run: h5py.File, cell: RunRecord) -> None:
    """UserError unless the open run file is the run `cell` was read from, with its snapshots
    (another process may have started the cell over with --force since)."""
    run_id = run.attrs.get("run_id", "")
    run_id = run_id.decode() if isinstance(run_id, bytes) else str(run_id)
    n = len(cell.epochs)
    if run_id != cell.run_id or complete_epochs(run) < n or not np.array_equal(run["epochs"][:n], cell.epochs):
        raise UserError(f"{cell.path} was replaced by another run while it was being analysed "
                        f"(run_id {cell.run_id} is now {run_id or 'absent'}); run analyze again")


def _estimate_block(run: h5py.File, plan: AnalysisPlan, estimator: Estimator, values: Mapping[str, Value],
                    context: Any, spec: BlockSpec, batch: int | None, raw: np.ndarray,
                    shared: _SharedRecompute | None = None):
    """Read one block into the byte buffer `raw` and estimate it: {variant: {name: (bs, be)}}.

    With `batch`, the estimator sees that many seed-epochs: the block, then copies of its last one.
    A seed-epoch whose activations are not all finite is estimated as zeros and its results are NaN.
    """
    cell = plan.cell
    _, _, n, width = cell.shapes[spec.layer]
    ns, ne = spec.s_hi - spec.s_lo, spec.e_hi - spec.e_lo
    count = batch or ns * ne  # the seed-epochs past ns * ne: copies of the last one (same layer, same data)
    if shared is not None and shared.on_device:  # recomputed on the device, and left there
        acts = shared.layer(*_extent(spec, plan.seeds, plan.epoch_index), spec.layer).reshape(ns * ne, n, width)
        if count > ns * ne:
            acts = jnp.concatenate([acts, jnp.repeat(acts[-1:], count - ns * ne, axis=0)])
    else:
        row = n * width * cell.dtype.itemsize
        _read(run, cell, spec, plan.seeds, plan.epoch_index,
              raw[: ns * ne * row].view(cell.dtype).reshape(ns, ne, n, width), shared)
        acts = raw[: count * row].view(cell.dtype).reshape(count, n, width)
        acts[ns * ne:] = acts[ns * ne - 1]
    finite = finite_rows(acts)
    if not finite.all():
        acts = (np.where if isinstance(acts, np.ndarray) else jnp.where)(finite[:, None, None], acts, 0)
    seed_of = np.repeat(plan.seeds[spec.s_lo:spec.s_hi], ne)
    epoch_of = np.tile(plan.epoch_index[spec.e_lo:spec.e_hi], ns)
    seed_of = np.concatenate([seed_of, np.full(count - ns * ne, seed_of[-1])])
    epoch_of = np.concatenate([epoch_of, np.full(count - ns * ne, epoch_of[-1])])
    block = Block(acts, seed_of, spec.layer, cell.x, epoch_of)
    out = estimator.estimate(block, plan.labels, values, context)
    return {v: _named_results(result, ns, ne, finite[: ns * ne]) for v, result in out.items()}


def _named_results(result: tuple, ns: int, ne: int, finite: np.ndarray) -> dict[str, np.ndarray]:
    """{"ixt", "ity", extras..} as (ns, ne) from an estimate's (ixt, ity[, extras]) per seed-epoch,
    NaN where the seed-epoch's activations were not `finite`."""
    ixt, ity, *more = result
    named = {"ixt": ixt, "ity": ity, **(more[0] if more else {})}
    return {name: np.where(finite, np.asarray(a, float)[: ns * ne], np.nan).reshape(ns, ne)
            for name, a in named.items()}


def default_workers() -> int:
    """Worker threads: one per core, at most 4."""
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))
