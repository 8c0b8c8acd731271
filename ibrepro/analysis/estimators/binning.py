"""Equal-width binning: fixed range (the paper's), per-layer range, or one global range.

Two conventions for what `n_bins` counts, a row's per-unit symbols forming one symbol of the
layer either way:

- edges (`binning`, and `binning-layer` with `convention=edges`): exactly
  `np.digitize(t, np.linspace(lo, hi, n_bins))` per unit, as in Shwartz-Ziv & Tishby's code
  (IDNNs): n_bins - 1 intervals, plus a bin for values >= hi (on a layer's own range: its
  maximum alone) and one for values < lo.
- intervals (`binning-layer`, the default `convention=intervals`): n_bins equal intervals
  over [lo, hi], the last one closed, so the maximum falls in the last interval: the bins of
  `np.histogram(t, n_bins, (lo, hi))`, as Lorenzen et al.'s code bins a layer over its
  min..max (StephanLorenzen/ExactIBAnalysisInQNNs, `uniform_bins`: `np.digitize` on
  `np.arange(lo, hi, (hi - lo) / n_bins)`, the maximum in the last bin). Their `np.arange`
  sometimes rounds to n_bins + 1 edges, leaving the maximum a bin of its own (93 of 720
  layer-epochs of a paper cell); elsewhere the two agree to 1.4e-14 bits. Computed as the
  edges convention on `np.linspace(lo, hi, n_bins + 1)` with the top edge closed (`closed=True`).

Speed: one fused XLA kernel computes every unit's bin arithmetically (in float32 for float32
data, float64 for float64 data) and packs a row into one or two int32 words (read as one int64
key). The arithmetic bin equals np.digitize except possibly for values within a guard distance
(a few rounding errors) of an interior edge; the kernel flags those values (and NaNs) and they
are redone with np.digitize itself, so the partition is exact. Exact comparisons decide the
outer edges lo and hi, where saturated units sit. On the device path (`device_kernels`) each
value is compared with its edges in float64 (np.digitize's own test) and the rows are counted
on the device (`discrete_device.symbol_information`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ibrepro.analysis.estimators.base import Block, Estimator, Labels, Param, Value
from ibrepro.analysis.estimators.discrete import class_bits, information_from_keys, pack_rows, plugin_reference
from ibrepro.analysis.estimators.discrete_device import symbol_information
from ibrepro.analysis.estimators.placement import device_kernels, thread_device
from ibrepro.errors import UserError

# A value whose arithmetic bin position u lies within guard = G * (n_bins + (|lo|+|hi|) / bin
# width) of an interior edge is redone exactly. The rounding error of u is at most ~4 ulp times
# that factor (G = 2**-19 is 8 times 4 ulp for float32, 2**-48 likewise for float64).
_GUARD = {np.dtype(np.float32): 2.0**-19, np.dtype(np.float64): 2.0**-48}


def uniform_edges(lo: float, hi: float, n_bins: int) -> np.ndarray:
    """The bin edges of the partition: np.linspace(lo, hi, n_bins) (the authors' choice)."""
    return np.linspace(lo, hi, n_bins)


def uniform_symbols(t: np.ndarray, lo: float, hi: float, n_bins: int, closed: bool = False) -> np.ndarray:
    """Per-unit bins of t on edges np.linspace(lo, hi, n_bins): np.digitize (0 below lo, n_bins
    at or above hi, and for NaN); with `closed`, t == hi falls in the last interval (n_bins - 1)."""
    symbols = np.digitize(t, uniform_edges(lo, hi, n_bins))
    return np.where(t == hi, n_bins - 1, symbols) if closed else symbols


def binning_reference(t: np.ndarray, lo: float, hi: float, n_bins: int, y: np.ndarray,
                      closed: bool = False) -> tuple[float, float]:
    """(I(X;T), I(T;Y)) in bits for one layer-epoch t (N, w) binned on linspace(lo, hi, n_bins).

    The readable version of `uniform_information`, which the tests compare it against: each
    unit's symbol is `uniform_symbols`, a row of symbols one value of T (`plugin_reference`).
    """
    return plugin_reference(uniform_symbols(t, lo, hi, n_bins, closed), y)


def word_layout(width: int, radix: int, cbits: int) -> tuple[tuple[int, int], ...] | None:
    """Unit ranges packed into each int32 word of a key, or None when a row needs > 2 words.

    Word 0 also holds the label digit in its lowest `cbits` bits; every word stays < 2**31.
    """
    layout, start, budget = [], 0, 31 - cbits
    while start < width:
        per_word = int(budget / math.log2(radix))
        if per_word < 1:
            return None
        layout.append((start, min(width, start + per_word)))
        start, budget = start + per_word, 31
    return tuple(layout) if len(layout) <= 2 else None


def pack_words(columns, codes, layout, radix: int, cbits: int, stack):
    """Words (..., n_words) int32 from per-unit symbol columns; `stack` is np.stack or jnp.stack.

    With two words the pair read as one little-endian int64 is an exact row key.
    """
    words = []
    for start, stop in layout:
        word = columns[stop - 1]
        for j in range(stop - 2, start - 1, -1):
            word = word * radix + columns[j]
        words.append(word)
    words[0] = (words[0] << cbits) | codes
    return stack(words, axis=-1)


@functools.partial(jax.jit, static_argnames=("n_bins", "cbits", "layout"))
def _kernel(acts, lo_cmp, hi_cmp, lo, hi, codes, *, n_bins, cbits, layout):
    """Bins of every unit of acts (B, N, w) and, per row, whether any value sits near an edge.

    Returns packed words (B, N, n_words) when `layout` is given, else int16 symbols (B, N, w).
    """
    dtype = jnp.float64 if acts.dtype == jnp.float64 else jnp.float32
    lo_cmp, hi_cmp = lo_cmp[:, None, None].astype(dtype), hi_cmp[:, None, None].astype(dtype)
    lo, hi = lo[:, None, None].astype(dtype), hi[:, None, None].astype(dtype)
    wide = hi > lo
    inv = jnp.where(wide, (n_bins - 1) / jnp.where(wide, hi - lo, 1), 0)
    guard = _GUARD[np.dtype(dtype)] * (n_bins + (jnp.abs(lo) + jnp.abs(hi)) * inv)
    t = acts.astype(dtype)
    inside = (t >= lo_cmp) & (t < hi_cmp)
    u = jnp.where(wide, (t - lo) * inv, n_bins - 1)  # lo == hi: inside only when closed, the last bin
    whole = jnp.floor(u)
    frac = u - whole
    interior = inside & (u >= 0.5) & (u <= n_bins - 1.5)
    near = jnp.isnan(t) | (interior & ((frac < guard) | (frac > 1 - guard)))
    sym = jnp.where(t >= hi_cmp, n_bins, jnp.where(inside, jnp.clip(whole, 0, n_bins - 2) + 1, 0))
    sym = sym.astype(jnp.int32)
    # unit by unit (not a reduction over the short last axis): XLA fuses it all into one loop
    near_row = functools.reduce(jnp.logical_or, [near[:, :, j] for j in range(t.shape[2])])
    if layout is None:
        return sym.astype(jnp.int16 if n_bins < 2**15 else jnp.int32), near_row
    columns = [sym[:, :, j] for j in range(t.shape[2])]
    return pack_words(columns, codes.astype(jnp.int32), layout, n_bins + 1, cbits, jnp.stack), near_row


def _round_up_f32(values: np.ndarray) -> np.ndarray:
    """Smallest float32 >= each value: for float32 t, t >= v exactly when t >= this."""
    rounded = values.astype(np.float32)
    return np.where(rounded < values, np.nextafter(rounded, np.float32(np.inf)), rounded)


def _above_f32(values: np.ndarray) -> np.ndarray:
    """Smallest float32 > each value: for float32 t, t <= v exactly when t < this."""
    rounded = values.astype(np.float32)
    return np.where(rounded > values, rounded, np.nextafter(rounded, np.float32(np.inf)))


def _redo_near_edges(out, near, acts, lo, hi, n_bins, labels, layout, closed) -> None:
    """Overwrite the kernel's output for flagged rows with `uniform_symbols`-exact bins, in place."""
    flagged = np.flatnonzero(near)
    if flagged.size == 0:
        return
    rows, items = np.divmod(flagged, near.shape[1])
    seed_epochs, which = np.unique(rows, return_inverse=True)
    ranges, pick = np.unique(np.stack([lo[seed_epochs], hi[seed_epochs]], axis=1), axis=0, return_inverse=True)
    table = np.stack([uniform_edges(a, b, n_bins) for a, b in ranges])[pick[which]]
    w = acts.shape[2]
    step = max(1, 2**22 // (w * n_bins))
    for start in range(0, rows.size, step):
        r, i = rows[start:start + step], items[start:start + step]
        values = acts[r, i].astype(np.float64)
        # count of edges <= t is np.digitize(t, edges) for sorted edges; NaN goes past the end
        exact = np.count_nonzero(values[:, :, None] >= table[start:start + step, None, :], axis=2)
        exact = np.where(np.isnan(values), n_bins, exact)
        if closed:
            exact = np.where(values == table[start:start + step, None, -1], n_bins - 1, exact)
        exact = exact.astype(np.int32)
        if layout is None:
            out[r, i] = exact
        else:
            columns = [exact[:, j] for j in range(w)]
            out[r, i] = pack_words(columns, labels.codes[i].astype(np.int32), layout, n_bins + 1,
                                   class_bits(labels), np.stack)


@functools.partial(jax.jit, static_argnames=("closed",))
def _digitize(acts, edges, *, closed):
    """`uniform_symbols` of acts[b] on edges[b] for acts (B, N, w) and edges (B, n_bins), in float64."""
    t = acts.astype(jnp.float64)
    n_bins = edges.shape[1]
    method = "compare_all" if n_bins <= 64 else "scan"
    symbols = jax.vmap(lambda e, v: jnp.searchsorted(e, v, side="right", method=method))(edges, t)
    if closed:
        symbols = jnp.where(t == edges[:, -1, None, None], n_bins - 1, symbols)
    return jnp.where(jnp.isnan(t), n_bins, symbols).astype(jnp.int32)  # NaN: past the end


def uniform_information(acts: np.ndarray, lo: np.ndarray, hi: np.ndarray, n_bins: int,
                        labels: Labels, closed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(I(X;T), I(T;Y)) in bits for acts (B, N, w) binned on linspace(lo[b], hi[b], n_bins),
    with `closed` the top edge hi[b] closed (`uniform_symbols`).

    On the device path (`device_kernels`) every value is compared with its edges in float64
    and the rows counted on the device; the host path follows the module docstring.
    """
    if acts.dtype not in (np.float16, np.float32, np.float64):
        acts = acts.astype(np.float64)
    if device_kernels():
        edges = np.stack([uniform_edges(a, b, n_bins) for a, b in zip(np.asarray(lo, float), np.asarray(hi, float))])
        with jax.enable_x64(True):
            symbols = _digitize(jax.device_put(acts, thread_device(), may_alias=True),
                                jax.device_put(edges, thread_device()), closed=closed)
        return symbol_information(symbols, n_bins + 1, labels)
    b, _, w = acts.shape
    cbits = class_bits(labels)
    radix = n_bins + 1
    layout = word_layout(w, radix, cbits)
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    if acts.dtype == np.float64:  # values inside are lo <= t < hi_cmp
        lo_cmp, hi_cmp = lo, np.nextafter(hi, np.inf) if closed else hi
    else:
        lo_cmp, hi_cmp = _round_up_f32(lo), _above_f32(hi) if closed else _round_up_f32(hi)
    with jax.enable_x64(True):
        out, near = _kernel(jax.device_put(acts, thread_device(), may_alias=True), lo_cmp, hi_cmp, lo, hi,
                            jax.device_put(labels.codes, thread_device()),
                            n_bins=n_bins, cbits=cbits, layout=layout)
        out, near = np.array(out), np.asarray(near)
    _redo_near_edges(out, near, acts, lo, hi, n_bins, labels, layout, closed)
    if layout is None:
        keys = pack_rows(out, radix, labels)
    elif len(layout) == 1:
        keys = out[:, :, 0]
    else:
        keys = out.view(np.int64)[:, :, 0]
    return information_from_keys(keys, labels)


def _layer_range(acts) -> tuple[np.ndarray, np.ndarray]:
    """Per seed-epoch min and max of a block (B, N, w), NaNs ignored (all-NaN gives 0, 0);
    a block already on the device (a jax array) is reduced there."""
    if isinstance(acts, jax.Array):
        lo, hi = (np.asarray(f(acts, axis=(1, 2))).astype(np.float64) for f in (jnp.nanmin, jnp.nanmax))
    else:
        lo = np.fmin.reduce(acts, axis=(1, 2)).astype(np.float64)
        hi = np.fmax.reduce(acts, axis=(1, 2)).astype(np.float64)
    return np.nan_to_num(lo), np.nan_to_num(hi)


def _fixed(block: Block, labels: Labels, params: Mapping[str, Value], context: None):
    n = len(block.seeds)
    lo = np.full(n, float(params["lo"]))
    hi = np.full(n, float(params["hi"]))
    return {"": uniform_information(block.acts, lo, hi, int(params["n_bins"]), labels)}


def _check_fixed(params: Mapping[str, Value]) -> None:
    if not params["lo"] < params["hi"]:
        raise UserError(f"binning needs lo < hi, got lo={params['lo']:g} hi={params['hi']:g}")


def _global_ranges(blocks: Iterator[Block], params: Mapping[str, Value]) -> dict[int, tuple[float, float]] | None:
    """Per seed: min and max over every layer and logged epoch (for range=global)."""
    if params["range"] != "global":
        return None
    ranges: dict[int, tuple[float, float]] = {}
    for block in blocks:
        lo, hi = _layer_range(block.acts)
        for seed, a, b in zip(block.seeds.tolist(), lo, hi):
            old = ranges.get(seed, (math.inf, -math.inf))
            ranges[seed] = (min(old[0], a), max(old[1], b))
    return ranges


def layer_information(acts: np.ndarray, lo: np.ndarray, hi: np.ndarray, n_bins: int, convention: str,
                      labels: Labels) -> tuple[np.ndarray, np.ndarray]:
    """`uniform_information` on ranges [lo[b], hi[b]] with `n_bins` counted by `convention`:
    "intervals" (n_bins equal intervals, the last closed) or "edges" (n_bins linspace points)."""
    if convention == "intervals":
        return uniform_information(acts, lo, hi, n_bins + 1, labels, closed=True)
    return uniform_information(acts, lo, hi, n_bins, labels)


def layer_symbols(t: np.ndarray, lo: float, hi: float, n_bins: int, convention: str) -> np.ndarray:
    """Per-unit bins of one layer-epoch t (N, w) on [lo, hi] under `convention` (see
    `layer_information`); the readable reference the tests compare the kernels with."""
    if convention == "intervals":
        return uniform_symbols(t, lo, hi, n_bins + 1, closed=True)
    return uniform_symbols(t, lo, hi, n_bins)


def _per_layer(block: Block, labels: Labels, params: Mapping[str, Value],
               context: dict[int, tuple[float, float]] | None):
    if context is None:
        lo, hi = _layer_range(block.acts)
    else:
        lo = np.array([context[s][0] for s in block.seeds.tolist()])
        hi = np.array([context[s][1] for s in block.seeds.tolist()])
    return {"": layer_information(block.acts, lo, hi, int(params["n_bins"]), str(params["convention"]), labels)}


BINNING = Estimator(
    name="binning",
    params=(
        Param("n_bins", int, 30, "n", "number of bin edges (np.linspace(lo, hi, n_bins) points: n_bins - 1 "
              "intervals, plus a bin for values >= hi), as Shwartz-Ziv & Tishby's code", low=2, high=10**6),
        Param("lo", float, -1.0, "lo", "lowest bin edge"),
        Param("hi", float, 1.0, "hi", "highest bin edge"),
    ),
    estimate=_fixed,
    check=_check_fixed,
    fixed_batch=True,
    soft_labels=True,
    device_path=True,
    help="equal-width bins on a fixed range [lo, hi] for every layer; n_bins counts edges (Shwartz-Ziv & Tishby)",
)

BINNING_LAYER = Estimator(
    name="binning-layer",
    params=(
        Param("n_bins", int, 30, "n", "intervals: n_bins equal intervals over the range, the maximum in the last "
              "(Lorenzen et al.); edges: n_bins np.linspace points, the maximum in a bin of its own",
              low=2, high=10**6),
        Param("range", str, "layer", "", "layer: each layer's min..max at each epoch and seed; "
              "global: one min..max over all layers and epochs per seed", choices=("layer", "global")),
        Param("convention", str, "intervals", "", "what n_bins counts: intervals (Lorenzen et al.) or edges "
              "(the paper's binning on the layer's range; groups written before this option)",
              choices=("intervals", "edges"), legacy="edges"),
    ),
    estimate=_per_layer,
    prepare=_global_ranges,
    fixed_batch=True,
    soft_labels=True,
    device_path=True,
    help="n_bins equal intervals over each layer's own min..max per epoch (Lorenzen et al.) or over one global "
         "range (range=global, Saxe et al.); convention=edges counts edges as `binning` does",
)
