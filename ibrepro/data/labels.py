"""p(y|x) of a cell's evaluation inputs: soft labels for noisy tishby12 runs, else one-hot.

tishby12 with `data.gamma > 0` draws each label once from p(y=1|x) = σ(γ(f(x) − θ)); the run
file keeps that p(y=1|x) as `data/p_y1`. Every other run has deterministic labels, whose
p(y|x) is the one-hot matrix of `data/y`.
"""

from __future__ import annotations

import numpy as np

from ibrepro.data.tishby12 import tishby12_p_y1


def noisy_p_y1(config: dict) -> np.ndarray | None:
    """p(y=1|x) (4096,) of a tishby12 run with noisy labels (data.gamma > 0), else None."""
    data = config.get("data", {})
    if config.get("dataset") != "tishby12" or not data.get("gamma", 0):
        return None
    return tishby12_p_y1(data["gamma"], data["theta"])


def label_distribution(config: dict, y_eval: np.ndarray, p_y1: np.ndarray | None = None) -> np.ndarray:
    """p(y|x) (N, C) of the evaluation inputs: from p(y=1|x) for noisy labels (`p_y1` as
    stored in the run file, else from the config), else one-hot of the labels `y_eval`."""
    y_eval = np.asarray(y_eval)
    p_y1 = noisy_p_y1(config) if p_y1 is None else np.asarray(p_y1, np.float64)
    if p_y1 is not None:
        return np.stack([1.0 - p_y1, p_y1], axis=1)
    return np.eye(int(y_eval.max()) + 1 if y_eval.size else 1)[y_eval]


def is_deterministic(p_y_given_x: np.ndarray) -> bool:
    """Whether every row of p(y|x) is one-hot (then soft labels are the drawn ones)."""
    return bool(np.all((p_y_given_x == 0) | (p_y_given_x == 1)))


def label_entropy(y: np.ndarray, p_y_given_x: np.ndarray | None = None) -> float:
    """H(Y) in bits over the evaluation inputs, each weighted 1/N: p(y) is the class frequency
    of the labels `y`, or the mean of p(y|x) (N, C) when given (soft labels)."""
    if p_y_given_x is None:
        _, counts = np.unique(np.asarray(y), return_counts=True)
        p = counts / counts.sum()
    else:
        p = np.asarray(p_y_given_x, np.float64).mean(axis=0)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())
