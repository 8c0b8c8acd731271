"""The measured numbers that both the claims file and the figures show, defined once.

Every number a figure marks (a layer's compression onset, its I(X;T) fall, the late fall of
its I(T;Y), the drift→diffusion transition, the epochs to the compressed state per depth) is
computed here, with the claims' `Rules`, and the claims file records the same values: a
figure never measures on its own.
"""

from __future__ import annotations

import numpy as np

from ibrepro.claims import phases
from ibrepro.claims.rules import Rules
from ibrepro.claims.verdicts import interval

ONSET_STATISTIC = "geometric mean over seeds"  # of the per-seed onset and transition epochs
DEPTH_LAYERS = "the last hidden layer and the output (the later of the two)"


def layer_numbers(epochs: np.ndarray, ixt: np.ndarray, ity: np.ndarray, rules: Rules) -> list[dict]:
    """Per layer, [value, lo, hi] over seeds of: `onset_epoch` (the smoothed I(X;T) peak of a
    fall that counts; geometric mean), `compression_share`, `ixt_fall` and `ity_late_fall`
    (bits, smoothed peak − smoothed last value)."""
    compress = phases.fall(epochs, ixt, rules.min_fall_bits, rules.noise_z)
    onset = np.where(compress.counts, epochs[compress.peak_index], np.nan)
    share = phases.compression_share(epochs, ixt, rules.min_fall_bits, rules.noise_z)
    late = phases.fall(epochs, ity, rules.late_drop_bits, rules.noise_z)
    return [{"onset_epoch": epoch_interval(onset[:, k]), "compression_share": interval(share[:, k]),
             "ixt_fall": interval(compress.fall[:, k]), "ity_late_fall": interval(late.fall[:, k]),
             "ity_late_fall_counts": [int(late.counts[:, k].sum()), int(late.counts.shape[0])]}
            for k in range(ixt.shape[2])]


def epoch_interval(epochs: np.ndarray) -> list[float]:
    """[geometric mean, lo, hi] over seeds of per-seed epochs (epoch 0 counted as 1; NaN left out)."""
    logs = np.log10(np.maximum(np.asarray(epochs, float), 1.0))
    return interval(logs, lambda a: 10.0 ** np.mean(a, axis=-1))


def seed_transitions(epochs: np.ndarray, gradients: dict[str, np.ndarray]) -> np.ndarray:
    """Drift→diffusion epoch per seed and layer (S, L), as claim ii measures it."""
    return phases.drift_diffusion_epoch(epochs, gradients["mean_norm"], gradients["std_norm"])


def seed_mean_transition(epochs: np.ndarray, gradients: dict[str, np.ndarray]) -> np.ndarray:
    """Drift→diffusion epoch (L,) of each layer's seed-mean curves (DESIGN §5): the seed means
    of mean/‖W‖ and std/‖W‖, epoch 0 left out, through `phases.drift_diffusion_epoch`."""
    later = np.asarray(epochs) > 0
    weight = gradients["weight_norm"][:, later]
    mean = phases.summary(gradients["mean_norm"][:, later] / weight).center
    std = phases.summary(gradients["std_norm"][:, later] / weight).center
    return phases.drift_diffusion_epoch(np.asarray(epochs)[later], mean[None], std[None])[0]


def depth_epochs(epochs: np.ndarray, ixt: np.ndarray, n_hidden: int, rules: Rules) -> np.ndarray:
    """Epochs to the compressed state per seed (S,) of a cell with `n_hidden` hidden layers,
    for claim iv: the later of its last hidden layer and output (`DEPTH_LAYERS`); NaN = never."""
    reached = phases.epochs_to_compressed(epochs, ixt[:, :, [n_hidden - 1, n_hidden]],
                                          rules.compressed_fraction, rules.min_fall_bits, rules.noise_z)
    return np.where(np.isnan(reached).any(axis=1), np.nan, reached.max(axis=1))
