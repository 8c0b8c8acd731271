"""A run file written before a config key existed resumes under the current config: the key
gets its default (issue 25), and a key that really differs still needs --force."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from ibrepro import config as cfg
from ibrepro.errors import UserError
from ibrepro.train.loop import train_cell
from ibrepro.train.runfile import complete_epochs

NEWER_KEYS = ("model.dropout", "log.dtype")  # keys added after the first run files were written


def tiny(*overrides: str) -> dict:
    return cfg.resolve({"name": "old", "dataset": "tishby12"},
                       ["train.seeds=2", "train.epochs=20", "log.snapshots=8", "model.hidden=[5, 3]",
                        "log.checkpoint_seconds=1e-9", *overrides])


def as_older_version(path: Path) -> None:
    """Rewrite the stored config as a version before NEWER_KEYS wrote it."""
    with h5py.File(path, "a") as f:
        config = json.loads(f.attrs["config"])
        for key in NEWER_KEYS:
            table, leaf = key.split(".")
            del config[table][leaf]
        f.attrs["config"] = json.dumps(config)


def stopped_run(path: Path) -> None:
    def stop(snapshot):
        if snapshot.epoch >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_cell("cell", tiny(), path, on_snapshot=stop)


def test_an_older_unfinished_run_resumes_to_the_same_result(tmp_path):
    reference = tmp_path / "reference.h5"
    train_cell("cell", tiny(), reference)
    path = tmp_path / "cell.h5"
    stopped_run(path)
    as_older_version(path)
    assert train_cell("cell", tiny(), path) == "resumed"
    with h5py.File(path) as new, h5py.File(reference) as old:
        assert complete_epochs(new) == complete_epochs(old) == len(old["epochs"])
        for name in ("params/0/kernel", "metrics/train_loss", "activations/1"):
            np.testing.assert_array_equal(new[name][()], old[name][()], err_msg=name)


def test_an_older_complete_run_is_skipped_and_a_real_difference_still_refused(tmp_path):
    path = tmp_path / "cell.h5"
    train_cell("cell", tiny(), path)
    as_older_version(path)
    assert train_cell("cell", tiny(), path) == "skipped"
    with pytest.raises(UserError, match=r"different config \(model.dropout\); use --force"):
        train_cell("cell", tiny("model.dropout=0.5"), path)
