"""The 12-bit task of Shwartz-Ziv & Tishby, generated from its exact rule (DESIGN §2).

Bit i of a pattern stands for vertex v_i of an icosahedron; with s = Σ x_i and
m = ‖Σ x_i v_i‖₂, the label is 1 iff f(x) = s + m > θ (θ = 7.6 reproduces the original
data file). A noisy variant draws p(y=1|x) = σ(γ (f(x) − θ)).
"""

from __future__ import annotations

import numpy as np

N_BITS = 12
N_PATTERNS = 2**N_BITS
DEFAULT_THETA = 7.6

_A = 0.5257311121191336
_B = 0.85065080835204

# Vertex of bit i, i = 0 (most significant, first column) .. 11.
ICOSAHEDRON = np.array(
    [
        (0, _A, _B), (_A, _B, 0), (0, _A, -_B), (-_A, _B, 0),
        (_B, 0, -_A), (0, -_A, _B), (_A, -_B, 0), (-_A, -_B, 0),
        (-_B, 0, -_A), (0, -_A, -_B), (-_B, 0, _A), (_B, 0, _A),
    ]
)


def tishby12_inputs() -> np.ndarray:
    """All 4096 patterns as (4096, 12) float32, row r the binary of r, MSB first."""
    rows = np.arange(N_PATTERNS)[:, None]
    shifts = np.arange(N_BITS - 1, -1, -1)[None, :]
    return ((rows >> shifts) & 1).astype(np.float32)


def tishby12_score(x: np.ndarray) -> np.ndarray:
    """f(x) = Σ x_i + ‖Σ x_i v_i‖₂ for each row of x."""
    x = np.asarray(x, dtype=np.float64)
    return x.sum(axis=1) + np.linalg.norm(x @ ICOSAHEDRON, axis=1)


def tishby12_p_y1(gamma: float = 0.0, theta: float = DEFAULT_THETA) -> np.ndarray:
    """P(y=1|x) for the 4096 canonical patterns.

    gamma = 0 gives the deterministic labels (0/1); gamma > 0 the sigmoid σ(γ (f − θ)).
    """
    score = tishby12_score(tishby12_inputs())
    if gamma == 0:
        return (score > theta).astype(np.float64)
    return 1.0 / (1.0 + np.exp(-gamma * (score - theta)))


def tishby12_labels(gamma: float = 0.0, theta: float = DEFAULT_THETA, seed: int = 0) -> np.ndarray:
    """Labels (4096,) int32: the rule's labels, or for gamma > 0 one draw from p(y=1|x)."""
    p_y1 = tishby12_p_y1(gamma, theta)
    if gamma == 0:
        return p_y1.astype(np.int32)
    rng = np.random.default_rng(seed)
    return (rng.random(N_PATTERNS) < p_y1).astype(np.int32)
