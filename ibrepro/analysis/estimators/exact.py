"""Exact information of discrete layers (quantized, binary): every distinct row a symbol.

With X uniform over the N recorded inputs, I(X;T) = H(T) and I(T;Y) = H(T) − Σ_y p(y) H(T|Y=y),
counted over whole rows, with no binning parameter. A layer on its quantizer's grid (every
value within GRID_TOLERANCE of a step of one of the grid's levels, the grid spanning the
seed-epoch's range as `ibrepro.train.quantize` draws it) is read as its levels, so float
rounding cannot split a level; any other layer by its values (−0.0 = +0.0), two inputs
sharing a symbol exactly when their rows are equal value for value. For a quantized or binary
network this is the exact mutual information (Lorenzen et al., ICLR 2022).

Speed: one fused XLA kernel turns every row into a sort key and flags rows off the grid. On
the grid, a key is the row's levels as one mixed-radix number and its label, exact, in int32
or int64 when they fit; otherwise a 64-bit hash of the row's levels (or values), its label
and its row index, so that sorting also gives the order. The keys of a seed-epoch are sorted
once and `discrete.sorted_key_entropies` counts the runs, as for binning. Hashes are made
exact: rows with equal hashes are compared level by level (value by value), and a
seed-epoch where two different rows share a hash is recounted from per-unit ranks
(`discrete.information_from_symbols`).

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
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ibrepro.analysis.estimators.base import Block, Estimator, Labels, Param, Value
from ibrepro.analysis.estimators.discrete import class_bits, information_from_symbols, sorted_key_entropies
from ibrepro.analysis.estimators.discrete_device import hashed_entropies, key_entropies, row_hash
from ibrepro.analysis.estimators.placement import device_kernels, thread_device
from ibrepro.errors import UserError

GRID_TOLERANCE = 1e-3  # in grid steps: how far a value may sit from a level and count as on the grid
_UINT = {2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint64}


def _unit_bits(t: jax.Array) -> jax.Array:
    """Each value's bits as uint32 (float64: its two halves xor-ed; equal values, equal bits)."""
    bits = jax.lax.bitcast_convert_type(t, _UINT[t.dtype.itemsize])
    if t.dtype.itemsize == 8:
        bits = bits ^ (bits >> 32)
    return bits.astype(jnp.uint32)


def _levels(acts, lo, inverse):
    """Values with −0.0 as +0.0, their grid positions u = (t − lo) · inverse, and the nearest."""
    t = jnp.where(acts == 0, jnp.zeros((), acts.dtype), acts)
    u = (t.astype(jnp.float32) - lo[:, None, None]) * inverse[:, None, None]
    return t, u, jnp.round(u)


def index_bits(n: int) -> int:
    """Bits a row index 0..n-1 takes in a sort key."""
    return max(1, (n - 1).bit_length())


@functools.partial(jax.jit, static_argnames=("cbits", "levels", "mode"))
def _kernel(acts, lo, inverse, codes, *, cbits, levels, mode):
    """Sort keys (B, N) and, per row, whether a value is off the grid lo[b] + k / inverse[b].

    mode "codes32" / "codes64": a key is the row's grid levels as one mixed-radix number, then
    its label (`cbits` bits): int32 / int64, exact. Modes "hash-levels" / "hash-bits": a key
    is a 64-bit hash of the row's levels / value bits, its label and its row index (so that
    sorting also yields the order, for the check of equal hashes). Keys are >= 0. Mode "grid":
    no keys (None), only the check. Unit by unit, one elementwise loop (no reduction: XLA fuses
    it all into one pass).
    """
    t, u, nearest = _levels(acts, lo, inverse)
    off = ~(jnp.abs(u - nearest) <= GRID_TOLERANCE)  # NaN is off the grid
    off_row = functools.reduce(jnp.logical_or, [off[:, :, j] for j in range(t.shape[2])])
    if mode == "grid":
        return None, off_row
    dtype = jnp.int32 if mode == "codes32" else jnp.int64
    level = jnp.clip(nearest, 0, max(levels - 1, 0)).astype(dtype)
    label = codes.astype(dtype)
    if mode.startswith("codes"):
        payload = level[:, :, -1]
        for j in range(t.shape[2] - 2, -1, -1):
            payload = payload * levels + level[:, :, j]
        return (payload << cbits) | label, off_row
    low = cbits + index_bits(acts.shape[1])
    bits = level.astype(jnp.uint32) if mode == "hash-levels" else _unit_bits(t)
    payload = (row_hash(bits) >> (1 + low)).astype(dtype)
    return (payload << low) | (label << (low - cbits)) | jnp.arange(acts.shape[1], dtype=dtype), off_row


