"""The Flax MLP: hidden layers with one activation, a softmax output, the paper's init."""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

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
    """

    hidden: Sequence[int]
    n_classes: int
    activation: str = "tanh"
    weight_init: str = "truncated_normal"
    init_scale: float = 1.0

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[list[jax.Array], jax.Array]:
        """Return (layer outputs incl. softmax probabilities, output logits)."""
        act = ACTIVATIONS[self.activation]
        w_init = kernel_init(self.weight_init, self.init_scale)
        layers = []
        for width in self.hidden:
            x = act(nn.Dense(width, kernel_init=w_init)(x))
            layers.append(x)
        logits = nn.Dense(self.n_classes, kernel_init=w_init)(x)
        layers.append(jax.nn.softmax(logits))
        return layers, logits
