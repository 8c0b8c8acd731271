"""Pairwise-distance bounds on the information of T + N(0, σ²I) (Kolchinsky & Tracey; Saxe et al.).

With D_ij = ‖t_i − t_j‖², the upper bound is I(X;T) = −(1/N) Σ_i log2[(1/N) Σ_j exp(−D_ij / 2σ²)];
the lower bound is the same with 8σ² in place of 2σ². I(T;Y) = Ĥ(T) − Σ_y p(y) Ĥ(T|Y=y) with
the same bound within each class, which per input i reads log2[(S_i^y / N_y) / (S_i / N)]
averaged over i, where S_i sums the kernel over all j and S_i^y over j of i's class. With soft
labels p(y|x), the class-conditional mixtures weight input j by p(y|x_j): S_i^y sums
p(y|x_j) K_ij, N_y becomes N p(y), and each i averages its terms over p(y|x_i).

Speed: inputs are grouped by class and cut into blocks of `block` rows (each class padded to
whole blocks with zero-weight rows), so a block pair is either same-class or not; one XLA
loop visits each unordered block pair once (the kernel is symmetric), adding row and column
sums of a (block × block) tile, small enough to stay in cache. One exp per pair serves both
bounds: exp(−D/2σ²) = exp(−D/8σ²)⁴. Memory stays O(N · width + block²). The loop is compiled
with XLA's YNNPACK fusions (`jaxsetup.ynn_fusions`), which the rest of the process may have off.

On the device path (`device_kernels`, the default on accelerators) one compiled kernel takes
a whole block of seed-epochs at once: rows of the kernel matrix `ROWS` at a time, full
width, every sum and logarithm on the device; only (B,) bounds come back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ibrepro.analysis.estimators.base import Block, Estimator, Labels, Param, Value
from ibrepro.analysis.estimators.placement import device_kernels, thread_device
from ibrepro.jaxsetup import ynn_fusions

BOUNDS = ("upper", "lower")
# analysis noise variance per dataset (Saxe et al.'s settings)
DEFAULT_SIGMA2 = {"tishby12": 1e-3, "mnist": 0.1, "fashion-mnist": 0.1}
ROWS = 1024  # kernel-matrix rows per step of the device path: (B, ROWS, N) floats in memory


@dataclass(frozen=True)
class _Tiling:
    """Inputs grouped by class and padded to whole blocks; `slot[i]` is input i's padded row."""

    slot: np.ndarray
    weight: np.ndarray
    first: np.ndarray
    second: np.ndarray
    same_class: np.ndarray
    block: int


