"""Mutual-information estimators by name (the names `ibrepro analyze --estimator` takes).

Each entry is an `Estimator` (see `base.py`): its parameters with types, defaults and
ranges, and a function from a block of activations to I(X;T) and I(T;Y) in bits.
A new estimator family is one module plus one line here.
"""

from __future__ import annotations

from ibrepro.analysis.estimators.adaptive import ADAPTIVE
from ibrepro.analysis.estimators.base import Block, Estimator, Labels, Param
from ibrepro.analysis.estimators.binning import BINNING, BINNING_LAYER
from ibrepro.analysis.estimators.exact import EXACT
from ibrepro.analysis.estimators.kde import KDE
from ibrepro.analysis.estimators.knn import KNN
from ibrepro.analysis.estimators.noisy import NOISY
from ibrepro.analysis.estimators.renyi import RENYI
from ibrepro.errors import UserError

REGISTRY: dict[str, Estimator] = {
    e.name: e for e in (BINNING, BINNING_LAYER, ADAPTIVE, KDE, EXACT, KNN, RENYI, NOISY)
}
DEFAULT = "binning"


def get(name: str) -> Estimator:
    """The estimator registered under `name` (UserError listing the known names otherwise)."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise UserError(f"unknown estimator {name!r}; known: {', '.join(REGISTRY)}") from None


__all__ = ["REGISTRY", "DEFAULT", "get", "Estimator", "Param", "Labels", "Block"]
