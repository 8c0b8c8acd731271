"""k-nearest-neighbour estimates: Kozachenko–Leonenko entropy and the mixed KSG information.

With the N evaluation inputs' activations t_1..t_N of a layer (width w) and labels y_i:

- I(X;T) is reported as the Kozachenko–Leonenko estimate of the differential entropy of T,
  Ĥ(T) = ψ(N) − ψ(k) + (w / N) Σ_i log(2 r_i)   (nats, reported in bits),
  r_i the max-norm distance from t_i to its k-th nearest neighbour (Kraskov et al. 2004,
  eq. 20 with the max-norm, whose unit ball has volume 2^w).
- I(T;Y) for discrete Y is the mixed discrete–continuous KSG estimate (Ross 2014):
  I = ψ(N) − ⟨ψ(N_{y_i})⟩ + ψ(k) − ⟨ψ(m_i)⟩, where ρ_i is the distance from t_i to its k-th
  nearest neighbour among the inputs of its own class (N_{y_i} of them) and m_i counts the
  inputs j ≠ i, of any class, with ‖t_j − t_i‖ ≤ ρ_i (the k-th neighbour itself included).

What is and is not well defined. T = f(X) is a deterministic function of X, and X is uniform
over N distinct inputs, so T takes at most N values: its differential entropy is −∞ and
I(X;T) = H(T) as a discrete entropy, log2 N whenever the rows are distinct (Saxe et al. 2018;
Goldfeld et al. 2019: for deterministic networks the true I(X;T) is constant or infinite).
The KL number is the entropy of a smooth density the N points are taken to be a sample of,
which is what the kNN literature plots as I(X;T): it measures how spread out (or clustered)
the points are at the scale of their k-th neighbour distances. It changes by w·log2(a) when
T is scaled by a, can be negative, and tends to −∞ as points merge (saturated units). I(T;Y)
is better behaved: it is invariant to invertible maps of T and bounded by H(Y) in truth,
though the estimate carries the usual kNN bias (a few hundredths of a bit at N = 4096) and
can come out slightly negative.

Duplicate rows (saturated units give identical rows) make r_i = 0. Before any distance is
taken every row gets a small Gaussian jitter, N(0, jitter²) per entry, from one fixed draw
(seed `JITTER_SEED`) assigned in a canonical order of the (row, label) pairs (by label, then
row values), so the estimate depends only on the multiset of (t_i, y_i) and not on the input
order or on how seed-epochs are batched. Where many rows coincide, Ĥ(T) then reflects
log2(jitter): the attr `jitter` records the amplitude used. Distances are taken in float32.

Speed: inputs are sorted by class and padded to groups of `GROUP` columns (each group holds
one class). One compiled function visits every seed-epoch of a block in `ROWS`-row steps: it
computes the (ROWS × all) max-norm distances, takes each group's minimum, picks for each row
the k+1 groups with the smallest minima (which must hold its k+1 nearest points, itself
included) and finds the (k+1)-th smallest distance among those few candidates; a second loop
recomputes the distances and counts those within ρ_i. Cost O(N² w): on CPU about 55 ms of
one core per layer-epoch at N = 4096, width 10 (scripts/bench_knn_renyi.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np

from ibrepro.analysis.estimators.base import Block, Estimator, Labels, Param, Value
from ibrepro.analysis.estimators.placement import thread_device
from ibrepro.errors import UserError

JITTER_SEED = 0
GROUP = 32  # columns per group (one class per group)
ROWS = 64  # rows per loop step; a multiple of GROUP
PAD = np.float32(1e30)  # coordinate of padding points: never anyone's neighbour
UNROLL_UNITS = 16  # widths up to this are unrolled in the distance kernel


EULER_GAMMA = 0.5772156649015329


def digamma(n) -> np.ndarray:
    """ψ(n) for positive integers n (any shape): H(n − 1) − γ, from a table of harmonic numbers."""
    n = np.asarray(n, np.int64)
    return _harmonic(int(n.max(initial=1)))[n - 1] - EULER_GAMMA


@lru_cache(maxsize=4)
def _harmonic(count: int) -> np.ndarray:
    """H(0..count − 1): the harmonic numbers (H(0) = 0)."""
    table = np.zeros(count)
    np.cumsum(1.0 / np.arange(1, count), out=table[1:])
    table.flags.writeable = False
    return table


@lru_cache(maxsize=16)
def _unit_noise(n: int, width: int) -> np.ndarray:
    noise = np.random.default_rng(JITTER_SEED).standard_normal((n, width)).astype(np.float32)
    noise.flags.writeable = False
    return noise


def canonical_points(t: np.ndarray, codes: np.ndarray, jitter: float) -> tuple[np.ndarray, np.ndarray]:
    """(points (N, w) float32, their class codes): rows sorted by label then values, jittered."""
    t = np.asarray(t, np.float32)
    order = np.lexsort([t[:, j] for j in range(t.shape[1] - 1, -1, -1)] + [codes])
    points = t[order] + np.float32(jitter) * _unit_noise(*t.shape)
    return points, codes[order]


def check_counts(labels: Labels, k: int) -> None:
    """UserError unless every class (hence N) has more than k inputs."""
    if labels.counts.min() <= k:
        raise UserError(f"knn with k={k} needs more than k inputs of every class; the smallest "
                        f"class has {labels.counts.min()} of the {labels.n} inputs")


def _information(log_2r: np.ndarray, psi_m: np.ndarray, labels: Labels, k: int, width: int):
    """(I(X;T), I(T;Y)) in bits from per-input log(2 r_i) and ψ(m_i) (last axis: inputs)."""
    n = labels.n
    psi_class = float((labels.counts * digamma(labels.counts)).sum() / n)
    h = digamma(n) - digamma(k) + width * log_2r.mean(-1)
    i = digamma(n) - psi_class + digamma(k) - psi_m.mean(-1)
    return h / math.log(2), i / math.log(2)


def knn_reference(t: np.ndarray, labels: Labels, k: int, jitter: float) -> tuple[float, float]:
    """The same estimate for one layer-epoch (N, w), by plain loops over inputs (slow)."""
    check_counts(labels, k)
    points, codes = canonical_points(t, labels.codes, jitter)
    n = len(points)
    log_2r, psi_m = np.empty(n), np.empty(n)
    for i in range(n):
        others = np.arange(n) != i
        dist = np.abs(points - points[i]).max(axis=1)[others]
        own = codes[others] == codes[i]
        rho = np.sort(dist[own])[k - 1]
        log_2r[i] = math.log(2.0 * float(np.sort(dist)[k - 1]))
        psi_m[i] = digamma(np.count_nonzero(dist <= rho))
    ixt, ity = _information(log_2r, psi_m, labels, k, t.shape[1])
    return float(ixt), float(ity)


# ---- the fast kernel ---------------------------------------------------------------------------


def _max_norm(mine, cols):
    """Max-norm distances (...) between points mine (w, R, 1...) and cols (w, ...), unit by unit."""

    def unit(u):
        return jnp.abs(mine[u] - cols[u])

    width = mine.shape[0]
    if width <= UNROLL_UNITS:
        dist = unit(0)
        for u in range(1, width):
            dist = jnp.maximum(dist, unit(u))
        return dist
    return jax.lax.fori_loop(1, width, lambda u, dist: jnp.maximum(dist, unit(u)), unit(0))


def _kth_in_groups(mine, grouped, lowest, allowed, k: int):
    """Per row, the k-th smallest distance to the points of its allowed groups.

    mine (w, R) are the rows, grouped (groups, w, GROUP) all points by group, `lowest`
    (R, groups) each row's smallest distance into each group. The k groups (or all, if
    fewer) with the smallest
    minima hold the k smallest distances (a group outside them has a minimum no lower than
    theirs, so each of them holds a distance at most that small): only their points are
    measured again.
    """
    score, pick = jax.lax.top_k(jnp.where(allowed, -lowest, -jnp.inf), min(k, lowest.shape[1]))
    width, rows = mine.shape
    # whole-row gathers ("clip": indices are in range) stay a single fast copy on CPU
    chosen = jnp.take(grouped, pick.reshape(-1), axis=0, mode="clip").reshape(rows, -1, width, GROUP)
    candidates = _max_norm(mine[:, :, None, None], jnp.moveaxis(chosen, 2, 0))  # (R, picked, GROUP)
    candidates = jnp.where(jnp.isfinite(score)[:, :, None], candidates, jnp.inf).reshape(rows, -1)
    # the largest of the k smallest (not column k - 1 of top_k: XLA then sorts whole rows)
    return -jax.lax.top_k(-candidates, k)[0].min(axis=1)


def _count_within(dist, radius):
    """Per row of dist (R, P) >= 0, how many entries are <= radius (R,), as float32.

    Written with min/max and sums over groups of GROUP columns: XLA's CPU code for a
    compare-and-count, or for a sum along a whole row, is several times slower.
    A positive difference of float32 numbers is >= 2**-149, so times 2**127 it is >= 1 for
    any difference that is not subnormal (both numbers below 1e-38); those never occur here.
    """
    above = jnp.minimum(jnp.maximum(dist - radius[:, None], 0.0) * jnp.float32(2.0**127), 1.0)
    # the barrier keeps XLA from merging the two sums into one along whole rows (slow)
    per_group = jax.lax.optimization_barrier(above.reshape(dist.shape[0], -1, GROUP).sum(axis=2))
    return dist.shape[1] - per_group.sum(axis=1)


@partial(jax.jit, static_argnames=("k",))
def _neighbour_stats(points, row_class, group_class, *, k):
    """Per padded row of points (B, P, w): the k-th neighbour distance r and the count m."""
    b, p, w = points.shape
    steps = p // ROWS
    units = jnp.swapaxes(points, 1, 2)  # (B, w, P): distances vectorise along P
    grouped = jnp.swapaxes(points.reshape(b, p // GROUP, GROUP, w), 2, 3)  # (B, groups, w, GROUP)

    def tile(s):
        e, start = s // steps, (s % steps) * ROWS
        mine = jax.lax.dynamic_slice_in_dim(units[e], start, ROWS, axis=1)
        return e, start, mine, _max_norm(mine[:, :, None], units[e][:, None, :])  # (ROWS, P)

    def radii(s):
        e, start, mine, dist = tile(s)
        lowest = dist.reshape(ROWS, -1, GROUP).min(axis=2)
        own = group_class[None, :] == jax.lax.dynamic_slice_in_dim(row_class, start, ROWS)[:, None]
        # k + 1: each row's own distance 0 is among its candidates
        r = _kth_in_groups(mine, grouped[e], lowest, jnp.ones_like(own), k + 1)
        return r, _kth_in_groups(mine, grouped[e], lowest, own, k + 1)

    def count(args):
        s, rho = args
        return _count_within(tile(s)[3], rho) - 1

    # two loops, each reducing its tile as it is computed: XLA's CPU code is several times
    # slower when one tile feeds two reductions (the tile is then written out first)
    r, rho = jax.lax.map(radii, jnp.arange(b * steps))
    m = jax.lax.map(count, (jnp.arange(b * steps), rho))
    return r.reshape(b, p), m.reshape(b, p)


def _layout(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Padded slots of the class-sorted inputs, class of every padded row and of every group."""
    slot, group_class, start = [], [], 0
    for c, count in enumerate(counts.tolist()):
        groups = -(-count // GROUP)
        slot.append(start + np.arange(count))
        group_class += [c] * groups
        start += groups * GROUP
    extra = -(-start // ROWS) * ROWS - start
    group_class += [-1] * (extra // GROUP)
    group_class = np.array(group_class, np.int32)
    return np.concatenate(slot), np.repeat(group_class, GROUP), group_class


def knn_information(acts: np.ndarray, labels: Labels, k: int, jitter: float) -> tuple[np.ndarray, np.ndarray]:
    """(I(X;T), I(T;Y)) in bits per seed-epoch for activations (B, N, w); NaN where not finite."""
    check_counts(labels, k)
    b, n, w = acts.shape
    slot, row_class, group_class = _layout(labels.counts)
    finite = np.isfinite(acts).all(axis=(1, 2))
    padded = np.full((b, len(row_class), w), PAD, np.float32)
    for e in range(b):
        if finite[e]:
            padded[e, slot] = canonical_points(acts[e], labels.codes, jitter)[0]
    device = thread_device()
    r, m = _neighbour_stats(jax.device_put(padded, device), jax.device_put(row_class, device),
                               jax.device_put(group_class, device), k=k)
    r, m = np.asarray(r)[:, slot].astype(np.float64), np.asarray(m)[:, slot].astype(np.int64)
    with np.errstate(divide="ignore"):
        ixt, ity = _information(np.log(2.0 * r), digamma(m), labels, k, w)
    return np.where(finite, ixt, np.nan), np.where(finite, ity, np.nan)


def _estimate(block: Block, labels: Labels, params: Mapping[str, Value], context: None):
    return {"": knn_information(block.acts, labels, int(params["k"]), float(params["jitter"]))}


KNN = Estimator(
    name="knn",
    params=(
        Param("k", int, 3, "k", "neighbours (the k-th nearest sets each input's scale)", low=1, high=1000),
        Param("jitter", float, 1e-5, "jit", "std of the fixed Gaussian jitter added to every entry "
              "(breaks ties between duplicate rows)", low=0.0),
    ),
    estimate=_estimate,
    batch_limit=16,
    fixed_batch=True,
    help="Kozachenko–Leonenko entropy as I(X;T) and mixed KSG I(T;Y) (Kraskov et al.; Ross)",
)
