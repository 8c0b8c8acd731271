import numpy as np
import pytest

from ibrepro.train.schedule import logged_epochs


@pytest.mark.parametrize("epochs, snapshots", [(10000, 300), (8000, 274), (2000, 150), (50, 20), (7, 100), (1, 2)])
def test_schedule(epochs, snapshots):
    grid = logged_epochs(epochs, snapshots)
    assert grid[0] == 0 and grid[-1] == epochs
    assert (np.diff(grid) > 0).all()
    assert len(grid) <= max(snapshots, 2)
    assert len(grid) >= min(snapshots, epochs + 1) * 0.9
    early = grid[: min(5, len(grid))]
    assert (early == np.arange(len(early))).all()  # every epoch early on


def test_log_spacing_late():
    grid = logged_epochs(10000, 300)
    late = grid[grid > 100]
    ratios = late[1:] / late[:-1]
    assert ratios.max() / ratios.min() < 1.5  # roughly constant ratio: log-spaced
