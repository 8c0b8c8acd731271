"""Where an estimate group breaks an inequality its quantity must respect, said in words.

True mutual information obeys: I(T;Y) does not grow with depth (data processing: each layer
is a function of the one before), I(T;Y) <= H(Y), and I(X;T) >= 0. An estimator can break
them (kNN's I(T;Y) of a shallow layer ending below a deeper layer's, a plug-in I(T;Y) above
H(Y)); such numbers are estimator artefacts, and the claims file, the figures and the report
say so beside them. A break counts only beyond the curves' own epoch-to-epoch noise
(`NOISE_Z` × the `phases.epoch_noise` of the curves compared, and at least `MIN_BITS`).
Differential-scale estimators (kNN's I(X;T) is an entropy h(T) of continuous values) have no
H(X) ceiling and may go below 0; their softmax output is flagged, since its units sum to 1 and
its h(T) is set by the jitter added to make the points distinct.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

from ibrepro.claims import phases

DIFFERENTIAL = frozenset({"knn"})  # estimators whose I(X;T) is on a differential scale
KERNEL_SCALE = frozenset({"renyi"})  # matrix-based: entropies of Gram matrices of a minibatch
MIN_BITS = 0.01  # a break smaller than this is rounding, whatever the noise


class Caveat(NamedTuple):
    """One break at one layer (index): `quantity` is "ixt" or "ity", `kind` one of `KINDS`,
    `text` says what and why."""

    layer: int
    quantity: str
    kind: str
    text: str


KINDS = {  # kind -> what a figure says of the layers it names
    "depth": "I(T;Y) ends above a shallower layer's (data-processing inequality broken)",
    "above_hy": "I(T;Y) > H(Y)",
    "negative": "I(X;T) < 0",
    "jitter": "I(X;T) set by the jitter (softmax units sum to 1)",
}


def on_bit_scale(estimator: str) -> bool:
    """Whether the estimator's I(X;T) is in bits of the discrete inputs, measured against H(X)
    and the IB curve; not kNN's differential entropy, nor matrix-based Rényi's kernel scale."""
    return estimator not in DIFFERENTIAL and estimator not in KERNEL_SCALE


def is_differential(estimator: str) -> bool:
    """Whether the estimator's I(X;T) is a differential quantity (no H(X) line, may be < 0)."""
    return estimator in DIFFERENTIAL


def estimate_caveats(estimator: str, epochs: np.ndarray, ixt: np.ndarray, ity: np.ndarray,
                     label_entropy: float, z: float = phases.NOISE_Z) -> list[Caveat]:
    """The breaks of one estimate group's curves (S, E, L), judged on the seed means."""
    with warnings.catch_warnings():  # all-NaN layers give NaN and no caveat
        warnings.simplefilter("ignore", RuntimeWarning)
        return _caveats(estimator, epochs, np.asarray(ixt, float), np.asarray(ity, float), label_entropy, z)


def _caveats(estimator: str, epochs: np.ndarray, ixt: np.ndarray, ity: np.ndarray,
             label_entropy: float, z: float) -> list[Caveat]:
    n_layers = ixt.shape[2]
    noise_y = _mean_noise(epochs, ity)
    out = []
    last = np.nanmean(ity[:, -1], axis=0)
    for k in range(1, n_layers):
        j = int(np.nanargmin(last[:k])) if np.isfinite(last[:k]).any() else None
        if j is None or not np.isfinite(last[k]):
            continue
        excess = last[k] - last[j]
        if excess > _tolerance(z, noise_y[k], noise_y[j]):
            out.append(Caveat(k, "ity", "depth", f"I(T;Y) ends {excess:.2g} bits above {_name(j, n_layers)}'s: "
                                        "a deeper layer cannot carry more (data-processing inequality)"))
    with np.errstate(invalid="ignore"):
        top = _nanmax(np.nanmean(ity, axis=0))
    for k in range(n_layers):
        if top[k] > label_entropy + _tolerance(z, noise_y[k]):
            out.append(Caveat(k, "ity", "above_hy", f"I(T;Y) reaches {top[k]:.3g} bits > H(Y) = {label_entropy:.3g}"))
    if is_differential(estimator):
        out.append(Caveat(n_layers - 1, "ixt", "jitter", "I(X;T) of the softmax output is set by the jitter "
                                               "(its units sum to 1: no volume for a differential entropy)"))
        return out
    noise_x = _mean_noise(epochs, ixt)
    low = -_nanmax(-np.nanmean(ixt, axis=0))
    for k in range(n_layers):
        if low[k] < -_tolerance(z, noise_x[k]):
            out.append(Caveat(k, "ixt", "negative", f"I(X;T) goes to {low[k]:.2g} bits < 0"))
    return sorted(out)


def figure_lines(caveats: list[Caveat], n_layers: int, quantities: tuple[str, ...] = ("ixt", "ity")) -> list[str]:
    """One short line per kind of break, naming its layers ('⚠ layer 2, output: ...')."""
    lines = []
    for kind, words in KINDS.items():
        layers = [c.layer for c in caveats if c.kind == kind and c.quantity in quantities]
        if layers:
            lines.append(f"⚠ {', '.join(_name(k, n_layers) for k in layers)}: {words}")
    return lines


def _name(k: int, n_layers: int) -> str:
    return "output" if k == n_layers - 1 else f"layer {k + 1}"


def _mean_noise(epochs: np.ndarray, curves: np.ndarray) -> np.ndarray:
    """Seed-mean epoch-to-epoch noise (L,) of curves (S, E, L); 0 with fewer than 2 epochs."""
    if curves.shape[1] < 2:
        return np.zeros(curves.shape[2])
    return np.nan_to_num(np.nanmean(phases.epoch_noise(epochs, curves), axis=0))


def _tolerance(z: float, *noises: float) -> float:
    return max(MIN_BITS, z * float(np.sqrt(np.sum(np.square(noises)))))


def _nanmax(values: np.ndarray) -> np.ndarray:
    """Max over axis 0 ignoring NaN; -inf where there is none."""
    return np.max(np.where(np.isfinite(values), values, -np.inf), axis=0)
