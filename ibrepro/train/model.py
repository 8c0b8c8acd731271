"""The Flax MLP: hidden layers with one activation, a softmax output, the paper's init.

Optional perturbations of the hidden layers (flax-style, keys passed in `rngs`):
`noise_std` > 0 adds N(0, noise_std² I) to every hidden layer's output, in training and in
evaluation (Goldfeld et al. 2019; rng stream "noise"); `dropout` > 0 drops hidden units in
training only (rng stream "dropout"). The returned layer outputs are always the noiseless
S_l = act(W T_{l-1} + b), computed from the (noisy) layer below.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
    "hard_tanh": jax.nn.hard_tanh,
    "linear": lambda x: x,
    "sign": q.sign,  # ±1, straight-through with a hard-tanh window (binary networks)
}



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
    noise_std: float = 0.0
    dropout: float = 0.0

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
    def __call__(self, x: jax.Array, train: bool = False) -> tuple[list[jax.Array], jax.Array]:
        """Return (layer outputs incl. softmax probabilities, output logits).

        Needs `rngs=perturbation_rngs(key)` when the model has noise, or dropout and `train`.
        """
        act = ACTIVATIONS[self.activation]
        layers = []
        for width in self.hidden:
            x = self._quantized(act(self._dense(width, is_output=False)(x)), hidden=True)
            layers.append(x)
            x = self.perturb(x, train)
        logits = self._dense(self.n_classes, is_output=True)(x)
        layers.append(self._quantized(jax.nn.softmax(logits), hidden=False))
        return layers, logits

    def perturb(self, x: jax.Array, train: bool) -> jax.Array:
        """A hidden layer's output as the next layer sees it: plus noise, then dropout."""
        if self.noise_std > 0:
            x = x + self.noise_std * jax.random.normal(self.make_rng("noise"), x.shape, x.dtype)
        if train and self.dropout > 0:
            keep = jax.random.bernoulli(self.make_rng("dropout"), 1.0 - self.dropout, x.shape)
            x = jnp.where(keep, x / (1.0 - self.dropout), 0.0)
        return x


def perturbation_rngs(key: jax.Array) -> dict[str, jax.Array]:
    """The rng streams of `MLP.perturb` from one key (independent noise and dropout draws)."""
    noise, dropout = jax.random.split(key)
    return {"noise": noise, "dropout": dropout}


def make_model(config: dict, n_classes: int) -> MLP:
    """The network of a config's [model] table (training and the activation reader share it)."""
    model = config["model"]
    return MLP(hidden=tuple(model["hidden"]), n_classes=n_classes, activation=model["activation"],
               weight_init=model["init"], init_scale=model["init_scale"],
               quantize_bits=model["quantize_bits"], binary_weights=model["binary_weights"],
               noise_std=model["noise_std"], dropout=model["dropout"])
