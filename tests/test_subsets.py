"""Stratified subsets of MNIST: class quotas, training subsets per seed, the evaluation subset."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from helpers import mnist_data_dir

from ibrepro.data import mnist, subsets
from ibrepro.errors import UserError

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
DATA = mnist_data_dir()


@pytest.fixture(scope="module")
def data() -> mnist.ImageData:
    if DATA is None:
        pytest.skip("MNIST files not found (../shared/data)")
    return mnist.load("mnist", DATA)


def quotas_reference(counts, n):
    """Largest remainder with exact fractions, ties to the lower class."""
    total = sum(counts)
    shares = [Fraction(c * n, total) for c in counts]
    quotas = [int(s) for s in shares]
    order = sorted(range(len(counts)), key=lambda i: (-(shares[i] - quotas[i]), i))
    for i in order[: n - sum(quotas)]:
        quotas[i] += 1
    return quotas


def test_class_quotas():
    assert subsets.class_quotas([3, 3, 3], 4).tolist() == [2, 1, 1]
    assert subsets.class_quotas(TRAIN_COUNTS, 60000).tolist() == TRAIN_COUNTS
    rng = np.random.default_rng(0)
    for _ in range(200):
        counts = rng.integers(1, 50, size=rng.integers(1, 8)).tolist()
        n = int(rng.integers(1, sum(counts) + 1))
        quotas = subsets.class_quotas(counts, n)
        assert quotas.tolist() == quotas_reference(counts, n)
        assert quotas.sum() == n and np.all(quotas <= counts)
        assert np.all(np.abs(quotas - np.array(counts) * n / sum(counts)) < 1)


def check_subset(indices, labels, n):
    assert indices.shape == (n,)
    assert np.all(np.diff(indices) > 0)  # sorted, no duplicates
    assert 0 <= indices[0] and indices[-1] < len(labels)
    counts = np.bincount(labels, minlength=10)
    ideal = counts * n / len(labels)
    assert np.all(np.abs(np.bincount(labels[indices], minlength=10) - ideal) < 1)


def test_train_subsets(data):
    drawn = subsets.train_subsets(data.y_train, 0.05, seeds=4, base_seed=7)
    assert drawn.shape == (4, 3000)
    for row in drawn:
        check_subset(row, data.y_train, 3000)
    assert all(not np.array_equal(drawn[i], drawn[j]) for i in range(4) for j in range(i))
    np.testing.assert_array_equal(drawn, subsets.train_subsets(data.y_train, 0.05, 4, 7))
    assert not np.array_equal(drawn[0], subsets.train_subsets(data.y_train, 0.05, 1, 8)[0])
    odd = subsets.train_subsets(data.y_train, 0.0123, seeds=2, base_seed=0)
    assert odd.shape == (2, 738)
    check_subset(odd[1], data.y_train, 738)
    everything = subsets.train_subsets(data.y_train, 1, seeds=2, base_seed=0)
    np.testing.assert_array_equal(everything, np.tile(np.arange(60000), (2, 1)))


def test_eval_subset(data):
    subset = subsets.eval_subset(data.y_test, 1001, seed=0)
    check_subset(subset, data.y_test, 1001)
    np.testing.assert_array_equal(subset, subsets.eval_subset(data.y_test, 1001, seed=0))
    assert not np.array_equal(subset, subsets.eval_subset(data.y_test, 1001, seed=1))
    np.testing.assert_array_equal(subsets.eval_subset(data.y_test, 10000, 3), np.arange(10000))


def test_stratified_subset_count_or_fraction():
    labels = np.repeat([2, 0, 1], [5, 3, 2])[np.random.default_rng(1).permutation(10)]
    half = subsets.stratified_subset(labels, 0.5, np.random.default_rng(0))
    assert np.bincount(labels[half]).tolist() == [2, 1, 2]  # 1.5/1/2.5 -> ties to lower
    three = subsets.stratified_subset(labels, 3, np.random.default_rng(0))
    assert np.bincount(labels[three], minlength=3).tolist() == [1, 1, 1]  # .9/.6/1.5


@pytest.mark.parametrize("size", [0, 11, 0.0, 1.5, 0.01, True, "half"])
def test_stratified_subset_bad_size(size):
    with pytest.raises(UserError):
        subsets.stratified_subset(np.zeros(10, int), size, np.random.default_rng(0))


def test_config_values_checked(data):
    for fraction in (0, 1.2, 1e-6, "0.5"):
        with pytest.raises(UserError, match="train.train_fraction"):
            subsets.train_subsets(data.y_train, fraction, 2, 0)
    for n in (0, 10001, 5.0):
        with pytest.raises(UserError, match="log.eval_samples"):
            subsets.eval_subset(data.y_test, n, 0)
