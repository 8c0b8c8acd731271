"""Which epochs are logged: every epoch early, then log-spaced (DESIGN §3)."""

from __future__ import annotations

import numpy as np


def _log_grid(epochs: int, k: int) -> np.ndarray:
    grid = np.logspace(0, np.log2(epochs), k, base=2).astype(np.int64)
    return np.unique(np.concatenate([[0], grid, [epochs]]))


def logged_epochs(epochs: int, snapshots: int) -> np.ndarray:
    """About `snapshots` logged epochs in 0..epochs, always including 0 and `epochs`.

    A logged epoch counts completed epochs: 0 is before any update. The grid is the
    authors' unique(int(logspace(0, log2 E, K, base 2))) with K chosen as large as possible
    while at most `snapshots` distinct epochs result.
    """
    if snapshots >= epochs + 1:
        return np.arange(epochs + 1)
    lo, hi = 2, 64 * snapshots
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(_log_grid(epochs, mid)) <= snapshots:
            lo = mid
        else:
            hi = mid - 1
    return _log_grid(epochs, lo)
