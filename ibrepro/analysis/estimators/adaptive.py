"""Adaptive (equal-mass) binning at each epoch, per unit or pooled over the layer.

- `pool=unit`: for each seed-epoch and unit, the bin of a value is floor(n_bins * r / N),
  where r is the number of that unit's N values strictly below it.
- `pool=layer`: the same over all N * w values of the layer pooled (M = N * w in place of N),
  so every unit is binned on one set of equal-mass edges: the adaptive binning of Chelombiev,
  Houghton & O'Donnell (ICLR 2019), whose code (ivansche/adaptive_estimators, `set_up_bins`)
  takes a layer's edges from its pooled values at each epoch. Their edges are quantiles of
  the layer's *distinct* values, with a bin of its own for the maximum; here they are
  quantiles of all values (ties counted), so the two agree where values do not repeat.

Without ties every bin holds N / n_bins (pooled: M / n_bins) values; tied values always share
a bin, so the partition is a function of the value. On the device path (`device_kernels`) the
bins and the row counts are computed on the device.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ibrepro.analysis.estimators.base import Block, Estimator, Labels, Param, Value
from ibrepro.analysis.estimators.discrete import information_from_symbols, plugin_reference
from ibrepro.analysis.estimators.discrete_device import symbol_information
from ibrepro.analysis.estimators.placement import device_kernels, thread_device


def equal_mass_symbols(acts: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-mass bin indices (B, N, w) in [0, n_bins) for activations (B, N, w)."""
    by_unit = np.moveaxis(acts, 1, 2)  # (B, w, N)
    n = by_unit.shape[2]
    order = np.argsort(by_unit, axis=2)  # the order within ties does not matter
    ordered = np.take_along_axis(by_unit, order, axis=2)
    position = np.arange(n)
    first_of_tie = np.empty(ordered.shape, bool)
    first_of_tie[..., 0] = True
    np.not_equal(ordered[..., 1:], ordered[..., :-1], out=first_of_tie[..., 1:])
    below = np.maximum.accumulate(np.where(first_of_tie, position, 0), axis=2)
    symbols = np.empty(ordered.shape, np.int32)
    np.put_along_axis(symbols, order, (below * n_bins) // n, axis=2)
    return np.moveaxis(symbols, 2, 1)


@partial(jax.jit, static_argnames=("n_bins",))
def device_equal_mass_symbols(acts: jax.Array, *, n_bins: int) -> jax.Array:
    """`equal_mass_symbols` as one compiled kernel (call with x64 enabled): a sort per unit (values with their
    positions), tie starts carried forward, and the bins scattered back to the positions."""
    by_unit = jnp.moveaxis(acts, 1, 2)  # (B, w, N)
    n = by_unit.shape[2]
    position = jnp.broadcast_to(jnp.arange(n, dtype=jnp.int64), by_unit.shape)
    ordered, order = jax.lax.sort((by_unit, position), dimension=2, num_keys=1)
    first_of_tie = jnp.concatenate([jnp.ones_like(ordered[..., :1], bool), ordered[..., 1:] != ordered[..., :-1]],
                                   axis=2)
    below = jax.lax.cummax(jnp.where(first_of_tie, position, 0), axis=2)
    bins = ((below * n_bins) // n).astype(jnp.int32)
    symbols = jnp.put_along_axis(jnp.zeros(by_unit.shape, jnp.int32), order, bins, axis=2, inplace=False)
    return jnp.moveaxis(symbols, 2, 1)


def adaptive_symbols(t: np.ndarray, n_bins: int, pool: str) -> np.ndarray:
    """Equal-mass bins (N, w) of one layer-epoch t (N, w), per unit or pooled over the layer:
    the readable version of the kernels, which the tests compare them against. A value's bin
    is floor(n_bins · r / M), r the number of values below it among the M values of its unit
    (M = N) or of the layer (M = N · w)."""
    if pool == "layer":
        pooled = np.sort(t.ravel())
        return np.searchsorted(pooled, t, side="left") * n_bins // pooled.size
    below = np.stack([np.searchsorted(np.sort(unit), unit, side="left") for unit in t.T], axis=1)
    return below * n_bins // len(t)


def adaptive_reference(t: np.ndarray, n_bins: int, y: np.ndarray, pool: str = "unit") -> tuple[float, float]:
    """(I(X;T), I(T;Y)) in bits for one layer-epoch t (N, w) in equal-mass bins (`adaptive_symbols`)."""
    return plugin_reference(adaptive_symbols(t, n_bins, pool), y)


def _estimate(block: Block, labels: Labels, params: Mapping[str, Value], context: None):
    n_bins = int(params["n_bins"])
    acts = block.acts
    b, n, w = acts.shape
    if params["pool"] == "layer":  # one column of N * w values: the unit kernel pools the layer
        acts = acts.reshape(b, n * w, 1)
    if device_kernels():
        with jax.enable_x64(True):  # n_bins * N can pass 2**31
            symbols = device_equal_mass_symbols(jax.device_put(acts, thread_device(), may_alias=True),
                                                n_bins=n_bins)
        return {"": symbol_information(symbols.reshape(b, n, w), n_bins, labels)}
    return {"": information_from_symbols(equal_mass_symbols(acts, n_bins).reshape(b, n, w), n_bins, labels)}


ADAPTIVE = Estimator(
    name="adaptive",
    params=(Param("n_bins", int, 30, "n", "bins, each holding about 1 / n_bins of the values (of a unit, or of "
                  "the layer pooled)", low=1, high=10**6),
            Param("pool", str, "unit", "", "unit: equal-mass edges per unit; layer: one set of edges from all of "
                  "the layer's values pooled (Chelombiev et al.)", choices=("unit", "layer"), legacy="unit")),
    estimate=_estimate,
    soft_labels=True,
    device_path=True,
    help="equal-mass bins at each epoch, per unit (pool=unit) or on edges pooled over the layer "
         "(pool=layer, as Chelombiev et al.'s adaptive binning)",
)
