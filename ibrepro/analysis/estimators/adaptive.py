"""Adaptive (equal-mass) binning per unit at each epoch (Chelombiev et al. 2019).

For each seed-epoch and unit, the bin of a value is floor(n_bins * r / N), where r is the
number of that unit's N values strictly below it. Without ties every bin holds N / n_bins
values; tied values always share a bin, so the partition is a function of the value.
On the device path (`device_kernels`) the bins and the row counts are computed on the device.
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


def adaptive_reference(t: np.ndarray, n_bins: int, y: np.ndarray) -> tuple[float, float]:
    """(I(X;T), I(T;Y)) in bits for one layer-epoch t (N, w) in equal-mass bins.

    The readable version of `equal_mass_symbols`, which the tests compare it against: a
    value's bin is floor(n_bins · r / N), r the number of its unit's values below it.
    """
    below = np.stack([np.searchsorted(np.sort(unit), unit, side="left") for unit in t.T], axis=1)
    return plugin_reference(below * n_bins // len(t), y)


def _estimate(block: Block, labels: Labels, params: Mapping[str, Value], context: None):
    n_bins = int(params["n_bins"])
    if device_kernels():
        with jax.enable_x64(True):  # n_bins * N can pass 2**31
            symbols = device_equal_mass_symbols(jax.device_put(block.acts, thread_device(), may_alias=True),
                                                n_bins=n_bins)
        return {"": symbol_information(symbols, n_bins, labels)}
    return {"": information_from_symbols(equal_mass_symbols(block.acts, n_bins), n_bins, labels)}


ADAPTIVE = Estimator(
    name="adaptive",
    params=(Param("n_bins", int, 30, "n", "bins per unit, each holding about N / n_bins values",
                  low=1, high=10**6),),
    estimate=_estimate,
    soft_labels=True,
    device_path=True,
    help="equal-mass bins per unit at each epoch (Chelombiev et al.)",
)
