"""`ibrepro.estimate`: I(X;T) and I(T;Y) of plain activation arrays, with analyze's estimators."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ibrepro.api.inputs import InvalidInput, float_array, label_vector, user_errors


class Information(NamedTuple):
    """I(X;T) and I(T;Y) in bits, each of the batch shape of the activations given."""

    ixt: np.ndarray | float
    ity: np.ndarray | float


@user_errors
def estimate(t: ArrayLike, y: ArrayLike, estimator: str = "binning", *, x: ArrayLike | None = None,
             dataset: str = "tishby12", **settings: Any) -> Information:
    """Estimate I(X;T) and I(T;Y) in bits of one layer's activations, X uniform over the N rows.

    The same estimators and defaults as `ibrepro analyze --estimator NAME --set key=value`, and
    the same numbers for the same activations.

    Args:
        t: Activations of one layer, (N, width), or a batch of them (..., N, width), e.g.
            (seeds, epochs, N, width). Float32 as a run file stores them gives analyze's numbers.
        y: Class labels of the N inputs, integers (N,).
        estimator: An estimator name: binning, binning-layer, adaptive, kde, exact, knn, renyi
            (noisy needs the network and runs through `ibrepro.analyze` only).
        x: The N inputs (N, d), for estimators that use X itself (renyi).
        dataset: Fills settings whose default depends on the data (kde's sigma2: tishby12 or mnist).
        **settings: The estimator's parameters (e.g. n_bins=30, lo=-1.0, hi=1.0 for binning;
            sigma2 for kde) and, for kde, bound="upper" or "lower" (default upper). A global
            range (binning-layer, range="global") spans all the arrays given in one call.

    Returns:
        Information(ixt, ity): floats for one layer, else arrays of the batch shape.

    Raises:
        ValueError: naming the argument: wrong shapes, non-finite activations, labels that do not
            match the rows, an unknown estimator or setting, or a setting out of range.

    References:
        Shwartz-Ziv & Tishby (2017), arXiv:1703.00810, binning; Kolchinsky & Tracey (2017) and
        Saxe et al. (2018), KDE bounds; DESIGN.md section 4 for every estimator.

    Example:
        >>> import numpy as np, ibrepro
        >>> t = np.tanh(np.random.default_rng(0).normal(size=(64, 3))).astype(np.float32)
        >>> y = np.arange(64) % 2
        >>> mi = ibrepro.estimate(t, y, "binning", n_bins=30)
        >>> round(mi.ixt, 3)  # every row its own bin: I(X;T) = H(X) = log2 64
        6.0
        >>> round(mi.ity, 3)
        1.0
    """
    from ibrepro.analysis import estimators
    from ibrepro.analysis.estimators.base import Block, Labels

    if estimator not in estimators.REGISTRY:
        raise InvalidInput(f"estimator must be one of {', '.join(estimators.REGISTRY)}, got {estimator!r}")
    chosen = estimators.REGISTRY[estimator]
    if chosen.from_run is not None:
        raise InvalidInput(f"estimator {estimator!r} needs the trained network, not activations alone: "
                           "write a run file and use ibrepro.analyze")
    acts = float_array("t", t, 2)
    n, width = acts.shape[-2:]
    labels = Labels.from_labels(label_vector("y", y, n, f"t (axis -2 of shape {acts.shape})"))
    inputs = None
    if x is not None:
        inputs = float_array("x", x, 2)
        if inputs.ndim != 2 or inputs.shape[0] != n:
            raise InvalidInput(f"x must be the {n} inputs as (N, d), got shape {inputs.shape}")
    variant = _variant(chosen, settings)
    values = chosen.resolve(_given(chosen, settings), {"dataset": dataset})
    batch = acts.shape[:-2]
    flat = acts.reshape(-1, n, width)
    seeds = np.zeros(flat.shape[0], np.int64)
    context = None
    if chosen.prepare is not None:
        context = chosen.prepare(iter([Block(flat, seeds, 0, inputs)]), values)
    step = chosen.batch_limit or flat.shape[0]
    ixt, ity = np.empty(flat.shape[0]), np.empty(flat.shape[0])
    for lo in range(0, flat.shape[0], step):
        part = slice(lo, lo + step)
        block = Block(np.ascontiguousarray(flat[part]), seeds[part], 0, inputs, np.zeros_like(seeds[part]))
        out = chosen.estimate(block, labels, values, context)[variant]
        ixt[part], ity[part] = np.asarray(out[0]), np.asarray(out[1])
    if not batch:
        return Information(float(ixt[0]), float(ity[0]))
    return Information(ixt.reshape(batch), ity.reshape(batch))


def _variant(chosen, settings: dict[str, Any]) -> str:
    """The estimator's result variant (kde: bound="upper"/"lower"), taken out of `settings`."""
    if len(chosen.variants) == 1:
        return chosen.variants[0]
    variant = settings.pop("bound", chosen.variants[0])
    if variant not in chosen.variants:
        raise InvalidInput(f"bound must be one of {', '.join(chosen.variants)}, got {variant!r}")
    return variant


def _given(chosen, settings: dict[str, Any]) -> dict[str, Any]:
    """Settings checked against the estimator's parameters, as analyze's --set would parse them."""
    given = {}
    for key, value in settings.items():
        param = chosen.param_index.get(key)
        if param is None:
            known = ", ".join(chosen.param_index) or "none"
            raise InvalidInput(f"unknown setting {key!r} for estimator {chosen.name}; its settings: {known}")
        given[key] = param.parse(value if isinstance(value, str) else str(value))
    return given
