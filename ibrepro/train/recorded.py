"""Layer outputs as a run file records them: one compiled forward pass for training and analysis.

Training records activations with `layer_outputs`, and the activation reader
(`ibrepro.analysis.activations`) recomputes them from `params/` with the same function, so
both run the same compiled program on the same shapes: on the same machine the recomputed
values equal the recorded ones bit for bit.

Each parameter set (one seed-epoch) is computed alone, as one iteration of a compiled loop
whose trip count is an argument: its outputs do not depend on how many sets share the call,
nor on their order. A `jax.vmap` over the sets would not do: XLA folds the shared inputs into
one matrix product of B · width columns, whose summation order changes with B (on two CPU
cores, MNIST inputs into a 7-unit layer moved by up to 1.3e-6 between a batch of 1 and of 3),
and a quantized layer's grid moves with its minimum.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ibrepro.train.model import MLP

CALL_ELEMENTS = 1 << 22  # output floats of one compiled call, all layers together (16 MB as float32)


def call_capacity(model: MLP, n_inputs: int) -> int:
    """Parameter sets per compiled call: the largest power of two whose outputs of every layer
    on `n_inputs` rows fit CALL_ELEMENTS (at least 1). A function of the cell's shape only."""
    widths = sum(model.hidden) + model.n_classes
    return 1 << max(0, (CALL_ELEMENTS // (n_inputs * widths)).bit_length() - 1)


@functools.lru_cache(maxsize=32)
def _program(model: MLP, dtype: str, capacity: int):
    """Compiled: (params with `capacity` sets, x (N, d), count) -> every layer's outputs
    (capacity, N, w), sets 0..count-1 computed one per loop iteration, the rest zeros."""

    def outputs(params, x):
        layers, _ = model.apply({"params": params}, x)
        return [layer.astype(dtype) for layer in layers]

    def run(params, x, count):
        shapes = jax.eval_shape(outputs, jax.tree.map(lambda a: a[0], params), x)

        def one(i, buffers):
            values = outputs(jax.tree.map(lambda a: a[i], params), x)
            return [buffer.at[i].set(value) for buffer, value in zip(buffers, values)]

        buffers = [jnp.zeros((capacity, *s.shape), s.dtype) for s in shapes]
        return jax.lax.fori_loop(0, count, one, buffers)  # a traced count: one program for every call

    return jax.jit(run)


def layer_outputs(model: MLP, params, x: np.ndarray, dtype: str = "float32", on_device: bool = False) -> list:
    """Every layer's outputs (B, N, w), the softmax output last, for B parameter sets.

    `params` is the model's parameter tree with a leading axis of B sets on every leaf;
    `x` (N, d) float32 the evaluation inputs. Noise-free models only (a noise-injected
    model's recorded layers carry its evaluation noise). With `on_device` the outputs stay
    on JAX's default device (jax arrays), else numpy arrays.
    """
    if model.noise_std > 0:
        raise ValueError("layer_outputs: a noise-injected model's layers are recorded with its noise")
    x = np.asarray(x, np.float32)
    count = jax.tree.leaves(params)[0].shape[0]
    capacity = call_capacity(model, x.shape[0])
    program = _program(model, np.dtype(dtype).name, capacity)
    parts = []
    for lo in range(0, count, capacity):
        hi = min(lo + capacity, count)
        take = np.minimum(np.arange(lo, lo + capacity), hi - 1)  # a short call repeats its last set
        sets = jax.tree.map(lambda a, take=take: np.asarray(a, np.float32)[take], params)
        outputs = program(sets, x, np.int32(hi - lo))
        parts.append([out[: hi - lo] if on_device else np.asarray(out)[: hi - lo] for out in outputs])
    if not parts:
        widths = [*model.hidden, model.n_classes]
        return [np.empty((0, x.shape[0], w), dtype) for w in widths]
    if len(parts) == 1:
        return parts[0]
    return [(jnp if on_device else np).concatenate(layer) for layer in zip(*parts)]


def recorded_activations(model: MLP, x: np.ndarray, dtype: str, params, evaluated) -> list[np.ndarray]:
    """The activations a training snapshot stores: `layer_outputs` of its parameters `params`
    (what the reader recomputes), or for a noise-injected model the evaluation pass's layers
    `evaluated` (S, N, w), which carry its noise and are never recomputed."""
    if model.noise_std > 0:
        return [np.asarray(layer) for layer in evaluated]
    return layer_outputs(model, params, x, dtype)
