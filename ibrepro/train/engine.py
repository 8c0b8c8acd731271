"""Compiled multi-seed training.

All seeds of a cell train at once: per-seed functions are `vmap`ped over a leading seed
axis, and the seed axis is sharded over the host's devices (one per core). Minibatch steps
run inside `lax.scan`, epochs inside a `lax.fori_loop` with traced bounds, so advancing from
one logged epoch to the next is one compiled call whatever the gap.

Per-seed randomness is a pure function of (seed key, epoch): the minibatch order of epoch e
is drawn from `fold_in(key, e)`, and the hidden-layer noise and dropout of its minibatch step j
from `fold_in(fold_in(key, e), j + 1)`, so a resumed run repeats an uninterrupted one exactly.
The noise of the evaluation pass (noise-injected models) is one fixed draw per seed,
`fold_in(key, EVAL_STREAM)`, the same at every logged epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ibrepro.train.model import MLP, perturbation_rngs
from ibrepro.train.shuffle import permutation

Params = Any
EVAL_STREAM = 2**32 - 1  # folded into a seed's key for the evaluation pass's noise (no epoch reaches it)


class TrainState(NamedTuple):
    """Per-seed training state (every leaf has a leading seed axis when batched)."""

    params: Params
    opt_state: optax.OptState
    grad_stats: jax.Array  # (3, L): mean_norm, std_norm, weight_norm over the last epoch


class SharedData(NamedTuple):
    """Arrays every seed reads."""

    x_pool: jax.Array  # (P, d) inputs the training rows are drawn from
    y_pool: jax.Array  # (P,)
    x_eval: jax.Array  # (N, d) inputs activations are recorded on
    y_eval: jax.Array  # (N,)


class SeedData(NamedTuple):
    """Arrays of one seed (a leading seed axis when batched)."""

    key: jax.Array  # PRNG key
    train_idx: jax.Array  # (n_train,) pool rows the seed trains on
    test_weight: jax.Array  # (N,) 1 where an eval row is test data for the seed


def param_layers(params: Params) -> list[tuple[str, dict]]:
    """(module name, its parameters) of an MLP, in layer order (Dense_0, Dense_1, ...)."""
    return [(name, params[name]) for name in sorted(params, key=lambda n: int(n.rsplit("_", 1)[1]))]


def kernels(params: Params) -> list[jax.Array]:
    """The weight matrices of an MLP's parameters, in layer order."""
    return [leaves["kernel"] for _, leaves in param_layers(params)]


def _norm(a: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.sum(a * a))


