"""Claim iii's layer measures on an estimate group's own partition, at the last logged epoch.

Each layer's activations are discretised the way the estimate group did (`partition_of`):
fixed bins with its `n_bins`, `lo`, `hi`; per-layer (or per-seed global) ranges; equal-mass
bins; every distinct row for `exact`. Groups without a partition (KDE and other continuous
estimators) use the cell's binning group, or the paper's binning when there is none, and say
so. From the hard encoder p(t|x) and the data's p(x), p(y|x) (`ib.bound.data_distribution`),
the IB self-consistency (`ib.selfconsistency.self_consistency`): best beta and residual in
bits. Inputs with the same cluster and the same p(y|x) are merged first (exact, and smaller).
(Soft-label I(T;Y) itself is the estimators' business: `analyze --set labels=soft`.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ibrepro.analysis.estimators.partition import partition_symbols
from ibrepro.ib.selfconsistency import self_consistency

BETAS = np.geomspace(0.1, 1e4, 121)
PAPER_BINNING = ("binning", {"n_bins": 30, "lo": -1.0, "hi": 1.0})
DISCRETE = ("binning", "binning-layer", "adaptive", "exact")


@dataclass(frozen=True)
class Partition:
    """How a group's activations are cut into clusters, and in words."""

    estimator: str
    params: dict
    description: str
    own: bool  # the group's own partition (not borrowed from a binning group)


@dataclass(frozen=True)
class LayerMeasures:
    """Per seed and layer (S, L) at the last logged epoch."""

    beta: np.ndarray
    residual: np.ndarray


def partition_of(estimator: str, params: dict, binning: dict | None) -> Partition:
    """The partition for a group: its own when discrete, else `binning` (the params of the
    cell's binning group) or the paper's binning."""
    if estimator in DISCRETE:
        return Partition(estimator, params, f"its own partition ({estimator})", True)
    if binning is not None:
        return Partition("binning", binning, "the binning group's partition "
                         f"({binning.get('n_bins')} bins on [{binning.get('lo')}, "
                         f"{binning.get('hi')}]) of the same cell", False)
    name, defaults = PAPER_BINNING
    return Partition(name, defaults, "the paper's binning (30 bins on [-1, 1]): the cell has "
                     "no binning group", False)


def symbols(partition: Partition, acts: np.ndarray, global_range: tuple[float, float] | None = None) -> np.ndarray:
    """Cluster index (N,) of each input from one seed's layer activations (N, w)."""
    rows = partition_symbols(partition.estimator, partition.params, np.asarray(acts, np.float64), global_range)
    return np.unique(rows, axis=0, return_inverse=True)[1].ravel()


def layer_measures(acts: list[np.ndarray], partition: Partition, p_x: np.ndarray,
                   p_y_given_x: np.ndarray, global_ranges: np.ndarray | None = None) -> LayerMeasures:
    """Self-consistency of every seed and layer.

    `acts` holds one (S, N, w) array per layer (the last logged epoch); `global_ranges` (S, 2)
    the per-seed range over all layers and epochs for binning-layer with range=global."""
    shape = (acts[0].shape[0], len(acts))
    out = {name: np.full(shape, np.nan) for name in ("beta", "residual")}
    _, row = np.unique(p_y_given_x, axis=0, return_inverse=True)
    row = row.ravel()
    for s, k in np.ndindex(shape):
        span = None if global_ranges is None else tuple(global_ranges[s])
        t = symbols(partition, acts[k][s], span)
        pairs, merged = np.unique(np.stack([t, row], axis=1), axis=0, return_inverse=True)
        merged = merged.ravel()
        weights = np.bincount(merged, weights=p_x)
        p_y = p_y_given_x[_first_of(merged, pairs.shape[0])]
        out["beta"][s, k], out["residual"][s, k] = self_consistency(weights, p_y, pairs[:, 0], BETAS)
    return LayerMeasures(out["beta"], out["residual"])


def _first_of(groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Index of the first member of each group 0..n_groups-1."""
    first = np.full(n_groups, groups.size)
    np.minimum.at(first, groups, np.arange(groups.size))
    return first
