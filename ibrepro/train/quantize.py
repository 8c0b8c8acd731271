"""Quantized and binary layers with straight-through gradients.

Quantized networks follow Lorenzen, Igel & Nielsen (ICLR 2022, "Information Bottleneck:
Exact Analysis of (Quantized) Neural Networks", Sec. 3: quantization-aware training after
Jacob et al. 2018), as their public code (StephanLorenzen/ExactIBAnalysisInQNNs,
IB/util/quantization.py and IB/models/models.py) does it:

- every layer's output, the softmax output included, is rounded to one of 2^b equally spaced
  levels spanning the layer's range over the batch (all units and rows of the batch at once);
- tanh layers keep float weights; every other layer (ReLU hidden layers and the output
  layer) also has its kernel rounded to 2^b levels over the kernel's own min..max;
- the forward pass uses the rounded values, the backward pass the identity inside the range
  (straight-through), and weights and optimizer state stay float32.

Ranges always include 0, as TensorFlow's fake quantization (which their code uses) keeps 0
inside its range; for ReLU and softmax outputs the range is [0, batch max]. Unlike it, the grid
is not shifted to put 0 exactly on a level. Their code keeps a
moving average of the batch range for ReLU/softmax outputs; here every layer uses the range
of the batch at hand, so the recorded activations (one batch of all evaluation inputs) sit on
exactly 2^b levels of their own min..max, which the `exact` estimator relies on only as a
fast check.

Binary networks (sign activation, optionally binary weights) follow the straight-through
estimator of Hubara et al. (2016): forward sign (±1, sign(0) = +1), backward the hard-tanh
window (gradient 1 where |x| <= 1, else 0) for activations; binary hidden kernels are ±α with one
scale α per kernel (Rastegari et al. 2016) and pass the identity gradient to real-valued
latent weights (BinaryConnect, Courbariaux et al. 2015).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Activations whose quantized layers keep float weights (their code: tanh only).
FLOAT_WEIGHT_ACTIVATIONS = ("tanh",)


def straight_through(x: jax.Array, forward: jax.Array) -> jax.Array:
    """Exactly `forward` in the forward pass, the gradient of the identity in x backward.

    (Written forward + (x − x) rather than x + (forward − x), which rounds: the recorded
    values must sit exactly on the levels.)
    """
    return jax.lax.stop_gradient(forward) + (x - jax.lax.stop_gradient(x))


def clip_window(x: jax.Array, lo, hi) -> jax.Array:
    """x clipped to [lo, hi]; gradient 1 inside the closed window, 0 outside (no half at ties)."""
    inside = (x >= lo) & (x <= hi)
    return jnp.where(inside, x, jax.lax.stop_gradient(jnp.clip(x, lo, hi)))


def quantization_range(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The batch range of a layer (all axes), widened to include 0; no gradient flows through it."""
    lo = jnp.minimum(jnp.min(x), 0.0)
    hi = jnp.maximum(jnp.max(x), 0.0)
    return jax.lax.stop_gradient(lo), jax.lax.stop_gradient(hi)


def _levels(x: jax.Array, lo: jax.Array, hi: jax.Array, bits: int) -> jax.Array:
    """The nearest of 2^bits equally spaced levels lo, ..., hi to each x in [lo, hi] (no gradient)."""
    steps = 2.0**bits - 1.0
    wide = hi > lo
    scale = jnp.where(wide, (hi - lo) / steps, 1.0)
    inverse = jnp.where(wide, steps / (hi - lo), 1.0)
    return jax.lax.stop_gradient(lo + jnp.round((x - lo) * inverse) * scale)


def quantize(x: jax.Array, lo: jax.Array, hi: jax.Array, bits: int) -> jax.Array:
    """Round x to the nearest of 2^bits equally spaced levels lo, ..., hi (clipped to [lo, hi]).

    The gradient is 1 where lo <= x <= hi and 0 outside (straight-through with clipping).
    A zero-width range maps everything to lo.
    """
    clipped = clip_window(x, lo, hi)
    return straight_through(clipped, _levels(clipped, lo, hi, bits))


def quantize_batch(x: jax.Array, bits: int) -> jax.Array:
    """x rounded to 2^bits levels over its own batch range (see `quantization_range`); every
    value lies in the range, so nothing is clipped and the gradient is the identity."""
    lo, hi = quantization_range(x)
    return straight_through(x, _levels(x, lo, hi, bits))


def sign(x: jax.Array) -> jax.Array:
    """±1 (sign(0) = +1) forward; hard-tanh gradient window (1 where |x| <= 1) backward."""
    return straight_through(clip_window(x, -1.0, 1.0), jnp.where(x >= 0, 1.0, -1.0).astype(x.dtype))


def binary_weights(w: jax.Array) -> jax.Array:
    """±α weights forward (α = mean |w| of the kernel, as XNOR-Net), identity gradient to
    the real-valued latent weights. Plain ±1 kernels would put the integer pre-activations
    of an unnormalised network far outside the sign activation's gradient window."""
    alpha = jax.lax.stop_gradient(jnp.mean(jnp.abs(w)))
    return straight_through(w, alpha * jnp.where(w >= 0, 1.0, -1.0).astype(w.dtype))


def weight_transform(bits: int, binary: bool, activation: str, is_output: bool):
    """The function applied to a layer's kernel before use, or None for plain float weights.

    Binary weights apply to hidden layers (the output layer keeps real weights, as usual in
    binary networks); quantized networks round every other kernel except those of tanh
    hidden layers (the output layer's kernel is rounded too).
    """
    if binary and not is_output:
        return binary_weights
    if bits and (is_output or activation not in FLOAT_WEIGHT_ACTIVATIONS):
        return lambda w: quantize_batch(w, bits)
    return None


def dot_general_with(transform):
    """A `dot_general` for flax.linen.Dense that transforms the kernel first."""

    def dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None, **kwargs):
        return jax.lax.dot_general(lhs, transform(rhs), dimension_numbers, precision=precision,
                                   preferred_element_type=preferred_element_type, **kwargs)

    return dot_general