def key_mode(levels: int, width: int, cbits: int, on_grid: bool) -> str:
    """The narrowest exact key for rows of `width` units: their levels on a `levels`-level
    grid as one number if the block is on it and they fit, else a hash of levels or bits."""
    if not on_grid or levels < 2:
        return "hash-bits"
    payload = width * math.log2(levels) + cbits
    return "codes32" if payload <= 31 else "codes64" if payload <= 63 else "hash-levels"


def _grid(acts: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per seed-epoch: the quantizer grid's lowest level and 1/step, float32 (B,) each.

    The grid spans [min(lo, 0), max(hi, 0)] of the seed-epoch's values in `levels` levels
    (`ibrepro.train.quantize`); without a grid (levels < 2) the inverse is NaN: all off grid.
    """
    flat = acts.reshape(acts.shape[0], -1)
    lo = np.minimum(flat.min(axis=1), 0).astype(np.float64)
    hi = np.maximum(flat.max(axis=1), 0).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = np.where(hi > lo, (levels - 1) / (hi - lo), 1.0) if levels >= 2 else np.full(len(lo), np.nan)
    return lo.astype(np.float32), inverse.astype(np.float32)


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
    suspect = np.flatnonzero(suspect)
    if suspect.size == 0:
        return
    acts = block.acts[suspect]
    counts = _unit_counts(acts).max(axis=1)
    worst = int(np.argmax(counts))
    if counts[worst] <= levels:
        return
    seed = int(block.seeds[suspect[worst]])
    allowed = f"its quantizer allows {levels}" if levels else "it is a float layer"
    raise UserError(f"exact: layer {block.layer} is not discrete: a unit takes {counts[worst]} distinct "
                    f"values (seed {seed}) but {allowed}; train with model.quantize_bits or activation sign, "
                    f"or allow K values per unit with --set levels=K")


def _collisions(symbols, keys: np.ndarray, order: np.ndarray, cbits: int) -> np.ndarray:
    """Per seed-epoch: do two different rows share a hash? `keys` (hash, label) sorted (B, N),
    `order` the row each came from; `symbols(b, rows)` gives rows (M, w) of seed-epochs b."""
    b, n = keys.shape
    repeat = np.zeros((b, n), bool)  # flat positions whose hash equals the previous one's
    np.less(np.bitwise_xor(keys[:, 1:], keys[:, :-1]), 1 << cbits, out=repeat[:, 1:])
    at = np.flatnonzero(repeat)
    seed_epoch, order = at // n, order.ravel()
    first, second = symbols(seed_epoch, order[at - 1]), symbols(seed_epoch, order[at])
    differ = ((first != second) & ~(np.isnan(first) & np.isnan(second))).any(axis=1)
    return np.bincount(seed_epoch[differ], minlength=b) > 0


def _by_ranks(rows: np.ndarray, labels: Labels) -> tuple[float, float]:
    """(I(X;T), I(T;Y)) of one seed-epoch's rows (N, w) from per-unit value ranks (slow, exact)."""
    symbols = np.stack([np.unique(rows[:, j], return_inverse=True)[1].ravel() for j in range(rows.shape[1])],
                       axis=1)
    ixt, ity = information_from_symbols(symbols[None], int(symbols.max()) + 1, labels)
    return float(ixt[0]), float(ity[0])


@functools.partial(jax.jit, static_argnames=("levels", "mode"))
def _hashed_rows(acts, lo, inverse, *, levels, mode):
    """Rows to compare, and their 64-bit hashes (B, N): levels (uint32) for mode "hash-levels",
    else the values themselves (−0.0 as +0.0), hashed by their bits."""
    t, _, nearest = _levels(acts, lo, inverse)
    if mode == "hash-levels":
        rows = jnp.clip(nearest, 0, levels - 1).astype(jnp.uint32)
        return rows, row_hash(rows)
    return t, row_hash(_unit_bits(t))


def exact_information(block: Block, labels: Labels, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """(I(X;T), I(T;Y)) in bits per seed-epoch of a discrete block (NaN where a row has NaNs).

    The keys are sorted and counted on the host, or on the device (`device_kernels`).
    """
    acts = block.acts
    if acts.dtype not in (np.float16, np.float32, np.float64):
        acts = acts.astype(np.float64)
    b, n, w = acts.shape
    cbits = class_bits(labels)
    lo, inverse = _grid(acts, levels)
    device = thread_device()
    inputs = [jax.device_put(a, device, may_alias=True) for a in (acts, lo, inverse, labels.codes)]
    mode = key_mode(levels, w, cbits, on_grid=True)
    on_device = device_kernels()
    # the device path hashes rows itself (`_hashed_rows`): there only exact codes are keyed here
    with jax.enable_x64(True):
        keys, off = _kernel(*inputs, cbits=cbits, levels=levels,
                            mode="grid" if on_device and mode.startswith("hash") else mode)
        off = np.asarray(off).any(axis=1)
        if off.any() and mode != "hash-bits":  # not every seed-epoch is on the grid: key the values
            mode = "hash-bits"
            keys = None if on_device else _kernel(*inputs, cbits=cbits, levels=levels, mode=mode)[0]
        has_nan = np.zeros(b, bool)
        if off.any():
            has_nan[off] = np.isnan(acts[off]).any(axis=(1, 2))
            _check_discrete(Block(acts, block.seeds, block.layer), off & ~has_nan, levels)
        if on_device:
            ixt, ity, collided = _count_on_device(keys, inputs, labels, levels, mode)
        else:
            ixt, ity, collided = _count_on_host(np.array(keys), acts, lo, inverse, labels, mode)

    symbols = functools.partial(_row_symbols, acts, lo, inverse, mode)
    for k in np.flatnonzero(collided & ~has_nan):
        ixt[k], ity[k] = _by_ranks(symbols(np.full(n, k), np.arange(n)), labels)
    ixt[has_nan] = ity[has_nan] = np.nan
    return ixt, ity


def _count_on_device(keys, inputs, labels: Labels, levels: int, mode: str):
    """(I(X;T), I(T;Y), collided) per seed-epoch, sorted and counted on the device."""
    if mode.startswith("codes"):
        h_t, h_ty = key_entropies(keys.astype(jnp.int64), cbits=class_bits(labels))
        collided = np.zeros(keys.shape[0], bool)
    else:
        rows, hashes = _hashed_rows(*inputs[:3], levels=levels, mode=mode)
        h_t, h_ty, collided = hashed_entropies(hashes, inputs[3], rows)
        collided = np.asarray(collided)
    h_t = np.array(h_t)
    return h_t, h_t + labels.entropy - np.asarray(h_ty), collided


def _count_on_host(keys: np.ndarray, acts: np.ndarray, lo: np.ndarray, inverse: np.ndarray,
                   labels: Labels, mode: str):
    """(I(X;T), I(T;Y), collided) per seed-epoch, sorted and counted with numpy."""
    b, n = keys.shape
    cbits = class_bits(labels)
    keys.sort(axis=1)
    if mode.startswith("codes"):
        h_t, h_ty = sorted_key_entropies(keys, cbits)
        return h_t, h_t + labels.entropy - h_ty, np.zeros(b, bool)
    shift = index_bits(n)
    order = keys & ((1 << shift) - 1)
    keys >>= shift
    h_t, h_ty = sorted_key_entropies(keys, cbits)
    symbols = functools.partial(_row_symbols, acts, lo, inverse, mode)
    return h_t, h_t + labels.entropy - h_ty, _collisions(symbols, keys, order, cbits)


def _row_symbols(acts: np.ndarray, lo: np.ndarray, inverse: np.ndarray, mode: str,
                 seed_epoch: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Rows (M, w) of seed-epochs `seed_epoch` as compared: grid levels, or values (−0.0 = +0.0)."""
    b, n, w = acts.shape
    values = acts.reshape(b * n, w).take(seed_epoch * n + rows, axis=0)
    if mode == "hash-levels":
        return np.round((values - lo[seed_epoch, None]) * inverse[seed_epoch, None])
    return np.where(values == 0, 0, values)


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
    device_path=True,
    help="every distinct row a symbol: exact MI of quantized or binary layers (Lorenzen et al.)",
)
