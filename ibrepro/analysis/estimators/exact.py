"""Exact information of discrete layers (quantized, binary): every distinct stored row a symbol.

With X uniform over the N recorded inputs, I(X;T) = H(T) and I(T;Y) = H(T) − Σ_y p(y) H(T|Y=y),
counted over whole rows, with no binning parameter: two inputs share a symbol exactly when
the layer's stored rows are equal value for value (−0.0 = +0.0). For a quantized or binary
network this is the exact mutual information (Lorenzen et al., ICLR 2022).

Speed: one fused XLA kernel hashes every row's bits into a 63-bit key (label in the lowest
bits, as `discrete.pack_rows` places it); the keys of a seed-epoch are sorted once and
`discrete.sorted_key_entropies` counts the runs, as for binning. The hash is made exact: rows
with equal hashes are then compared value by value, and a seed-epoch where two different rows
share a hash is recounted from per-unit value ranks (`discrete.information_from_symbols`).

Refusal: parameter `levels` bounds the distinct values a unit may take, per layer. By default
it comes from the run's config (`config_defaults`): 2^b for every layer of a network trained
with `model.quantize_bits = b`; 2 for the hidden layers of a `sign` network, whose float
softmax output then takes at most 2^w values per unit (w = last hidden width); 0 — a float
layer, always refused — otherwise. `--set levels=K` (or `K1,K2,...` per layer) allows any
other discrete layer. Layers on the grid of 2^b levels over their range (the quantizer's grid)
pass at once; any other seed-epoch has its distinct values counted per unit, and a count above
the bound ends the analysis with a one-line error naming the layer and the count. The bound
only decides whether a layer may be analysed, never the estimate, so it is kept out of the
group name (`exact`) and recorded in the `levels` attribute.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ibrepro.analysis.estimators.base import Block, Estimator, Labels, Param, Value
from ibrepro.analysis.estimators.binning import thread_device
from ibrepro.analysis.estimators.discrete import class_bits, information_from_symbols, sorted_key_entropies
from ibrepro.errors import UserError

GRID_TOLERANCE = 1e-3  # in grid steps: how far a value may sit from a level and count as on the grid
_UINT = {2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint64}
_GOLDEN, _MIX1, _MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def _mix(h: jax.Array) -> jax.Array:
    """The splitmix64 finaliser (a bijection of uint64 that spreads every input bit)."""
    h = (h ^ (h >> 30)) * jnp.uint64(_MIX1)
    h = (h ^ (h >> 27)) * jnp.uint64(_MIX2)
    return h ^ (h >> 31)


@functools.partial(jax.jit, static_argnames=("levels", "cbits"))
def _kernel(acts, codes, *, levels, cbits):
    """Row keys (B, N) int64, and per seed-epoch: on the `levels`-level grid? any NaN? (B,) each."""
    t = jnp.where(acts == 0, jnp.zeros((), acts.dtype), acts)  # -0.0 and +0.0 are one value
    bits = jax.lax.bitcast_convert_type(t, _UINT[acts.dtype.itemsize]).astype(jnp.uint64)
    h = jnp.zeros(acts.shape[:2], jnp.uint64)
    for j in range(acts.shape[2]):
        h = _mix(h ^ (bits[:, :, j] + jnp.uint64((_GOLDEN * (j + 1)) % 2**64)))
    keys = ((h >> (1 + cbits)) << cbits).astype(jnp.int64) | codes.astype(jnp.int64)
    has_nan = jnp.isnan(t).any(axis=(1, 2))
    if levels < 2:
        return keys, jnp.zeros(has_nan.shape, bool), has_nan
    lo = jnp.minimum(t.min(axis=(1, 2)), 0)[:, None, None]
    hi = jnp.maximum(t.max(axis=(1, 2)), 0)[:, None, None]
    step = jnp.where(hi > lo, (hi - lo) / (levels - 1), 1)
    u = (t - lo) / step
    on_grid = (jnp.abs(u - jnp.round(u)) <= GRID_TOLERANCE).all(axis=(1, 2))
    return keys, on_grid, has_nan


def parse_levels(text: str) -> tuple[int, ...]:
    """`levels` as a tuple of non-negative ints (UserError otherwise)."""
    try:
        values = tuple(int(part) for part in str(text).split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 0:
        raise UserError(f"parameter levels wants a count >= 0 or one per layer like 2,2,8; got {text!r}")
    return values


def layer_levels(levels: str, layer: int) -> int:
    """The bound for one layer from a `levels` value (one count for all, or one per layer)."""
    values = parse_levels(levels)
    if len(values) == 1:
        return values[0]
    if layer >= len(values):
        raise UserError(f"parameter levels lists {len(values)} layers; the run has layer {layer}")
    return values[layer]


def config_levels(config: Mapping[str, Any]) -> dict[str, Value]:
    """`levels` from a run config: what its quantizer or binary activations allow per layer."""
    model = config.get("model", {})
    hidden = list(model.get("hidden", []))
    bits = int(model.get("quantize_bits", 0))
    binary = model.get("activation") == "sign"
    per_hidden = 2 if binary else 2**bits if bits else 0
    output = 2**bits if bits else 2 ** hidden[-1] if binary and hidden else 0
    return {"levels": ",".join(str(v) for v in [per_hidden] * len(hidden) + [output])}


def _unit_counts(values: np.ndarray) -> np.ndarray:
    """Distinct values per unit (B, w) of acts (B, N, w) (−0.0 = +0.0; NaNs each distinct)."""
    ordered = np.sort(np.where(values == 0, 0, values).transpose(0, 2, 1), axis=2)
    return 1 + np.count_nonzero(ordered[:, :, 1:] != ordered[:, :, :-1], axis=2)


def _check_discrete(block: Block, suspect: np.ndarray, levels: int) -> None:
    """Raise UserError if a unit of a `suspect` seed-epoch takes more than `levels` values."""
    if not suspect.any():
        return
    counts = _unit_counts(block.acts[suspect]).max(axis=1)
    worst = int(np.argmax(counts))
    if counts[worst] <= levels:
        return
    seed = int(block.seeds[np.flatnonzero(suspect)[worst]])
    allowed = f"its quantizer allows {levels}" if levels else "it is a float layer"
    raise UserError(f"exact: layer {block.layer} is not discrete: a unit takes {counts[worst]} distinct "
                    f"values (seed {seed}) but {allowed}; train with model.quantize_bits or activation sign, "
                    f"or allow K values per unit with --set levels=K")


def _collisions(acts: np.ndarray, keys: np.ndarray, order: np.ndarray, cbits: int) -> np.ndarray:
    """Per seed-epoch: do two different rows share a hash? keys sorted, `order` their argsort."""
    same = (keys[:, 1:] >> cbits) == (keys[:, :-1] >> cbits)
    b, i = np.nonzero(same)
    first, second = acts[b, order[b, i]], acts[b, order[b, i + 1]]
    differ = ((first != second) & ~(np.isnan(first) & np.isnan(second))).any(axis=1)
    return np.bincount(b[differ], minlength=keys.shape[0]) > 0


def _by_ranks(acts: np.ndarray, labels: Labels) -> tuple[float, float]:
    """(I(X;T), I(T;Y)) of one seed-epoch (N, w) from per-unit value ranks (the slow exact path)."""
    values = np.where(acts == 0, 0, acts)
    symbols = np.stack([np.unique(values[:, j], return_inverse=True)[1].ravel() for j in range(values.shape[1])],
                       axis=1)
    ixt, ity = information_from_symbols(symbols[None], int(symbols.max()) + 1, labels)
    return float(ixt[0]), float(ity[0])


def exact_information(block: Block, labels: Labels, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """(I(X;T), I(T;Y)) in bits per seed-epoch of a discrete block (NaN where a row has NaNs)."""
    acts = block.acts
    if acts.dtype not in (np.float16, np.float32, np.float64):
        acts = acts.astype(np.float64)
    cbits = class_bits(labels)
    with jax.enable_x64(True):
        keys, on_grid, has_nan = _kernel(jax.device_put(acts, thread_device(), may_alias=True),
                                         jax.device_put(labels.codes, thread_device()),
                                         levels=levels, cbits=cbits)
        keys, on_grid, has_nan = np.array(keys), np.asarray(on_grid), np.asarray(has_nan)
    _check_discrete(Block(acts, block.seeds, block.layer), ~on_grid & ~has_nan, levels)
    order = np.argsort(keys, axis=1)
    keys = np.take_along_axis(keys, order, axis=1)
    h_t, h_ty = sorted_key_entropies(keys, cbits)
    ixt, ity = h_t, h_t + labels.entropy - h_ty
    for k in np.flatnonzero(_collisions(acts, keys, order, cbits) & ~has_nan):
        ixt[k], ity[k] = _by_ranks(acts[k], labels)
    ixt[has_nan] = ity[has_nan] = np.nan
    return ixt, ity


def _estimate(block: Block, labels: Labels, params: Mapping[str, Value], context: None):
    return {"": exact_information(block, labels, layer_levels(str(params["levels"]), block.layer))}


def _check(params: Mapping[str, Value]) -> None:
    parse_levels(str(params["levels"]))


EXACT = Estimator(
    name="exact",
    params=(Param("levels", str, None, "lv", "most distinct values a unit may take: one count, or one per "
                  "layer like 2,2,8 (default: from the run's quantizer; 0 = float layer, refused)",
                  in_name=False),),
    estimate=_estimate,
    check=_check,
    config_defaults=config_levels,
    fixed_batch=True,
    help="every distinct row a symbol: exact MI of quantized or binary layers (Lorenzen et al.)",
)
