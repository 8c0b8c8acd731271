"""Training an experiment: every cell, resumable, into one run file per cell."""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import h5py
import jax
import numpy as np
import optax

from ibrepro import __version__
from ibrepro import config as cfg
from ibrepro.data import CellArrays, prepare
from ibrepro.train.engine import SeedData, SharedData, ShardedTrainer, Trainer
from ibrepro.errors import UserError
from ibrepro.train.model import MLP
from ibrepro.train.runfile import SCHEMA, RunWriter, checkpoint_path, run_config
from ibrepro.train.schedule import logged_epochs

CHECKPOINT_SECONDS = 30.0


@dataclass
class Snapshot:
    """What a progress display is told after each written snapshot."""

    cell: str
    epoch: int
    epochs: int
    train_loss: float
    test_acc: float
    train_acc: float


def seed_keys(base_seed: int, n_seeds: int) -> jax.Array:
    """One PRNG key per seed, (base_seed, s) as the raw key data: seed s's key does not
    depend on how many seeds the cell has, and making them compiles nothing."""
    data = np.stack([np.full(n_seeds, base_seed), np.arange(n_seeds)], axis=1).astype(np.uint32)
    return jax.random.wrap_key_data(data, impl="threefry2x32")


def make_optimizer(train: dict) -> optax.GradientTransformation:
    """The optax optimizer of a config's [train] table."""
    if train["optimizer"] == "adam":
        return optax.adam(train["lr"])
    return optax.sgd(train["lr"], momentum=train["momentum"] or None)


def make_trainer(config: dict, arrays: CellArrays) -> Trainer:
    """The Trainer for one cell's config and data."""
    return _trainer(json.dumps(config["model"]), json.dumps(config["train"]), arrays.n_classes,
                    arrays.train_idx.shape[1], config["log"]["train_metric_samples"],
                    arrays.pool_is_eval, storage_dtype(config))


@functools.lru_cache(maxsize=16)
def _trainer(model: str, train: str, n_classes: int, n_train: int, metric_rows: int,
             pool_is_eval: bool, layer_dtype: str) -> Trainer:
    model, train = json.loads(model), json.loads(train)
    batch = train["batch_size"]
    mlp = MLP(hidden=tuple(model["hidden"]), n_classes=n_classes, activation=model["activation"],
              weight_init=model["init"], init_scale=model["init_scale"],
              noise_std=model["noise_std"], dropout=model["dropout"])
    return Trainer(model=mlp, optimizer=make_optimizer(train),
                   batch_size=n_train if batch == 0 else min(batch, n_train), n_train=n_train,
                   train_metric_rows=min(n_train, metric_rows), pool_is_eval=pool_is_eval,
                   layer_dtype=layer_dtype)


@functools.lru_cache(maxsize=16)
def _sharded(trainer: Trainer, n_seeds: int) -> ShardedTrainer:
    """Compiled functions are kept per (trainer, seeds): cells of the same shape reuse them."""
    return ShardedTrainer(trainer, n_seeds)


def storage_dtype(config: dict) -> str:
    """float32 for the 12-bit task, float16 for image datasets, unless set."""
    chosen = config["log"]["dtype"]
    if chosen != "auto":
        return chosen
    return "float32" if config["dataset"] == "tishby12" else "float16"


def _open_existing(path: Path, config: dict, force: bool) -> h5py.File | None:
    """The run file to continue, None to start afresh (after --force), or an error."""
    if not path.exists():
        return None
    try:
        handle = h5py.File(path, "r+")
    except OSError:
        if force:
            return None
        raise UserError(f"{path} exists but is not a readable HDF5 file; use --force to start over") from None
    if handle.attrs.get("schema") != SCHEMA:
        handle.close()
        raise UserError(f"{path} exists and is not an ibrepro run file; move it away first")
    differing = cfg.differing_keys(run_config(handle), config)
    if differing and not force:
        handle.close()
        raise UserError(f"{path} was trained with a different config ({', '.join(differing)}); "
                        "use --force to start over or --out to write elsewhere")
    if differing:
        handle.close()
        return None
    return handle


