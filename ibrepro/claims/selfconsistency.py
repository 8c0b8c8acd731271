"""Claim iii's self-consistency measure on an estimate group's own partition, at the last
logged epoch.

Each layer's activations are discretised the way the estimate group did (`partition_of`):
fixed bins with its `n_bins`, `lo`, `hi`; per-layer (or per-seed global) ranges; equal-mass
bins; every distinct row for `exact`. Groups without a partition (KDE and other continuous
estimators) use the cell's binning group, or the paper's binning when there is none, and say
so. A hard encoder can satisfy the IB equations only as beta -> inf, where every input must
sit in the cluster whose decoder p(y|t) is KL-closest to its p(y|x)
(`ib.fixedpoint.nearest_decoder_share`). The share of inputs that do is compared with random
partitions of the same cluster sizes (a permutation null): small clusters are close to their
own members by construction, and the null says how close. Only meaningful with noisy labels
(with deterministic labels every label-pure cluster is at KL 0 from its members).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ibrepro.analysis.estimators.partition import partition_symbols
from ibrepro.ib.fixedpoint import nearest_decoder_share

N_PERMUTATIONS = 10
PERMUTATION_SEED = 0  # fixed: the same inputs always give the same measures
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
    """Per seed and layer (S, L) at the last logged epoch: the share of the input mass in its
    KL-closest cluster, and its mean over random partitions of the same cluster sizes."""

    share: np.ndarray
    null_share: np.ndarray

    def excess(self, room: float) -> np.ndarray:
        """(share - null) / (1 - null): 0 at chance, 1 when every input is in its KL-closest
        cluster. NaN where 1 - null < `room`: random partitions of those sizes (e.g. nearly
        every input its own cluster) are consistent already, so the layer cannot show it."""
        spare = 1.0 - self.null_share
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(spare >= max(room, 1e-12), (self.share - self.null_share) / spare, np.nan)


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
    """The beta -> inf self-consistency of every seed and layer, with its permutation null.

    `acts` holds one (S, N, w) array per layer (the last logged epoch); `global_ranges` (S, 2)
    the per-seed range over all layers and epochs for binning-layer with range=global."""
    shape = (acts[0].shape[0], len(acts))
    share, null = np.full(shape, np.nan), np.full(shape, np.nan)
    for s, k in np.ndindex(shape):
        span = None if global_ranges is None else tuple(global_ranges[s])
        t = symbols(partition, acts[k][s], span)
        share[s, k], null[s, k] = consistency_with_null(p_x, p_y_given_x, t, (s, k))
    return LayerMeasures(share, null)


def consistency_with_null(p_x: np.ndarray, p_y_given_x: np.ndarray, clusters: np.ndarray,
                          key: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """(share in the KL-closest cluster, its mean over `N_PERMUTATIONS` random relabellings of
    the inputs with the same cluster sizes) of hard encoders `clusters` (N,) or (M, N), all in
    one pass (floats, or (M,) arrays); `key` seeds the permutations."""
    rng = np.random.default_rng([PERMUTATION_SEED, *key])
    clusters = np.asarray(clusters)
    rows = clusters.reshape(-1, clusters.shape[-1])
    shuffled = rng.permuted(np.repeat(rows, N_PERMUTATIONS, axis=0), axis=1)
    shares = nearest_decoder_share(p_x, p_y_given_x, np.vstack([rows, shuffled]))
    share, null = shares[: len(rows)], shares[len(rows):].reshape(len(rows), N_PERMUTATIONS).mean(axis=1)
    return (share, null) if clusters.ndim == 2 else (float(share[0]), float(null[0]))
