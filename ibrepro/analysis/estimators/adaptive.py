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
a bin, so the partition is a function of the value.

Speed: a value's bin is a count of edges below it. bin >= j exactly when r >= c_j =
ceil(j M / n_bins), that is when the c_j-th smallest value is below it; so with e_j that value
(`cut_positions`), the bin is the number of edges e_1..e_{n_bins-1} strictly below the value,
np.searchsorted(e, value, side="left"), NaN sorting last as np.sort puts it. The host path sorts
each unit's values with np.sort (no argsort, no scatter back), and one compiled kernel compares
every value with its unit's edges and packs a row's bins into an int64 key, as `binning` does:
about 1.5-1.7x the fixed binning's time (scripts/bench_kernels.py --host-only). On the device
path (`device_kernels`) the sort runs on the device too and the rows are counted there.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ibrepro.analysis.estimators.base import Block, Estimator, Labels, Param, Value
from ibrepro.analysis.estimators.binning import pack_words, word_layout
from ibrepro.analysis.estimators.discrete import class_bits, information_from_keys, pack_rows, plugin_reference
from ibrepro.analysis.estimators.discrete_device import symbol_information
from ibrepro.analysis.estimators.placement import device_kernels, thread_device

COMPARE_ALL_EDGES = 64  # up to this many edges a value is compared with each; beyond, a binary search


def cut_positions(m: int, n_bins: int) -> np.ndarray:
    """Positions c_j - 1 in M sorted values of the edges e_j, c_j = ceil(j M / n_bins), j = 1..n_bins-1."""
    j = np.arange(1, n_bins, dtype=np.int64)
    return -(-j * m // n_bins) - 1


def _count_below(edges, values):
    """Per row, how many of edges (B, E) (sorted, NaN last) are below each of values (B, N), in
    np.sort's order (NaN above everything): np.searchsorted(edges[b], values[b], side="left")."""
    if edges.shape[1] > COMPARE_ALL_EDGES:
        return jax.vmap(partial(jnp.searchsorted, side="left", method="scan"))(edges, values).astype(jnp.int32)
    # unrolled (not a reduction over the short edge axis): XLA fuses it all into one loop
    count = jnp.zeros(values.shape, jnp.int32)
    for j in range(edges.shape[1]):
        count += (edges[:, j, None] < values).astype(jnp.int32)
    return jnp.where(jnp.isnan(values), (~jnp.isnan(edges)).sum(axis=1, dtype=jnp.int32)[:, None], count)


def _columns(acts, edges):
    """Per unit j, the bins (B, N) of acts[:, :, j] on edges[:, j] (B, U, E), U = w (per unit)
    or 1 (pooled)."""
    return [_count_below(edges[:, j if edges.shape[1] > 1 else 0], acts[:, :, j]) for j in range(acts.shape[2])]


@partial(jax.jit, static_argnames=("radix", "cbits", "layout"))
def _row_keys(acts, edges, codes, *, radix, cbits, layout):
    """Row keys (B, N) int64 of acts (B, N, w) on edges (B, U, E) (call with x64 enabled), or the
    bins (B, N, w) when `layout` is None (a row needs more than two int32 words)."""
    columns = _columns(acts, edges)
    if layout is None:
        return jnp.stack(columns, axis=2)
    words = pack_words(columns, codes, layout, radix, cbits, jnp.stack).astype(jnp.int64)
    return words[..., 0] if len(layout) == 1 else words[..., 0] | (words[..., 1] << 32)


@partial(jax.jit, static_argnames=("n_bins", "pool"))
def device_equal_mass_symbols(acts: jax.Array, *, n_bins: int, pool: str) -> jax.Array:
    """Bins (B, N, w) of acts (B, N, w) as one compiled kernel: a sort per unit (or of the layer
    pooled), the edges taken from it, every value counted against them."""
    b, n, w = acts.shape
    pooled = acts.reshape(b, 1, n * w) if pool == "layer" else jnp.swapaxes(acts, 1, 2)
    edges = jnp.sort(pooled, axis=2)[:, :, cut_positions(pooled.shape[2], n_bins)]
    return jnp.stack(_columns(acts, edges), axis=2)


def equal_mass_edges(acts: np.ndarray, n_bins: int, pool: str) -> np.ndarray:
    """Edges (B, U, n_bins - 1) of acts (B, N, w): per unit (U = w) or of the layer pooled (U = 1)."""
    b, n, w = acts.shape
    pooled = acts.reshape(b, 1, n * w).copy() if pool == "layer" else np.ascontiguousarray(np.swapaxes(acts, 1, 2))
    pooled.sort(axis=2)
    return pooled[:, :, cut_positions(pooled.shape[2], n_bins)]


def equal_mass_information(acts: np.ndarray, n_bins: int, pool: str, labels: Labels) -> tuple[np.ndarray, np.ndarray]:
    """(I(X;T̂), I(T̂;Y)) in bits per seed-epoch for acts (B, N, w) in equal-mass bins."""
    if acts.dtype not in (np.float32, np.float64):
        acts = acts.astype(np.float32 if acts.dtype == np.float16 else np.float64)
    device = thread_device()
    if device_kernels():
        with jax.enable_x64(True):
            symbols = device_equal_mass_symbols(jax.device_put(acts, device, may_alias=True), n_bins=n_bins, pool=pool)
        return symbol_information(symbols, n_bins, labels)
    cbits, radix = class_bits(labels), max(2, n_bins)  # n_bins = 1: every bin 0
    layout = word_layout(acts.shape[2], radix, cbits)
    with jax.enable_x64(True):
        keys = np.array(_row_keys(jax.device_put(acts, device, may_alias=True),
                                  jax.device_put(equal_mass_edges(acts, n_bins, pool), device),
                                  jax.device_put(labels.codes.astype(np.int32), device),
                                  radix=radix, cbits=cbits, layout=layout))
    return information_from_keys(keys if layout is not None else pack_rows(keys, radix, labels), labels)


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
    return {"": equal_mass_information(block.acts, int(params["n_bins"]), str(params["pool"]), labels)}


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
