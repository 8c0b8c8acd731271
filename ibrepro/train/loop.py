"""Training an experiment: every cell, resumable, into one run file per cell."""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import jax
import numpy as np
import optax

from ibrepro import __version__
from ibrepro import config as cfg
from ibrepro.data import TrainingData, prepare
from ibrepro.data.labels import noisy_p_y1
from ibrepro.errors import UserError
from ibrepro.layout import result_paths
from ibrepro.train import checkpoint
from ibrepro.train.engine import SeedData, ShardedTrainer, SharedData, Trainer, device_count_for, param_layers
from ibrepro.train.interrupt import Interrupted, StopRequest
from ibrepro.train.lock import cell_lock
from ibrepro.train.model import make_model
from ibrepro.train.provenance import now, provenance
from ibrepro.train.recorded import recorded_activations
from ibrepro.train.resume import existing_status, resume_point
from ibrepro.train.runfile import (
    GRADIENT_NAMES,
    METRIC_NAMES,
    checkpoint_path,
    diverged_epochs,
    divergence_note,
    layer_widths,
    open_run,
)
from ibrepro.train.schedule import logged_epochs
from ibrepro.train.writer import RunWriter


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


def make_trainer(config: dict, arrays: TrainingData) -> Trainer:
    """The Trainer for one cell's config and data."""
    return _trainer(json.dumps(config["model"]), json.dumps(config["train"]), arrays.n_classes,
                    arrays.train_idx.shape[1], config["log"]["train_metric_samples"],
                    arrays.pool_is_eval, storage_dtype(config))


@functools.lru_cache(maxsize=16)
def _trainer(model: str, train: str, n_classes: int, n_train: int, metric_rows: int,
             pool_is_eval: bool, layer_dtype: str) -> Trainer:
    train = json.loads(train)
    batch = train["batch_size"]
    return Trainer(model=make_model({"model": json.loads(model)}, n_classes), optimizer=make_optimizer(train),
                   batch_size=n_train if batch == 0 else min(batch, n_train), n_train=n_train,
                   train_metric_rows=min(n_train, metric_rows), pool_is_eval=pool_is_eval,
                   layer_dtype=layer_dtype)


@functools.lru_cache(maxsize=16)
def _sharded(trainer: Trainer, n_seeds: int) -> ShardedTrainer:
    """Compiled functions are kept per (trainer, seeds): cells of the same shape reuse them."""
    return ShardedTrainer(trainer, n_seeds)


def storage_dtype(config: dict) -> str:
    """The dtype activations are recorded in (`log.dtype`, float32 unless set)."""
    return config["log"]["dtype"]




def train_cell(name: str, config: dict, path: Path, force: bool = False,
               on_snapshot: Callable[[Snapshot], None] | None = None,
               say: Callable[[str], None] | None = None, stop: StopRequest | None = None) -> str:
    """Train one cell into `path`; returns "trained", "resumed" or "skipped".

    Holds the cell's lock throughout; `say` receives notes (a resume that starts over);
    `stop` is polled after every snapshot: when set, a checkpoint is written and Interrupted
    raised.
    """
    say = say or (lambda note: None)
    with cell_lock(path):
        n_seeds = config["train"]["seeds"]
        devices = device_count_for(n_seeds)
        previous = _run_id(path)  # before a start over (--force) removes the file
        status = existing_status(path, config, force, devices)
        if status == "complete":
            checkpoint.remove(checkpoint_path(path))
            return "skipped"
        arrays = prepare(config)
        trainer = make_trainer(config, arrays)
        sharded = _sharded(trainer, n_seeds)
        keys = seed_keys(config["train"]["seed"], n_seeds)
        shared, seeds = sharded.place(
            SharedData(arrays.x_pool, arrays.y_pool, arrays.x_eval, arrays.y_eval),
            SeedData(keys, arrays.train_idx, arrays.test_weight))
        state = sharded.init(seeds, arrays.x_pool.shape[1])
        schedule = logged_epochs(config["train"]["epochs"], config["log"]["snapshots"])
        if status is None:
            checkpoint.remove(checkpoint_path(path))
            moved = set_aside_results(path, previous or time.strftime("%Y%m%dT%H%M%S"))
            if moved:
                say(f"{path.name}: a new run; the previous run's results set aside as "
                    f"{', '.join(m.name for m in moved)}")
            RunWriter.create(path, config, __version__, provenance(),
                             {"x": arrays.x_eval, "y": arrays.y_eval, "train_mask": arrays.train_mask,
                              "p_y1": noisy_p_y1(config)},
                             schedule, _param_shapes(state.params), layer_widths(config, arrays.n_classes),
                             config["log"]["activations"], storage_dtype(config), devices)
        writer = RunWriter(path)
        try:
            start, outcome = 0, "trained"
            if status is not None:
                state, start = resume_point(writer, state, schedule, devices, say)
                state = sharded.put_state(state)
                outcome = "resumed"
            writer.truncate(start)
            _run_schedule(name, sharded, writer, state, shared, seeds, schedule, start, on_snapshot,
                          _recorder(trainer, arrays, config), config["log"]["checkpoint_seconds"], devices, stop)
            writer.finish(now())
        finally:
            writer.close()
    return outcome


