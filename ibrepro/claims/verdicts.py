"""Verdict words, 95 % bootstrap intervals over seeds, and the threshold test on an interval.

A number that is a statistic over seeds is reported as [value, ci_low, ci_high]: the value on
all seeds and the 2.5 / 97.5 percentiles of the same statistic on seeds resampled with
replacement. A verdict needs the whole interval on one side of its threshold; otherwise it is
"inconclusive". With fewer than two seeds there is no interval (NaN) and so no verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
INCONCLUSIVE = "inconclusive"
NOT_APPLICABLE = "not applicable"
NOT_MEASURABLE = "not measurable"
WORDS = (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, NOT_APPLICABLE, NOT_MEASURABLE)

N_RESAMPLES = 2000
LEVEL = 0.95
BOOTSTRAP_SEED = 0  # fixed: the same inputs always give the same interval


@dataclass(frozen=True)
class Claim:
    """One claim's verdict on one estimate group: the word, why, the rule, the numbers."""

    verdict: str
    reason: str
    rule: str
    thresholds: dict = field(default_factory=dict)
    measured: dict = field(default_factory=dict)  # name -> [value, lo, hi] or a plain value

    def to_json(self) -> dict:
        return {"verdict": self.verdict, "reason": self.reason,
                "rule": {"text": self.rule, "thresholds": self.thresholds},
                "measured": self.measured}


def interval(per_seed: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray] | None = None,
             rng: np.random.Generator | None = None) -> list[float]:
    """[value, ci_low, ci_high] of a statistic (default: the mean) of per-seed values.

    NaNs are left out first (inf stays: e.g. 'never' as an infinite time). `statistic` maps
    (..., S) to (...). NaNs where nothing is left; no interval (NaN bounds) with a single seed.
    """
    values = np.asarray(per_seed, dtype=float).ravel()
    values = values[~np.isnan(values)]
    statistic = statistic or (lambda a: a.mean(axis=-1))
    if values.size == 0:
        return [float("nan")] * 3
    value = float(statistic(values))
    if values.size < 2:
        return [value, float("nan"), float("nan")]
    rng = rng or np.random.default_rng(BOOTSTRAP_SEED)
    with np.errstate(invalid="ignore"):
        draws = statistic(values[rng.integers(0, values.size, (N_RESAMPLES, values.size))])
    return [value, *_percentiles(draws)]


def ratio_interval(a: np.ndarray, b: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray],
                   rng: np.random.Generator | None = None) -> list[float]:
    """[value, lo, hi] of statistic(a) / statistic(b), seeds of a and b resampled independently
    (inf allowed in a and b: e.g. 'never' as an infinite time, so a ratio may be inf). A resample
    whose ratio is undefined (inf / inf: neither side ever) counts against the claim at both
    ends: as −inf for `lo` and +inf for `hi`."""
    a = np.asarray(a, float)[~np.isnan(a)]
    b = np.asarray(b, float)[~np.isnan(b)]
    if a.size == 0 or b.size == 0:
        return [float("nan")] * 3
    with np.errstate(invalid="ignore", divide="ignore"):
        value = float(statistic(a) / statistic(b))
        if a.size < 2 or b.size < 2:
            return [value, float("nan"), float("nan")]
        rng = rng or np.random.default_rng(BOOTSTRAP_SEED)
        draws = (statistic(a[rng.integers(0, a.size, (N_RESAMPLES, a.size))])
                 / statistic(b[rng.integers(0, b.size, (N_RESAMPLES, b.size))]))
    undefined = np.isnan(draws)
    low = _percentiles(np.where(undefined, -np.inf, draws))[0]
    return [value, low, _percentiles(np.where(undefined, np.inf, draws))[1]]


def _percentiles(draws: np.ndarray) -> list[float]:
    """The central LEVEL interval of bootstrap draws (nearest draw: inf-safe)."""
    low, high = np.percentile(draws, [50 * (1 - LEVEL), 50 * (1 + LEVEL)], method="nearest")
    return [float(low), float(high)]


def above(measured: list[float], threshold: float) -> str:
    """SUPPORTED when the interval lies above the threshold, NOT_SUPPORTED when at or below
    it, INCONCLUSIVE when it straddles it or there is no interval (NaN). Infinite ends count
    (a ratio whose denominator side is 'never' lies wholly above any threshold)."""
    _, low, high = measured
    if not np.isnan(low) and low > threshold:
        return SUPPORTED
    if not np.isnan(high) and high <= threshold:
        return NOT_SUPPORTED
    return INCONCLUSIVE


def at_most(measured: list[float], threshold: float) -> str:
    """SUPPORTED when the interval lies at or below the threshold, NOT_SUPPORTED when above."""
    _, low, high = measured
    if not np.isnan(high) and high <= threshold:
        return SUPPORTED
    if not np.isnan(low) and low > threshold:
        return NOT_SUPPORTED
    return INCONCLUSIVE


def both(*words: str) -> str:
    """The verdict of a claim that needs several tests to pass."""
    if NOT_SUPPORTED in words:
        return NOT_SUPPORTED
    return SUPPORTED if all(w == SUPPORTED for w in words) else INCONCLUSIVE


def interval_text(measured: list[float], digits: int = 3) -> str:
    """'0.71 [0.65, 0.78]' ('–' for NaN; no brackets without an interval)."""
    value, low, high = (0.0 if abs(float(v)) < 5e-10 else float(v) for v in measured)  # rounding noise
    if np.isnan(value):
        return "–"
    text = f"{value:.{digits}g}"
    if np.isnan(low) or np.isnan(high):
        return text
    return f"{text} [{low:.{digits}g}, {high:.{digits}g}]"


def training_fit(train_acc: np.ndarray | None, train_loss: np.ndarray | None,
                 chance: float, margin: float) -> str:
    """'' when training fitted, else why not: the seeds' median final train accuracy is within
    `margin` of chance (the majority-class share), or the final train loss is not finite in
    most seeds or its median rose above the first logged one (diverged). Missing metrics
    give ''."""
    if train_loss is not None and np.size(train_loss):
        loss = np.asarray(train_loss, float)
        final = loss[:, -1]
        if np.mean(~np.isfinite(final)) > 0.5:
            return "training diverged (final train loss not finite)"
        first, last = np.nanmedian(loss[:, 0]), np.nanmedian(final)
        if last > first:
            return f"training diverged (median train loss rose from {first:.3g} to {last:.3g})"
    if train_acc is None or not np.size(train_acc):
        return ""
    final = np.asarray(train_acc, float)[:, -1]
    if not np.isfinite(final).any():
        return "training diverged (final train accuracy not finite)"
    median = float(np.nanmedian(final))
    if median < chance + margin:
        return (f"training did not fit (median final train accuracy {median:.3f}, chance "
                f"{chance:.3f})")
    return ""