def _tiling(codes: np.ndarray, counts: np.ndarray) -> _Tiling:
    block = int(min(128, 2 ** math.ceil(math.log2(max(2, counts.max())))))  # 128: tiles stay in L2
    slot = np.empty(codes.size, np.int64)
    block_class, start = [], 0
    for c, count in enumerate(counts.tolist()):
        slot[codes == c] = start + np.arange(count)
        n_blocks = -(-count // block)
        block_class += [c] * n_blocks
        start += n_blocks * block
    weight = np.zeros(start)
    weight[slot] = 1.0
    first, second = np.triu_indices(len(block_class))
    block_class = np.array(block_class)
    return _Tiling(slot, weight, first, second, block_class[first] == block_class[second], block)


@partial(jax.jit, static_argnames=("block",), compiler_options=ynn_fusions())
def _kernel_sums(t, weight, soft, first, second, same_class, sigma2, *, block):
    """Kernel sums for padded rows t (rows, w), per [upper, lower] bound and row:
    (2 [all, own class], 2, rows); or with soft labels p(y|x) `soft` (rows, C), C > 0,
    (1 + C [all, then each class's p(y|x_j)-weighted sum], 2, rows)."""
    t = t - (t * weight[:, None]).sum(0) / weight.sum()
    sq = (t * t).sum(1)

    def tile(pair, acc):
        i, j = first[pair] * block, second[pair] * block

        def take(a, at):
            return jax.lax.dynamic_slice_in_dim(a, at, block)

        ti, tj = take(t, i), take(t, j)
        dist = jnp.maximum(take(sq, i)[:, None] + take(sq, j)[None, :] - 2.0 * (ti @ tj.T), 0.0)
        pair_weight = take(weight, i)[:, None] * take(weight, j)[None, :]
        lower = jnp.exp(dist * (-1.0 / (8.0 * sigma2))) * pair_weight
        square = lower * lower
        upper = square * square  # exp(-D / 2σ²) = exp(-D / 8σ²) ** 4: one exp per pair
        rows = jnp.stack([upper.sum(1), lower.sum(1)])
        cols = jnp.stack([upper.sum(0), lower.sum(0)])
        if soft.shape[1] == 0:
            own = same_class[pair].astype(t.dtype)
            rows, cols = jnp.stack([rows, own * rows]), jnp.stack([cols, own * cols])
        else:
            pi, pj = take(soft, i), take(soft, j)  # (block, C)
            rows = jnp.concatenate([rows[None], jnp.stack([(upper @ pj).T, (lower @ pj).T], axis=1)])
            cols = jnp.concatenate([cols[None], jnp.stack([pi.T @ upper, pi.T @ lower], axis=1)])
        cols = jnp.where(i == j, 0.0, cols)

        def add(acc, at, sums):
            part = jax.lax.dynamic_slice_in_dim(acc, at, block, axis=2)
            return jax.lax.dynamic_update_slice_in_dim(acc, part + sums, at, axis=2)

        return add(add(acc, i, rows), j, cols)

    acc = jnp.zeros((1 + max(1, soft.shape[1]), 2, t.shape[0]), t.dtype)
    return jax.lax.fori_loop(0, first.shape[0], tile, acc)


def kde_information(acts: np.ndarray, labels: Labels, sigma2: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{bound: (I(X;T), I(T;Y))} in bits per seed-epoch for activations (B, N, w).

    With soft labels (`labels.soft`, p(y|x)) the class-conditional mixtures weight each input
    by p(y|x) instead of by class membership (see `kde_reference`).
    """
    if device_kernels():
        return _device_information(acts, labels, sigma2)
    n, soft = labels.n, labels.soft
    if soft is None:
        tiling = _tiling(labels.codes, labels.counts)
        mix = np.zeros((tiling.weight.shape[0], 0))
    else:
        tiling = _tiling(np.zeros(n, np.int64), np.array([n]))
        mix = np.zeros((tiling.weight.shape[0], soft.shape[1]))
        mix[tiling.slot] = soft
    out = np.empty((len(BOUNDS), 2, acts.shape[0]))
    with jax.enable_x64(True):
        for b in range(acts.shape[0]):
            padded = np.zeros((tiling.weight.shape[0], acts.shape[2]))
            padded[tiling.slot] = acts[b]
            sums = np.asarray(_kernel_sums(padded, tiling.weight, mix, tiling.first, tiling.second,
                                           tiling.same_class, sigma2, block=tiling.block))[:, :, tiling.slot]
            out[:, 0, b] = -np.log2(sums[0] / n).mean(axis=1)
            if soft is None:
                out[:, 1, b] = np.log2((sums[1] / labels.counts[labels.codes]) / (sums[0] / n)).mean(axis=1)
            else:
                out[:, 1, b] = _soft_label_information(sums[0], sums[1:], soft)
    return {bound: (out[k, 0], out[k, 1]) for k, bound in enumerate(BOUNDS)}


@partial(jax.jit, static_argnames=("rows",))
def _device_bounds(acts, p, sigma2, *, rows):
    """[upper, lower] × (I(X;T), I(T;Y)) (2, 2, B) for acts (B, N, w) and p(y|x) (N, C), one-hot
    for drawn labels: I(T;Y) = mean_i Σ_y p(y|x_i) log2[(S_i^y / (N p(y))) / (S_i / N)]."""
    n = acts.shape[1]
    steps = -(-n // rows)
    log_mass = jnp.log2(n * p.mean(axis=0))  # (C,)

    def one(t):
        t = t - t.mean(axis=0)
        sq = (t * t).sum(axis=1)
        padded = jnp.pad(t, ((0, steps * rows - n), (0, 0)))

        def step(k):
            ti = jax.lax.dynamic_slice_in_dim(padded, k * rows, rows)
            dist = jnp.maximum((ti * ti).sum(axis=1)[:, None] + sq[None, :] - 2.0 * (ti @ t.T), 0.0)
            lower = jnp.exp(dist * (-1.0 / (8.0 * sigma2)))
            square = lower * lower
            kernels = jnp.stack([square * square, lower])  # upper, lower: (2, rows, N)
            return kernels.sum(axis=2), kernels @ p  # (2, rows), (2, rows, C)

        every, by_class = jax.lax.map(step, jnp.arange(steps))
        every = jnp.moveaxis(every, 0, 1).reshape(2, -1)[:, :n]
        by_class = jnp.moveaxis(by_class, 0, 1).reshape(2, -1, p.shape[1])[:, :n]
        log_every = jnp.log2(every / n)
        terms = p * (jnp.log2(jnp.where(p > 0, by_class, 1.0)) - log_mass - log_every[:, :, None])
        return jnp.stack([-log_every.mean(axis=1), jnp.where(p > 0, terms, 0.0).sum(axis=2).mean(axis=1)], axis=1)

    return jnp.moveaxis(jax.vmap(one)(acts), 0, 2)


def _device_information(acts: np.ndarray, labels: Labels, sigma2: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """`kde_information` as one kernel on the device (see the module docstring)."""
    p = labels.soft if labels.soft is not None else np.eye(labels.n_classes)[labels.codes]
    device = thread_device()
    with jax.enable_x64(True):
        out = np.asarray(_device_bounds(jax.device_put(acts, device).astype(jnp.float64),
                                        jax.device_put(p, device), sigma2, rows=min(ROWS, acts.shape[1])))
    return {bound: (out[k, 0], out[k, 1]) for k, bound in enumerate(BOUNDS)}


def _soft_label_information(every: np.ndarray, by_class: np.ndarray, p_y_given_x: np.ndarray) -> np.ndarray:
    """I(T;Y) per bound from kernel sums `every` (2, N) and p(y|x_j)-weighted `by_class` (C, 2, N):
    mean_i Σ_y p(y|x_i) log2[(by_class_y,i / (N p(y))) / (every_i / N)]."""
    n = p_y_given_x.shape[0]
    weight = p_y_given_x.T[:, None, :]  # (C, 1, N)
    mass = n * p_y_given_x.mean(axis=0)[:, None, None]
    # where p(y|x_i) > 0, by_class_y,i >= p(y|x_i) K_ii > 0
    ratio = np.where(weight > 0, (by_class / np.where(mass > 0, mass, 1.0)) / (every / n), 1.0)
    return (weight * np.log2(ratio)).sum(axis=0).mean(axis=1)


def kde_reference(t: np.ndarray, y: np.ndarray, sigma2: float,
                  p_y_given_x: np.ndarray | None = None) -> dict[str, tuple[float, float]]:
    """{bound: (I(X;T), I(T;Y))} in bits for one layer-epoch t (N, w), by plain pairwise numpy.

    The readable version of `kde_information`, which the tests compare it against. With
    kernel K_ij = exp(−‖t_i − t_j‖² / cσ²), c = 2 for the upper bound and 8 for the lower,
    and p(y|x) one-hot of the labels y unless `p_y_given_x` (N, C) is given (soft labels):
    I(X;T) = −mean_i log2[(1/N) Σ_j K_ij] and I(T;Y) = mean_i Σ_y p(y|x_i) log2[
    ((1/(N p(y))) Σ_j p(y|x_j) K_ij) / ((1/N) Σ_j K_ij)], p(y) = mean_i p(y|x_i); with hard
    labels the inner sum runs over i's class. Rows are taken 1000 at a time (memory O(1000 · N)).
    """
    t = np.asarray(t, np.float64)
    n = len(t)
    if p_y_given_x is None:
        _, codes = np.unique(np.asarray(y), return_inverse=True)
        p_y_given_x = np.eye(codes.max() + 1)[codes.ravel()]
    p = np.asarray(p_y_given_x, np.float64)
    p_y = p.mean(axis=0)
    sq = (t * t).sum(1)
    out = {}
    for bound, factor in zip(BOUNDS, (2.0, 8.0)):
        every, own = np.empty(n), np.empty(n)
        for i in range(0, n, 1000):
            rows = slice(i, i + 1000)
            dist = np.maximum(sq[rows, None] + sq[None, :] - 2 * t[rows] @ t.T, 0)  # ‖t_i − t_j‖²
            kernel = np.exp(-dist / (factor * sigma2))
            every[rows] = kernel.sum(1)
            per_class = (kernel @ p) / (n * p_y)  # (rows, C)
            with np.errstate(divide="ignore", invalid="ignore"):
                terms = p[rows] * np.log2(per_class / (every[rows, None] / n))
            own[rows] = np.where(p[rows] > 0, terms, 0.0).sum(1)
        out[bound] = (float(-np.log2(every / n).mean()), float(own.mean()))
    return out


def _estimate(block: Block, labels: Labels, params: Mapping[str, Value], context: None):
    return kde_information(block.acts, labels, float(params["sigma2"]))


def _config_defaults(config: Mapping[str, Any]) -> dict[str, Value]:
    dataset = config.get("dataset")
    return {"sigma2": DEFAULT_SIGMA2[dataset]} if dataset in DEFAULT_SIGMA2 else {}


KDE = Estimator(
    name="kde",
    params=(Param("sigma2", float, None, "var", "variance of the analysis noise added to T "
                  "(default 1e-3 for tishby12, 0.1 for mnist and fashion-mnist)", low=0.0, low_open=True),),
    estimate=_estimate,
    variants=BOUNDS,
    config_defaults=_config_defaults,
    batch_limit=8,
    soft_labels=True,
    device_path=True,
    help="upper and lower pairwise-distance (KDE) bounds for T plus Gaussian noise (Kolchinsky & Tracey, Saxe et al.)",
)
