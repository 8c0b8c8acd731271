"""Did training fit at all? Claims about compression mean nothing for a run that did not.

`training_fit` reads a run file's metrics and says whether the networks learned: a final
train accuracy near chance (the majority-class share) or a diverged loss (not finite, or
above where it started) means not. The claims stage reports such a run as "not applicable:
training did not fit".
"""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np

from ibrepro.train.runfile import complete_epochs

CHANCE_MARGIN = 0.05  # accuracy within this of the majority-class share counts as chance


@dataclass(frozen=True)
class Fit:
    """Whether training fitted, and why not (empty when it did)."""

    fitted: bool
    reason: str = ""


def judge_fit(train_acc: np.ndarray, train_loss: np.ndarray, labels: np.ndarray) -> Fit:
    """Fit from train accuracy and loss (S, E) over the complete snapshots and the labels."""
    if train_acc.shape[1] < 2:
        return Fit(False, "fewer than two logged epochs")
    chance = np.bincount(labels).max() / labels.size
    final_loss, first_loss = train_loss[:, -1], train_loss[:, 0]
    if not np.isfinite(final_loss).all():
        return Fit(False, f"the training loss diverged (not finite in {int((~np.isfinite(final_loss)).sum())} seed(s))")
    if np.median(final_loss) > np.median(first_loss):
        return Fit(False, f"the training loss rose from {np.median(first_loss):.3g} to {np.median(final_loss):.3g}")
    accuracy = float(np.nanmedian(train_acc[:, -1]))
    if accuracy <= chance + CHANCE_MARGIN:
        return Fit(False, f"final train accuracy {accuracy:.3f} is near chance ({chance:.3f})")
    return Fit(True)


def training_fit(run: h5py.File) -> Fit:
    """`judge_fit` of an open run file's complete snapshots."""
    n = complete_epochs(run)
    return judge_fit(np.asarray(run["metrics/train_acc"][:, :n]), np.asarray(run["metrics/train_loss"][:, :n]),
                     np.asarray(run["data/y"][()]))
