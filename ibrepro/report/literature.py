"""What the literature reports for the critique experiments: a report section each.

Keyed by experiment name (`name` in the experiment file). For noise-injected networks the
section also sets the `noisy` estimates beside Goldfeld et al.'s published numbers.
"""

from __future__ import annotations

import math

import numpy as np

from ibrepro.analysis.results import CellResults
from ibrepro.report.document import Heading, Para, Table

EXPECTED = {
    "tishby12-activation": (
        "Saxe et al. (ICLR 2018): with the same network and data, tanh layers compress under "
        "fixed binning while ReLU (and linear) layers do not; the unbounded layers are also "
        "binned over one global range (`binning-layer`, `range=global`) and measured with KDE."),
    "tishby12-fullbatch": (
        "Saxe et al. (ICLR 2018): full-batch gradient descent has no gradient noise and so no "
        "diffusion phase (claim ii is not applicable), yet tanh networks compress much as with "
        "minibatches: compression does not need SGD's diffusion. Compare the gradient SNR "
        "figure and the compression numbers of the two cells."),
    "tishby12-noisy-labels": (
        "With p(y=1|x) = σ(γ(f(x) − θ)) the IB bound is a true curve rather than "
        "min(I(X;T), H(Y)), so claim iii (converged layers near the bound) can fail. It is "
        "judged on soft-label estimates (I(T;Y) from p(y|x)), together with whether each "
        "layer's inputs sit in their KL-closest cluster (the IB equations as β → ∞)."),
    "tishby12-noise-injected": (
        "Goldfeld et al. (ICML 2019) add Gaussian noise to every hidden layer so that I(X;T) is "
        "finite, and estimate it by sample propagation. Their public code (β = 0.005, one seed, "
        "10⁴ epochs, 100 noisy passes per input) ends at I(X;T) ≈ 7.76, 7.90, 7.85, 5.57, 2.30 "
        "nats for hidden layers 1–5; only layers 4 and 5 compress (peaks 7.09 nats near epoch "
        "559 and 4.92 near epoch 509), and compression goes with clustering of the representations."),
    "tishby12-batchsize": (
        "An open question from the paper's talk: do the drift→diffusion transition and "
        "compression survive a change of minibatch size? Full batch (0) has no SNR."),
    "tishby12-dropout": (
        "What dropout (training only; activations are recorded without it) does to fitting and "
        "compression: the paper does not say."),
}
# Goldfeld et al.'s single-seed run (β = 0.005), hidden layers 1-5: final I(X;T), nats
GOLDFELD_FINAL_NATS = (7.76, 7.90, 7.85, 5.57, 2.30)


def literature_section(experiment: str, cells: list[CellResults]) -> list:
    """The section for a critique experiment ([] for other experiments)."""
    if experiment not in EXPECTED:
        return []
    doc: list = [Heading(2, "What the literature reports"), Para(EXPECTED[experiment])]
    rows = [row for cell in cells for row in _noisy_rows(cell)]
    if rows:
        doc.append(Para("`noisy` estimates in nats (seed mean at the last analysed epoch; the "
                        "peak of the seed-mean curve and its epoch) beside Goldfeld et al.'s "
                        "final values:"))
        doc.append(Table(("cell", "layer", "Goldfeld final", "final", "peak (epoch)"), rows))
    return doc


def _noisy_rows(cell: CellResults) -> list[tuple[str, ...]]:
    estimate = next((e for e in cell.estimates if e.estimator == "noisy"), None)
    if estimate is None:
        return []
    rows = []
    hidden = len(cell.config["model"]["hidden"])
    for k in range(min(hidden, estimate.ixt.shape[2])):
        values = estimate.ixt[:, :, k]
        count = np.isfinite(values).sum(0)
        curve = np.where(count > 0, np.nansum(values, 0) / np.maximum(count, 1), np.nan) * math.log(2)
        if not np.isfinite(curve).any():
            final = peak = "not estimated"
        else:
            top = int(np.nanargmax(curve))
            final = f"{curve[np.flatnonzero(np.isfinite(curve))[-1]]:.2f}"
            peak = f"{curve[top]:.2f} ({int(estimate.epochs[top])})"
        known = f"{GOLDFELD_FINAL_NATS[k]:.2f}" if k < len(GOLDFELD_FINAL_NATS) else "—"
        rows.append((cell.name, str(k + 1), known, final, peak))
    return rows
