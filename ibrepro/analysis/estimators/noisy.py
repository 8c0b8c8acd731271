"""Sample propagation for noise-injected networks (Goldfeld et al., ICML 2019).

Each layer's output is T_l = S_l + Z_l with Z_l ~ N(0, β² I), where S_l is the layer's
noiseless output computed from the noisy layer below (what the run file records); X is uniform
over the N recorded inputs. T_l | X=x is then a Gaussian mixture over samples of S_l | X=x:
- layer 1: S_1 is a function of X, one component per input (from the stored activations);
- deeper layers: `n_passes` noisy passes of every input through the network, whose parameters
  come from the run file (`params/<k>/kernel|bias`); without them these layers are left NaN.
T_l is the mixture over all inputs and passes, T_l | Y=y the one over the inputs of class y.
The softmax output gets the same analysis noise β.

With `n_samples` draws t = S + Z from the mixture (inputs stratified, a random pass, fresh
noise), in nats
    I(X;T) = h(T) − h(T|X) = E[log p(t|x) − log p(t)],   I(T;Y) = E[log p(t|y) − log p(t)],
each the mean over the draws, its standard error their standard deviation over √n_samples.
The common Gaussian term −log φ(z) (mean h(Z)) cancels draw by draw: layer 1's h(T|X) is
exactly (d/2) log(2πeβ²), and components that do not overlap give log N with no Monte Carlo
error. Densities use one max-shifted exp per (draw, component) pair in float64 (the small
β of noise-injected nets would lose the distances to float32 rounding).

Beside the estimates, `clustering` (Goldfeld et al.'s explanation of compression: the layer's
representations cluster) is the RMS distance between the recorded outputs S_l of same-class
inputs over the RMS distance between those of different classes (exact, from class means and
variances): it falls as each class gathers into tight clusters.

The draws (and the noisy passes) depend only on the `seed` parameter, the run's seed index and
the layer: the same at every epoch (common random numbers, so curves over epochs are smooth).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import h5py
import jax
import jax.numpy as jnp
import numpy as np

from ibrepro.analysis.estimators.base import Block, Estimator, Labels, Param, Value
from ibrepro.train.model import MLP, perturbation_rngs
from ibrepro.train.runfile import run_config

log = logging.getLogger(__name__)

TILE_DRAWS = 64  # draws per tile against all components (measured: 16..64 about equal, 256 slower)


@dataclass(frozen=True)
class Network:
    """What deeper layers need: the model (noise β), the recorded inputs and the parameters."""

    model: MLP
    x: np.ndarray  # (N, d) the recorded inputs
    params: h5py.Group | None  # params/<k>/{kernel (S, E, in, out), bias (S, E, out)}

    def params_at(self, seed: int, epoch: int) -> dict:
        """The flax parameters of one seed at one epoch position (module names as stored)."""
        return {str(self.params[str(k)].attrs.get("module", f"Dense_{k}")):
                {leaf: self.params[str(k)][leaf][seed, epoch] for leaf in self.params[str(k)]}
                for k in range(len(self.params))}


def network_from_run(run: h5py.File, values: Mapping[str, Value]) -> Network:
    """The Network of a run file: the training model with analysis noise `beta` in every
    hidden layer (params None, with a warning, when the file stores none)."""
    from ibrepro.train.model import make_model

    config = run_config(run)
    params = run["params"] if "params" in run else None
    if params is None:
        log.warning("%s stores no params/: noisy estimates the first hidden layer only "
                    "(deeper layers need the network's parameters)", Path(run.filename).name)
        n_classes = 1
    else:
        n_classes = int(params[str(len(params) - 1)]["bias"].shape[-1])
    noisy = {**config, "model": {**config["model"], "noise_std": float(values["beta"]), "dropout": 0.0}}
    return Network(make_model(noisy, n_classes), run["data/x"][()], params)


@partial(jax.jit, static_argnames=("model", "layer", "n_passes"))
def propagate(model: MLP, params: dict, x: jax.Array, key: jax.Array, *, layer: int,
              n_passes: int) -> jax.Array:
    """S_layer of `n_passes` noisy passes of every input: (n_passes, N, width)."""

    def one_pass(k):
        layers, _ = model.apply({"params": params}, x, rngs=perturbation_rngs(k))
        return layers[layer]

    return jax.vmap(one_pass)(jax.random.split(key, n_passes))


@partial(jax.jit, static_argnames=("n_samples", "tile"))
def _log_ratios(centres, class_of, class_size, beta, key, *, n_samples, tile):
    """Per draw (nats): log p(t|x) − log p(t) and log p(t|y) − log p(t).

    centres (P, N, w) f64, class_of (N,) codes, class_size (C,) inputs per class.
    """
    n_passes, n, width = centres.shape
    k_in, k_pass, k_noise = jax.random.split(key, 3)
    inputs = jnp.resize(jax.random.permutation(k_in, n), (n_samples,))  # stratified over inputs
    passes = jax.random.randint(k_pass, (n_samples,), 0, n_passes)
    t = centres[passes, inputs] + beta * jax.random.normal(k_noise, (n_samples, width), centres.dtype)
    n_tiles = -(-n_samples // tile)
    pad = n_tiles * tile - n_samples
    inputs, t = jnp.pad(inputs, (0, pad)), jnp.pad(t, ((0, pad), (0, 0)))

    flat = centres.reshape(-1, width)
    sq = (flat * flat).sum(1)
    member = jax.nn.one_hot(jnp.tile(class_of, n_passes), class_size.shape[0], dtype=centres.dtype)
    scale = -0.5 / (beta * beta)

    def one_tile(args):
        t_c, in_c = args
        dist = jnp.maximum((t_c * t_c).sum(1)[:, None] + sq[None, :] - 2.0 * (t_c @ flat.T), 0.0)
        a = dist * scale
        top = a.max(1)
        e = jnp.exp(a - top[:, None])
        log_all = top + jnp.log(e.sum(1)) - math.log(flat.shape[0])
        cls = class_of[in_c]
        own_class = jnp.take_along_axis(e @ member, cls[:, None], 1)[:, 0]
        log_class = top + jnp.log(own_class) - jnp.log(class_size[cls] * n_passes)
        own = ((centres[:, in_c] - t_c[None]) ** 2).sum(-1) * scale  # (P, tile)
        log_input = jax.scipy.special.logsumexp(own, axis=0) - math.log(n_passes)
        return log_input - log_all, log_class - log_all

    rx, ry = jax.lax.map(one_tile, (t.reshape(n_tiles, tile, width), inputs.reshape(n_tiles, tile)))
    return rx.reshape(-1)[:n_samples], ry.reshape(-1)[:n_samples]


def sample_information(centres: np.ndarray, labels: Labels, beta: float, n_samples: int,
                       key: jax.Array) -> tuple[float, float, float, float]:
    """(I(X;T), I(T;Y), their standard errors) in bits for components `centres` (P, N, w)."""
    with jax.enable_x64(True):
        centres = jnp.asarray(centres, jnp.float64)
        tile = min(n_samples, TILE_DRAWS)
        rx, ry = _log_ratios(centres, jnp.asarray(labels.codes), jnp.asarray(labels.counts, jnp.float64),
                             beta, key, n_samples=n_samples, tile=tile)
        rx, ry = np.asarray(rx), np.asarray(ry)
    root = math.sqrt(n_samples) * math.log(2)
    return (rx.mean() / math.log(2), ry.mean() / math.log(2),
            rx.std(ddof=1) / root if n_samples > 1 else math.inf, ry.std(ddof=1) / root if n_samples > 1 else math.inf)


def class_clustering(acts: np.ndarray, labels: Labels) -> float:
    """RMS distance of same-class pairs over RMS distance of different-class pairs (NaN for
    one class or when all rows coincide); `acts` (N, w)."""
    acts = np.asarray(acts, np.float64)
    n = labels.counts.astype(np.float64)
    means = np.stack([acts[labels.codes == c].mean(0) for c in range(labels.n_classes)])
    spread = np.array([((acts[labels.codes == c] - means[c]) ** 2).sum(1).mean() for c in range(labels.n_classes)])
    pair = n[:, None] * n[None, :]
    apart = spread[:, None] + spread[None, :] + ((means[:, None] - means[None]) ** 2).sum(-1)
    other = ~np.eye(labels.n_classes, dtype=bool)
    within = (n**2 * 2 * spread).sum() / (n**2).sum()
    between = (pair * apart)[other].sum() / pair[other].sum() if other.any() else 0.0
    return math.sqrt(within / between) if between > 0 else math.nan


def _estimate(block: Block, labels: Labels, params: Mapping[str, Value], context: Network | None):
    beta, n_samples, n_passes = float(params["beta"]), int(params["n_samples"]), int(params["n_passes"])
    layer = block.layer or 0
    out = np.full((4, block.acts.shape[0]), np.nan)
    clustering = np.array([class_clustering(a, labels) for a in block.acts])
    for b, seed in enumerate(block.seeds.tolist()):
        key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(int(params["seed"])), seed), layer)
        pass_key, draw_key = jax.random.split(key)
        if layer == 0:
            centres = block.acts[b][None]
        elif context is None or context.params is None:
            continue
        else:
            centres = np.asarray(propagate(context.model, context.params_at(seed, int(block.epochs[b])),
                                           context.x, pass_key, layer=layer, n_passes=n_passes))
        out[:, b] = sample_information(centres, labels, beta, n_samples, draw_key)
    return {"": (out[0], out[1], {"ixt_se": out[2], "ity_se": out[3], "clustering": clustering})}


def _config_defaults(config: Mapping[str, Any]) -> dict[str, Value]:
    noise = config.get("model", {}).get("noise_std", 0.0)
    return {"beta": float(noise)} if noise > 0 else {}


NOISY = Estimator(
    name="noisy",
    params=(
        Param("beta", float, None, "beta", "std of the Gaussian noise in every layer (default: the run's "
              "model.noise_std; a run trained without noise needs it set: analysis-time noise)",
              low=0.0, low_open=True),
        Param("n_samples", int, 512, "n", "Monte Carlo draws per layer-epoch", low=2),
        Param("n_passes", int, 4, "pass", "noisy passes of every input for layers past the first", low=1),
        Param("seed", int, 0, "rng", "seed of the draws (fixed: the same draws at every epoch)", low=0,
              aliases=("rng",)),
    ),
    estimate=_estimate,
    config_defaults=_config_defaults,
    from_run=network_from_run,
    batch_limit=8,
    help="Goldfeld et al.'s sample propagation for networks with Gaussian noise in every layer "
         "(I(X;T) of T = S + Z, with Monte Carlo standard errors ixt_se, ity_se, and the "
         "class clustering ratio of the representations)",
)