def set_aside_results(path: Path, tag: str) -> list[Path]:
    """Move a cell's estimates and claims out of the way of a new run: `<name>.old-<tag>`
    beside them (tag: the previous run's id). Returns the paths they were moved to."""
    moved = []
    for result in result_paths(path):
        if result.exists():
            moved.append(result.replace(result.with_name(f"{result.name}.old-{tag}")))
    return moved


def _run_id(path: Path) -> str | None:
    """The run id of an existing run file, None when there is none or it cannot be read."""
    try:
        with h5py.File(path, "r", locking=False) as run:
            value = run.attrs.get("run_id")
    except OSError:
        return None
    return None if value is None else (value.decode() if isinstance(value, bytes) else str(value))


def _param_shapes(params) -> list[dict]:
    """Per layer {"module": flax name, leaf: shape without the seed axis}."""
    return [{"module": module, **{leaf: tuple(v.shape[1:]) for leaf, v in leaves.items()}}
            for module, leaves in param_layers(params)]


def _recorder(trainer: Trainer, arrays: TrainingData, config: dict):
    """record(params, evaluated layers) -> the activations a snapshot stores, or None when
    `log.activations` is off (`ibrepro.train.recorded.recorded_activations`)."""
    if not config["log"]["activations"]:
        return None
    return functools.partial(recorded_activations, trainer.model, arrays.x_eval, storage_dtype(config))


def _run_schedule(name, sharded, writer, state, shared, seeds, schedule, start, on_snapshot,
                  record, checkpoint_seconds, devices, stop):
    """Advance through the logged epochs from snapshot `start`, writing each snapshot.

    Each snapshot is written while the next one computes (JAX dispatches asynchronously);
    every `checkpoint_seconds`, at the end, and when `stop` is set, the written snapshots are
    made durable and counted, then the state is checkpointed (readers see snapshots then).
    """
    pending: list[tuple[int, int, tuple]] = []
    last_checkpoint = time.monotonic()

    def write(item):
        index, epoch, (layers, metrics, grads, params) = item
        metrics = np.asarray(metrics)
        arrays = {f"metrics/{n}": metrics[:, j] for j, n in enumerate(METRIC_NAMES)}
        arrays.update({f"gradients/{n}": np.asarray(grads)[:, j] for j, n in enumerate(GRADIENT_NAMES)})
        params = jax.tree.map(np.asarray, params)
        for k, (_, leaves) in enumerate(param_layers(params)):
            arrays.update({f"params/{k}/{leaf}": v for leaf, v in leaves.items()})
        if record is not None:
            arrays.update({f"activations/{k}": a for k, a in enumerate(record(params, layers))})
        writer.append(index, arrays)
        if on_snapshot is not None:
            on_snapshot(Snapshot(name, epoch, int(schedule[-1]), _seed_mean(metrics[:, 0]),
                                 _seed_mean(metrics[:, 3]), _seed_mean(metrics[:, 2])))

    for i in range(start, len(schedule)):
        if i > 0:
            state = sharded.advance(state, shared, seeds, int(schedule[i - 1]), int(schedule[i]))
        layers, metrics = sharded.evaluate(state, shared, seeds)
        # copies: the next advance donates (invalidates) the state's buffers
        pending.append((i, int(schedule[i]), (layers, metrics, state.grad_stats + 0,
                                              jax.tree.map(lambda a: a + 0, state.params))))
        stopping = stop is not None and stop.requested
        due = (time.monotonic() - last_checkpoint > checkpoint_seconds or i == len(schedule) - 1
               or stopping)
        if due:
            host_state = jax.tree.map(np.asarray, state)
            while pending:
                write(pending.pop(0))
            writer.commit(i + 1)  # one fsync per checkpoint: per snapshot it cost ~0.3 s of wall time
            writer.save_checkpoint(host_state, int(schedule[i]), devices)
            last_checkpoint = time.monotonic()
            if stopping and i < len(schedule) - 1:
                raise Interrupted(name, int(schedule[i]))
        elif len(pending) > 1:
            write(pending.pop(0))


