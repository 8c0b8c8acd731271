"""Plug-in information of discretised layers, counted over whole rows.

With X uniform over the N inputs and a deterministic network, a discretised layer T̂ gives
I(X;T̂) = H(T̂) and I(T̂;Y) = H(T̂) + H(Y) - H(T̂,Y). Each row (a layer's full symbol vector)
becomes one int64 key whose lowest `class_bits` bits hold the label, so sorting the keys of a
seed-epoch once yields both the T̂ runs and the (T̂,Y) runs.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ibrepro.analysis.estimators.base import Labels


def class_bits(labels: Labels) -> int:
    """Bits the label digit takes in a key."""
    return max(0, math.ceil(math.log2(labels.n_classes)))


def radix_bits(radix: int, width: int) -> float:
    """Bits a mixed-radix number of `width` digits in base `radix` needs."""
    return width * math.log2(radix)


def pack_rows(symbols: np.ndarray, radix: int, labels: Labels) -> np.ndarray:
    """Exact int64 row keys (B, N) for symbols (B, N, w) with values in [0, radix).

    Equal keys within a seed-epoch mean equal (row, label) pairs. Rows that fit in one
    mixed-radix number are encoded directly; wider rows are folded in a few columns at a
    time, replacing the partial key by its dense rank within the seed-epoch after each step.
    """
    symbols = np.asarray(symbols)
    b, n, w = symbols.shape
    cbits = class_bits(labels)
    key_bits = 62 - cbits
    index_bits = max(1, math.ceil(math.log2(n)))
    if radix_bits(radix, w) <= key_bits:
        return (_mixed_radix(symbols, radix) << cbits) | labels.codes
    step = max(1, int((key_bits - index_bits) / math.log2(radix)))
    key = np.zeros((b, n), np.int64)
    for start in range(0, w, step):
        part = symbols[:, :, start:start + step]
        key = _dense_rank((key * radix ** part.shape[2]) + _mixed_radix(part, radix))
    return (key << cbits) | labels.codes


def _mixed_radix(symbols: np.ndarray, radix: int) -> np.ndarray:
    key = np.zeros(symbols.shape[:2], np.int64)
    for j in range(symbols.shape[2] - 1, -1, -1):
        key *= radix
        key += symbols[:, :, j]
    return key


def _dense_rank(key: np.ndarray) -> np.ndarray:
    """Per row, replace each value by the rank of its distinct value (0, 1, ...)."""
    order = np.argsort(key, axis=1)
    ordered = np.take_along_axis(key, order, axis=1)
    new = np.zeros(ordered.shape, np.int64)
    np.cumsum(ordered[:, 1:] != ordered[:, :-1], axis=1, out=new[:, 1:])
    rank = np.empty_like(new)
    np.put_along_axis(rank, order, new, axis=1)
    return rank


@lru_cache(maxsize=8)
def _clogc_table(n: int) -> np.ndarray:
    """c * log2(c) for c = 0..n (0 for c = 0)."""
    c = np.arange(n + 1, dtype=np.float64)
    table = np.zeros(n + 1)
    table[1:] = c[1:] * np.log2(c[1:])
    return table


def _sum_clogc(starts: np.ndarray) -> np.ndarray:
    """Σ c·log2 c over the runs of each row; `starts` (B, N) marks run starts (column 0 set)."""
    b, n = starts.shape
    table = _clogc_table(n)
    n_runs = int(np.count_nonzero(starts))
    if 2 * n_runs <= starts.size:
        at = np.flatnonzero(starts)
        lengths = np.diff(at, append=starts.size)
        return np.add.reduceat(table[lengths], _row_firsts(starts))
    # Mostly singletons (which add 0): walk the repeated positions instead.
    repeats = np.flatnonzero(~starts)
    if repeats.size == 0:
        return np.zeros(b)
    new_run = np.empty(repeats.size, bool)
    new_run[0] = True
    np.not_equal(repeats[1:], repeats[:-1] + 1, out=new_run[1:])
    run_at = np.flatnonzero(new_run)
    lengths = np.diff(run_at, append=repeats.size) + 1
    return np.bincount(repeats[run_at] // n, weights=table[lengths], minlength=b)


def _run_starts(keys: np.ndarray, cbits: int) -> tuple[np.ndarray, np.ndarray]:
    """(T̂ run starts, (T̂,Y) run starts) (B, N) of sorted keys built by `pack_rows`."""
    b, n = keys.shape
    # keys are >= 0, so neighbours differ above the label bits exactly when their xor >= 2**cbits
    change = np.bitwise_xor(keys[:, 1:], keys[:, :-1])
    joint = np.empty((b, n), bool)
    joint[:, 0] = True
    np.not_equal(change, 0, out=joint[:, 1:])
    if not cbits:
        return joint, joint
    marginal = np.empty((b, n), bool)
    marginal[:, 0] = True
    np.greater_equal(change, 1 << cbits, out=marginal[:, 1:])
    return marginal, joint


def sorted_key_entropies(keys: np.ndarray, cbits: int) -> tuple[np.ndarray, np.ndarray]:
    """H(T̂) and H(T̂,Y) in bits per row of sorted keys (B, N) built by `pack_rows`."""
    n = keys.shape[1]
    marginal, joint = _run_starts(keys, cbits)
    h_joint = math.log2(n) - _sum_clogc(joint) / n
    h_marginal = h_joint if marginal is joint else math.log2(n) - _sum_clogc(marginal) / n
    return h_marginal, h_joint


def information_from_keys(keys: np.ndarray, labels: Labels) -> tuple[np.ndarray, np.ndarray]:
    """(I(X;T̂), I(T̂;Y)) in bits per row of keys (B, N) from `pack_rows`; sorts in place.

    With soft labels (`labels.soft`), I(T̂;Y) comes from p(y|x) (`soft_information`).
    """
    if labels.soft is not None:
        return soft_information(keys, labels.soft, class_bits(labels))
    keys.sort(axis=1)
    h_t, h_ty = sorted_key_entropies(keys, class_bits(labels))
    return h_t, h_t + labels.entropy - h_ty


def soft_information(keys: np.ndarray, p_y_given_x: np.ndarray, cbits: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(I(X;T̂), I(T̂;Y)) in bits per row of keys (B, N), X uniform, labels soft: p(y|x) (N, C).

    Inputs whose keys agree above the lowest `cbits` bits share a cell t (keys from
    `pack_rows`, or plain cluster indices with cbits = 0). p(y|t) is the mean of p(y|x) over
    the cell, so I(T̂;Y) = H(Y) − Σ_t p(t) H(Y|t) with p(y) the mean of p(y|x). Per cell,
    N p(t) H(Y|t) = s log2 s − Σ_y s_y log2 s_y, s_y the cell's sum of p(y|x), s = Σ_y s_y.
    """
    b, n = keys.shape
    order = np.argsort(keys, axis=1)
    starts, _ = _run_starts(np.take_along_axis(keys, order, axis=1), cbits)
    at = np.flatnonzero(starts)
    h_t = math.log2(n) - np.add.reduceat(_clogc_table(n)[np.diff(at, append=starts.size)],
                                          _row_firsts(starts)) / n
    sums = np.stack([np.add.reduceat(column[order].ravel(), at) for column in np.asarray(p_y_given_x, np.float64).T],
                    axis=1)
    per_cell = _xlog2x(sums.sum(axis=1)) - _xlog2x(sums).sum(axis=1)
    h_y_given_t = np.bincount(at // n, weights=per_cell, minlength=b) / n
    p_y = np.mean(p_y_given_x, axis=0)
    return h_t, -_xlog2x(p_y).sum() - h_y_given_t


def _row_firsts(starts: np.ndarray) -> np.ndarray:
    """Index, among all run starts of `starts` (B, N) in flat order, of each row's first."""
    first = np.zeros(starts.shape[0], np.intp)
    np.cumsum(np.count_nonzero(starts, axis=1)[:-1], out=first[1:])
    return first


def _xlog2x(values: np.ndarray) -> np.ndarray:
    """x log2 x elementwise, 0 at x = 0."""
    values = np.asarray(values, np.float64)
    return values * np.log2(np.where(values > 0, values, 1.0))


def plugin_reference(symbols: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(I(X;T̂), I(T̂;Y)) in bits for one layer-epoch: symbols (N, w), labels y (N,).

    The readable version of `information_from_symbols`, which the tests compare it against:
    each distinct row of `symbols` is one value of T̂, counted with np.unique;
    I(X;T̂) = H(T̂) and I(T̂;Y) = H(T̂) − Σ_y p(y) H(T̂ | Y=y).
    """
    symbols, y = np.asarray(symbols), np.asarray(y)

    def entropy(rows: np.ndarray) -> float:
        _, counts = np.unique(rows, axis=0, return_counts=True)
        p = counts / counts.sum()
        return float(-(p * np.log2(p)).sum())

    h_t = entropy(symbols)
    return h_t, h_t - sum((y == c).mean() * entropy(symbols[y == c]) for c in np.unique(y))


def soft_plugin_reference(symbols: np.ndarray, p_y_given_x: np.ndarray) -> tuple[float, float]:
    """(I(X;T̂), I(T̂;Y)) in bits for one layer-epoch with soft labels p(y|x) (N, C).

    The readable version of `soft_information`, which the tests compare it against: inputs
    are grouped by their row of `symbols`; p(y|t) is the mean of p(y|x) over a group;
    I(T̂;Y) = H(mean p(y|x)) − Σ_t p(t) H(p(y|t)).
    """
    def entropy(p: np.ndarray) -> float:
        p = p[p > 0]
        return float(-(p * np.log2(p)).sum())

    p_y_given_x = np.asarray(p_y_given_x, np.float64)
    _, cell, counts = np.unique(np.asarray(symbols), axis=0, return_inverse=True, return_counts=True)
    cell = cell.ravel()
    p_t = counts / len(cell)
    h_y_given_t = sum(p_t[t] * entropy(p_y_given_x[cell == t].mean(axis=0)) for t in range(len(counts)))
    return entropy(p_t), entropy(p_y_given_x.mean(axis=0)) - h_y_given_t


def information_from_symbols(symbols: np.ndarray, radix: int, labels: Labels) -> tuple[np.ndarray, np.ndarray]:
    """(I(X;T̂), I(T̂;Y)) in bits per seed-epoch for symbols (B, N, w) in [0, radix)."""
    return information_from_keys(pack_rows(symbols, radix, labels), labels)
