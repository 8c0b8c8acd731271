"""Class-stratified subsets of a labelled set: each class gets its share, rounded to sum right."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ibrepro.errors import UserError


def class_quotas(counts: Sequence[int], n: int) -> np.ndarray:
    """How many of `n` picks each class gets: its share n·c/N rounded so they sum to n.

    Floors of the exact shares, plus one for the classes with the largest remainders
    (ties to the lower class). Integer arithmetic, so the same counts always get the
    same quotas.
    """
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    scaled = counts * n
    quotas = scaled // total
    by_remainder = np.argsort(-(scaled % total), kind="stable")
    quotas[by_remainder[: n - int(quotas.sum())]] += 1
    return quotas


def stratified_subset(
    labels: np.ndarray, fraction_or_count: float | int, rng: np.random.Generator
) -> np.ndarray:
    """Sorted indices of a class-stratified random subset of `labels`.

    An int is the subset size; a float in (0, 1] the fraction of all rows (rounded).
    Each class gets `class_quotas` of the total, drawn without replacement by `rng`.
    """
    labels = np.asarray(labels)
    n = _subset_size(fraction_or_count, labels.size)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    members = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])
    picks = [
        rng.choice(rows, size=k, replace=False)
        for rows, k in zip(members, class_quotas(counts, n), strict=True)
    ]
    return np.sort(np.concatenate(picks))


def _subset_size(fraction_or_count: float | int, total: int) -> int:
    """The number of rows a subset size or fraction asks for; UserError if out of range."""
    if isinstance(fraction_or_count, (int, np.integer)) and not isinstance(fraction_or_count, bool):
        n = int(fraction_or_count)
        if not 1 <= n <= total:
            raise UserError(f"subset size {n} is not between 1 and the {total} rows")
        return n
    if isinstance(fraction_or_count, (float, np.floating)) and 0 < fraction_or_count <= 1:
        n = round(float(fraction_or_count) * total)
        if n < 1:
            raise UserError(f"fraction {fraction_or_count} of {total} rows selects no row")
        return n
    raise UserError(f"subset fraction {fraction_or_count!r} is not a number in (0, 1]")


def train_subsets(labels: np.ndarray, fraction: float, seeds: int, base_seed: int) -> np.ndarray:
    """(seeds, n) sorted training indices, one stratified subset per seed, all of one size.

    Seed s draws with np.random.default_rng([base_seed, s]); n = round(fraction · N).
    """
    number = isinstance(fraction, (int, float)) and not isinstance(fraction, bool)
    if not number or not 0 < fraction <= 1:
        raise UserError(f"train.train_fraction must be a number in (0, 1], got {fraction!r}")
    n = round(fraction * len(labels))
    if n < 1:
        raise UserError(f"train.train_fraction = {fraction} selects no training image")
    return np.stack(
        [stratified_subset(labels, n, np.random.default_rng([base_seed, s])) for s in range(seeds)]
    )


def eval_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """(n,) sorted indices of a stratified subset of `labels` shared by all seeds."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= len(labels):
        raise UserError(f"log.eval_samples must be an integer in 1..{len(labels)}, got {n!r}")
    return stratified_subset(labels, int(n), np.random.default_rng(seed))