def _seed_mean(values: np.ndarray) -> float:
    """Mean over seeds of the finite values; NaN (without a warning) if there are none."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def experiment_cells(config: dict, out_dir: Path) -> list[tuple[str, dict, Path]]:
    """(name, resolved config, run-file path) of every cell, creating `out_dir/<name>/`.

    Names are checked so that no file lands outside `out_dir`.
    """
    directory = Path(out_dir) / cfg.checked_name(config["name"])
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output directory {directory}: {_blocking(directory) or exc.strerror}") from None
    return [(name, cell_config, directory / f"{cfg.checked_name(name)}.h5") for name, cell_config in cfg.cells(config)]


def _blocking(directory: Path) -> str:
    """Why a directory cannot be made: a dangling symbolic link or a file on its path ("" if neither)."""
    for part in reversed([directory, *directory.parents]):
        if part.is_symlink() and not part.exists():
            return (f"{part} is a symbolic link to {os.readlink(part)}, which does not exist; "
                    "create that or use another --out")
        if part.exists() and not part.is_dir():
            return f"{part} is a file, not a directory; use another --out"
    return ""


def train_experiment(config: dict, out_dir: Path, force: bool = False,
                     on_cell: Callable[[int, int, str], None] | None = None,
                     on_snapshot: Callable[[Snapshot], None] | None = None,
                     say: Callable[[str], None] | None = None,
                     stop: StopRequest | None = None, allow_divergence: bool = False) -> list[tuple[Path, str]]:
    """Train every cell of a resolved experiment config under `out_dir/<name>/`, in turn.

    A cell whose training loss became non-finite for some seed is trained to the end (its
    run file records the seeds in `diverged`); once every cell is done, UserError names the
    diverged cells, unless `allow_divergence`, when `say` is told instead.
    """
    say = say or (lambda note: None)
    results, diverged = [], []
    cells = experiment_cells(config, out_dir)
    for index, (name, cell_config, path) in enumerate(cells):
        if stop is not None and stop.requested:
            raise Interrupted(name, 0, started=False)
        if on_cell is not None:
            on_cell(index, len(cells), name)
        results.append((path, train_cell(name, cell_config, path, force, on_snapshot, say, stop)))
        with open_run(path) as run:
            note = divergence_note(str(path), diverged_epochs(run))
        if note:
            diverged.append(note)
    if diverged and not allow_divergence:
        more = f" (and {len(diverged) - 1} more cell(s))" if len(diverged) > 1 else ""
        raise UserError(f"{diverged[0]}{more}: their estimates will be NaN and claims leave them out; "
                        "lower train.lr, or pass --allow-divergence to accept diverged runs")
    for note in diverged:
        say(f"{note}; their estimates will be NaN and claims leave them out")
    return results
