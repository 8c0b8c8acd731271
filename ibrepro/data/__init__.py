"""Datasets by name, prepared for one cell: training pool, evaluation set, per-seed splits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ibrepro.data.tishby12 import N_PATTERNS, tishby12_inputs, tishby12_labels
from ibrepro.errors import UserError
from ibrepro.footprint import DATASET_SHAPES


@dataclass(frozen=True)
class TrainingData:
    """Everything a cell trains and evaluates on (numpy, host side).

    Seeds train on rows `train_idx[s]` of the pool; activations are recorded on the eval
    set; `test_weight[s]` marks eval rows that are test data for seed s, `train_mask[s]`
    the eval rows seed s trained on (both eval-indexed).
    """

    x_pool: np.ndarray  # (P, d) float32
    y_pool: np.ndarray  # (P,) int32
    x_eval: np.ndarray  # (N, d) float32
    y_eval: np.ndarray  # (N,) int32
    train_idx: np.ndarray  # (S, n_train) int32
    train_mask: np.ndarray  # (S, N) bool
    n_classes: int
    pool_is_eval: bool  # the pool and the eval set are the same rows (train on eval rows)

    @property
    def test_weight(self) -> np.ndarray:
        return (~self.train_mask).astype(np.float32)


def _tishby12(config: dict) -> TrainingData:
    data, train = config["data"], config["train"]
    x = tishby12_inputs()
    y = tishby12_labels(data["gamma"], data["theta"], data["seed"])
    n_train = training_rows(config)
    if n_train < 4:
        raise UserError(f"train.train_fraction = {train['train_fraction']} gives {n_train} training rows "
                        "of 4096; at least 4 (2 per class) are needed")
    splits = np.stack(
        [np.sort(np.random.default_rng([train["seed"], s]).permutation(N_PATTERNS)[:n_train])
         for s in range(train["seeds"])]
    ).astype(np.int32)
    mask = np.zeros((train["seeds"], N_PATTERNS), bool)
    np.put_along_axis(mask, splits, True, axis=1)
    return TrainingData(x, y, x, y, splits, mask, 2, pool_is_eval=True)


def _images(config: dict) -> TrainingData:
    from ibrepro.data import mnist, subsets

    data, train, log = config["data"], config["train"], config["log"]
    images = mnist.load(config["dataset"], data["dir"] or None)
    splits = subsets.train_subsets(images.y_train, train["train_fraction"], train["seeds"], train["seed"])
    n_eval = min(log["eval_samples"], len(images.y_test))
    rows = subsets.eval_subset(images.y_test, n_eval, data["seed"])
    mask = np.zeros((train["seeds"], n_eval), bool)
    return TrainingData(images.x_train, images.y_train, images.x_test[rows], images.y_test[rows],
                      splits.astype(np.int32), mask, 10, pool_is_eval=False)


TRAIN_POOL_SIZES = {name: shape.pool for name, shape in DATASET_SHAPES.items()}


def training_rows(config: dict) -> int:
    """How many rows each seed of a resolved cell config trains on (without loading data)."""
    fraction = config["train"]["train_fraction"]
    if config["dataset"] == "tishby12":
        return max(1, int(round(fraction * N_PATTERNS)))
    return round(fraction * TRAIN_POOL_SIZES[config["dataset"]])


def full_batch(config: dict) -> bool:
    """Whether a cell trains by full-batch gradient descent (one minibatch per epoch, DESIGN §5)."""
    batch = config["train"]["batch_size"]
    return batch == 0 or batch >= training_rows(config)


def prepare(config: dict) -> TrainingData:
    """The arrays of one resolved cell config."""
    if config["dataset"] == "tishby12":
        return _tishby12(config)
    return _images(config)
