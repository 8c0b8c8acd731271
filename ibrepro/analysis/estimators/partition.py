"""The cells a discrete estimator counts, for one layer-epoch.

`partition_symbols` gives, for one layer's activations (N, w), per-unit symbols (N, w) whose
distinct rows are the values of T̂ that `binning`, `binning-layer`, `adaptive` or `exact`
counts with the given parameters (the readable references the kernels are tested against).
Consumers that need the clusters themselves (claim iii's self-consistency) take them from
here rather than re-deriving the bins.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ibrepro.analysis.estimators.adaptive import ADAPTIVE, adaptive_symbols
from ibrepro.analysis.estimators.base import Value
from ibrepro.analysis.estimators.binning import BINNING_LAYER, layer_symbols, uniform_symbols


def _setting(params: Mapping[str, Value], estimator, name: str) -> str:
    """A string parameter, at its legacy value when `params` predate it."""
    return str(params.get(name, estimator.param_index[name].legacy))


def partition_symbols(estimator: str, params: Mapping[str, Value], acts: np.ndarray,
                      global_range: tuple[float, float] | None = None) -> np.ndarray:
    """Symbols (N, w) of one layer-epoch `acts` (N, w) under `estimator` with `params`;
    `global_range` is the seed's (lo, hi) for binning-layer with range=global."""
    acts = np.asarray(acts)
    if estimator == "exact":
        return acts
    if estimator == "adaptive":
        return adaptive_symbols(acts, int(params["n_bins"]), _setting(params, ADAPTIVE, "pool"))
    if estimator == "binning":
        return uniform_symbols(acts, float(params["lo"]), float(params["hi"]), int(params["n_bins"]))
    if estimator == "binning-layer":
        lo, hi = global_range if global_range is not None else (float(np.nanmin(acts)), float(np.nanmax(acts)))
        return layer_symbols(acts, lo, hi, int(params["n_bins"]), _setting(params, BINNING_LAYER, "convention"))
    raise ValueError(f"{estimator!r} has no partition of its own")