def train_cell(name: str, config: dict, path: Path, force: bool = False,
               on_snapshot: Callable[[Snapshot], None] | None = None) -> str:
    """Train one cell into `path`; returns "trained", "resumed" or "skipped"."""
    handle = _open_existing(path, config, force)
    if handle is not None and handle.attrs.get("status") == "complete":
        handle.close()
        return "skipped"
    if handle is None and path.exists():
        path.unlink()
        checkpoint_path(path).unlink(missing_ok=True)

    arrays = prepare(config)
    trainer = make_trainer(config, arrays)
    sharded = _sharded(trainer, config["train"]["seeds"])
    keys = seed_keys(config["train"]["seed"], config["train"]["seeds"])
    shared, seeds = sharded.place(
        SharedData(arrays.x_pool, arrays.y_pool, arrays.x_eval, arrays.y_eval),
        SeedData(keys, arrays.train_idx, arrays.test_weight))
    state = sharded.init(seeds, arrays.x_pool.shape[1])
    schedule = logged_epochs(config["train"]["epochs"], config["log"]["snapshots"])

    if handle is None:
        widths = [*config["model"]["hidden"], arrays.n_classes]
        writer = RunWriter.create(path, config, __version__, arrays.x_eval, arrays.y_eval,
                                  arrays.train_mask, widths, storage_dtype(config))
        start, outcome = 0, "trained"
    else:
        writer = RunWriter(handle)
        saved = writer.load_checkpoint()
        if saved is None:
            start = 0
        else:
            leaves, epoch, start = saved
            state = sharded.put_state(jax.tree.unflatten(jax.tree.structure(state), leaves))
            assert schedule[start - 1] == epoch, "checkpoint does not match the schedule"
        writer.truncate(start)
        outcome = "resumed"

    try:
        _run_schedule(name, sharded, writer, state, shared, seeds, schedule, start, on_snapshot)
        writer.finish()
    finally:
        writer.close()
    return outcome


def _run_schedule(name, sharded, writer, state, shared, seeds, schedule, start, on_snapshot):
    """Advance through the logged epochs from snapshot `start`, writing each snapshot.

    Each snapshot is written while the next one computes (JAX dispatches asynchronously);
    the state is checkpointed every CHECKPOINT_SECONDS and at the end.
    """
    pending: list[tuple[int, tuple]] = []
    last_checkpoint = time.monotonic()

    def write(item):
        epoch, (layers, metrics, grads) = item
        metrics = np.asarray(metrics)
        writer.append(epoch, [np.asarray(a) for a in layers], metrics, np.asarray(grads))
        if on_snapshot is not None:
            on_snapshot(Snapshot(name, epoch, int(schedule[-1]), _seed_mean(metrics[:, 0]),
                                 _seed_mean(metrics[:, 3]), _seed_mean(metrics[:, 2])))

    for i in range(start, len(schedule)):
        if i > 0:
            state = sharded.advance(state, shared, seeds, int(schedule[i - 1]), int(schedule[i]))
        layers, metrics = sharded.evaluate(state, shared, seeds)
        # a copy of grad_stats: the next advance donates (invalidates) the state's buffers
        pending.append((int(schedule[i]), (layers, metrics, state.grad_stats + 0)))
        due = time.monotonic() - last_checkpoint > CHECKPOINT_SECONDS or i == len(schedule) - 1
        if due:
            leaves = [np.asarray(leaf) for leaf in jax.tree.leaves(state)]
            while pending:
                write(pending.pop(0))
            writer.save_checkpoint(leaves, int(schedule[i]))
            last_checkpoint = time.monotonic()
        elif len(pending) > 1:
            write(pending.pop(0))


def _seed_mean(values: np.ndarray) -> float:
    """Mean over seeds of the finite values; NaN (without a warning) if there are none."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def train_experiment(config: dict, out_dir: Path, force: bool = False,
                     on_cell: Callable[[int, int, str], None] | None = None,
                     on_snapshot: Callable[[Snapshot], None] | None = None) -> list[tuple[Path, str]]:
    """Train every cell of a resolved experiment config under `out_dir/<name>/`."""
    directory = Path(out_dir) / config["name"]
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output directory {directory}: {exc.strerror}") from None
    results = []
    all_cells = cfg.cells(config)
    for index, (name, cell_config) in enumerate(all_cells):
        if on_cell is not None:
            on_cell(index, len(all_cells), name)
        path = directory / f"{name}.h5"
        results.append((path, train_cell(name, cell_config, path, force, on_snapshot)))
    return results
