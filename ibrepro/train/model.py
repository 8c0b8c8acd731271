"""The Flax MLP: hidden layers with one activation, a softmax output, the paper's init."""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ibrepro.train import quantize as q

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
    "softsign": jax.nn.soft_sign,
    "softplus": jax.nn.softplus,
    "elu": jax.nn.elu,
    "swish": jax.nn.swish,
    "silu": jax.nn.silu,
    "gelu": jax.nn.gelu,
    "linear": lambda x: x,
    "sign": q.sign,  # ±1, straight-through with a hard-tanh window (binary networks)
}

INITS = ("truncated_normal", "normal", "glorot_uniform")


def kernel_init(name: str, scale: float = 1.0) -> nn.initializers.Initializer:
    """Weight initialiser by name.

    `truncated_normal` is the paper's: normal with σ = scale/√fan_in cut at ±2σ.
    """
    if name == "truncated_normal":
        # variance_scaling's truncated normal is cut at ±2 stddev and renormalised to the
        # requested variance; the paper's σ is that of the *untruncated* normal, so undo the
        # renormalisation factor (0.87962566103423978 is the std of N(0,1) cut at ±2).
        return nn.initializers.variance_scaling(
            (scale * 0.87962566103423978) ** 2, "fan_in", "truncated_normal"
        )
    if name == "normal":
        return nn.initializers.variance_scaling(scale**2, "fan_in", "normal")
    if name == "glorot_uniform":
        return nn.initializers.variance_scaling(scale**2, "fan_avg", "uniform")
    raise ValueError(f"unknown init {name!r}")


class MLP(nn.Module):
    """Fully connected network returning every layer's output.

    The last entry is the softmax output; the others are the hidden activations.
    `quantize_bits` > 0 rounds every layer's output (and some kernels) to 2^b levels, and
    `binary_weights` uses ±1 kernels (see `ibrepro.train.quantize`); gradients pass straight
    through, parameters stay float32.
    """

    hidden: Sequence[int]
    n_classes: int
    activation: str = "tanh"
    weight_init: str = "truncated_normal"
    init_scale: float = 1.0
    quantize_bits: int = 0
    binary_weights: bool = False

    def _dense(self, width: int, is_output: bool) -> nn.Dense:
        transform = q.weight_transform(self.quantize_bits, self.binary_weights, self.activation, is_output)
        return nn.Dense(width, kernel_init=kernel_init(self.weight_init, self.init_scale),
                        dot_general=None if transform is None else q.dot_general_with(transform))

    def _quantized(self, x: jax.Array, hidden: bool) -> jax.Array:
        """A layer's output rounded to 2^b levels (sign layers already have two)."""
        if not self.quantize_bits or (hidden and self.activation == "sign"):
            return x
        return q.quantize_batch(x, self.quantize_bits)

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[list[jax.Array], jax.Array]:
        """Return (layer outputs incl. softmax probabilities, output logits)."""
        act = ACTIVATIONS[self.activation]
        layers = []
        for width in self.hidden:
            x = self._quantized(act(self._dense(width, is_output=False)(x)), hidden=True)
            layers.append(x)
        logits = self._dense(self.n_classes, is_output=True)(x)
        layers.append(self._quantized(jax.nn.softmax(logits), hidden=False))
        return layers, logits