def _loss_acc(logits: jax.Array, labels: jax.Array, weight: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Weighted mean cross-entropy and accuracy; NaN when the weights are all zero."""
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
    total = jnp.sum(weight)
    safe = jnp.maximum(total, 1e-30)
    nan = jnp.float32(jnp.nan)
    return (jnp.where(total > 0, jnp.sum(losses * weight) / safe, nan),
            jnp.where(total > 0, jnp.sum(correct * weight) / safe, nan))


@dataclass(frozen=True)
class Trainer:
    """The per-seed training and evaluation functions of one cell's shape."""

    model: MLP
    optimizer: optax.GradientTransformation
    batch_size: int  # minibatch size (at most n_train)
    n_train: int
    train_metric_rows: int  # how many of a seed's training rows the train metrics use
    pool_is_eval: bool = False  # training rows are eval rows (tishby12): reuse the eval pass
    layer_dtype: str = "float32"  # recorded activations are cast on the device (float16 halves copies)

    @property
    def n_steps(self) -> int:
        """Minibatches per epoch; the last one may be partial (no example is dropped)."""
        return -(-self.n_train // self.batch_size)

    def init_state(self, key: jax.Array, n_inputs: int) -> TrainState:
        """Initial state of one seed."""
        params = self.model.init({"params": key, **perturbation_rngs(key)}, jnp.zeros((1, n_inputs)))["params"]
        n_weights = len(kernels(params))
        return TrainState(params, self.optimizer.init(params), jnp.full((3, n_weights), jnp.nan))

    def _loss(self, params: Params, x: jax.Array, y: jax.Array, weight: jax.Array, key: jax.Array) -> jax.Array:
        _, logits = self.model.apply({"params": params}, x, train=True, rngs=perturbation_rngs(key))
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        return jnp.sum(losses * weight) / jnp.sum(weight)

    def minibatches(self, key: jax.Array, train_idx: jax.Array) -> tuple[jax.Array, jax.Array]:
        """One epoch's minibatches: pool rows and 0/1 weights, each (n_steps, batch_size).

        Every training row once, in the order `permutation(key)`; the partial last minibatch
        is padded with weight-0 rows."""
        n_slots = self.n_steps * self.batch_size
        order = permutation(key, self.n_train)
        slots = jnp.arange(n_slots)
        rows = train_idx[order[slots % self.n_train]].reshape(self.n_steps, self.batch_size)
        weights = (slots < self.n_train).astype(jnp.float32).reshape(self.n_steps, self.batch_size)
        return rows, weights

    def epoch(self, state: TrainState, key: jax.Array, shared: SharedData, seed: SeedData,
              with_stats: bool = True) -> TrainState:
        """One epoch of one seed: reshuffle, minibatch steps, and (if `with_stats`) the
        epoch's gradient statistics (DESIGN §5); otherwise `grad_stats` is left as it was."""
        rows, weights = self.minibatches(key, seed.train_idx)

        def step(carry, batch):
            params, opt_state, ref, d_sum, d_sq = carry
            rows_b, weight_b, j = batch
            grads = jax.grad(self._loss)(params, shared.x_pool[rows_b], shared.y_pool[rows_b], weight_b,
                                         jax.random.fold_in(key, j + 1))
            first = j == 0
            updates, opt_state = self.optimizer.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            if with_stats:  # minibatch b weighs n_b / n_train (DESIGN §5)
                share = jnp.sum(weight_b) / self.n_train
                g = kernels(grads)
                ref = [jnp.where(first, b, r) for r, b in zip(ref, g)]
                d = [b - r for r, b in zip(ref, g)]  # shifted by the first gradient: no cancellation
                d_sum = [a + share * b for a, b in zip(d_sum, d)]
                d_sq = [a + share * b * b for a, b in zip(d_sq, d)]
            return (params, opt_state, ref, d_sum, d_sq), None

        zeros = [jnp.zeros_like(k) for k in kernels(state.params)] if with_stats else []
        (params, opt_state, ref, d_sum, d_sq), _ = jax.lax.scan(
            step, (state.params, state.opt_state, zeros, zeros, zeros), (rows, weights, jnp.arange(self.n_steps))
        )
        if not with_stats:
            return TrainState(params, opt_state, state.grad_stats)
        # weighted mean and weighted population variance over the epoch's minibatches
        stats = jnp.stack([
            jnp.stack([_norm(r + m) for r, m in zip(ref, d_sum)]),
            jnp.stack([jnp.sqrt(jnp.maximum(jnp.sum(q - m * m), 0.0)) for m, q in zip(d_sum, d_sq)]),
            jnp.stack([_norm(w) for w in kernels(params)]),
        ])
        return TrainState(params, opt_state, stats)

    def advance(self, state: TrainState, shared: SharedData, seed: SeedData,
                start: jax.Array, stop: jax.Array) -> TrainState:
        """Run epochs start+1 .. stop of one seed (stop > start; traced bounds, so no
        recompilation). Gradient statistics are gathered in the last epoch only, the one a
        snapshot reports."""

        def body(epoch, st):
            return self.epoch(st, jax.random.fold_in(seed.key, epoch), shared, seed, with_stats=False)

        state = jax.lax.fori_loop(start, stop - 1, body, state)
        return self.epoch(state, jax.random.fold_in(seed.key, stop - 1), shared, seed)

    def evaluate(self, params: Params, shared: SharedData, seed: SeedData) -> tuple[list[jax.Array], jax.Array]:
        """One seed's layer outputs on the eval inputs (as `layer_dtype`), and its metrics
        (train_loss, test_loss, train_acc, test_acc)."""
        rngs = perturbation_rngs(jax.random.fold_in(seed.key, EVAL_STREAM))
        layers, logits = self.model.apply({"params": params}, shared.x_eval, rngs=rngs)
        test_loss, test_acc = _loss_acc(logits, shared.y_eval, seed.test_weight)
        if self.pool_is_eval:
            train_loss, train_acc = _loss_acc(logits, shared.y_eval, 1.0 - seed.test_weight)
        else:
            rows = seed.train_idx[: self.train_metric_rows]
            _, train_logits = self.model.apply({"params": params}, shared.x_pool[rows], rngs=rngs)
            train_loss, train_acc = _loss_acc(train_logits, shared.y_pool[rows], jnp.ones(rows.shape[0]))
        layers = [layer.astype(self.layer_dtype) for layer in layers]
        return layers, jnp.stack([train_loss, test_loss, train_acc, test_acc])


def device_count_for(n_seeds: int) -> int:
    """The most host devices (at most one per device present) that divide the seeds evenly."""
    return max(d for d in range(1, len(jax.devices()) + 1) if n_seeds % d == 0)


class ShardedTrainer:
    """A Trainer's functions batched over seeds, the seed axis sharded over host devices."""

    def __init__(self, trainer: Trainer, n_seeds: int):
        mesh = Mesh(np.array(jax.devices()[: device_count_for(n_seeds)]), ("seed",))
        self.per_seed = NamedSharding(mesh, PartitionSpec("seed"))
        self.replicated = NamedSharding(mesh, PartitionSpec())
        # Fixed shardings: one compiled program whether the state comes from init or advance.
        self._advance = jax.jit(jax.vmap(trainer.advance, in_axes=(0, None, 0, None, None)),
                                in_shardings=(self.per_seed, self.replicated, self.per_seed, None, None),
                                out_shardings=self.per_seed, donate_argnums=0)
        self._evaluate = jax.jit(jax.vmap(trainer.evaluate, in_axes=(0, None, 0)),
                                 in_shardings=(self.per_seed, self.replicated, self.per_seed),
                                 out_shardings=self.per_seed)
        self._init = jax.jit(jax.vmap(trainer.init_state, in_axes=(0, None)), static_argnums=1,
                             out_shardings=self.per_seed)

    def place(self, shared: SharedData, seeds: SeedData) -> tuple[SharedData, SeedData]:
        """Put shared arrays on every device and per-seed arrays on their seed's device."""
        return (jax.device_put(shared, self.replicated), jax.device_put(seeds, self.per_seed))

    def put_state(self, state: TrainState) -> TrainState:
        """Place a (host) state with its seed axis sharded."""
        return jax.device_put(state, self.per_seed)

    def init(self, seeds: SeedData, n_inputs: int) -> TrainState:
        """Initial states of all seeds."""
        return self._init(seeds.key, n_inputs)

    def advance(self, state: TrainState, shared: SharedData, seeds: SeedData, start: int, stop: int) -> TrainState:
        """All seeds from completed epoch `start` to `stop` (the input state is consumed)."""
        return self._advance(state, shared, seeds, start, stop)

    def evaluate(self, state: TrainState, shared: SharedData, seeds: SeedData):
        """Layer outputs (list of (S, N, w)) and metrics (S, 4) of all seeds."""
        return self._evaluate(state.params, shared, seeds)
