"""Matrix-based Rényi α-information (Sánchez Giraldo et al. 2015; Yu et al. 2019; Wickstrøm et al. 2019).

For a minibatch of n inputs and a variable Z observed on them, the Gram matrix of a Gaussian
kernel K_ij = exp(−‖z_i − z_j‖² / 2σ²), normalised by its trace (A = K / tr K), stands in for
a density; its eigenvalues λ give the matrix-based entropy S_α(A) = log2(Σ λ^α) / (1 − α).
The joint of two variables is the Hadamard product, normalised by its trace, and
I_α(X;T) = S_α(X) + S_α(T) − S_α(X,T); I_α(T;Y) likewise with the label kernel K_ij = 1 when
y_i = y_j (the Gram matrix of one-hot labels), so S_α(Y) is the Rényi entropy of the batch's
class proportions. X is the run's recorded inputs (`data/x`), with its own kernel width.

As those papers do, the estimate is averaged over `n_batches` random minibatches of `batch`
inputs each (drawn without replacement within a batch). The draw is made once from `seed`
and is the same for every seed, epoch and layer, so curves over epochs compare like with
like; the attrs record `batch`, `n_batches` and `seed`.

Kernel width (`sigma` for T, `sigma_x` for X): `nnK` takes, in each minibatch and for each
variable, σ = the mean over the batch of the Euclidean distance from each point to its K-th
nearest other point (a nearest-neighbour rule in the spirit of Wickstrøm et al.); a number
fixes σ. When the rule gives σ = 0 (K+1 or more identical points everywhere) σ is floored at
`SIGMA_FLOOR`, so identical points share a kernel of 1 and distinct ones 0: the plug-in
entropy of the batch's distinct rows.

What it measures: S_α is a functional of the kernel matrix, not of a density, so its values
depend on σ (a larger σ merges points and lowers S). With a fixed σ it is a smooth,
finite summary that does not diverge for deterministic T; it is not Shannon's I(X;T), which
for deterministic networks is constant or infinite (Saxe et al.; Goldfeld et al.). For a
Gaussian kernel I_α(X;X) = 2S_α(X) − S_α(X,X) ≤ S_α(X), with equality when the kernel
entries are 0 or 1 (well separated clusters). α → 1 gives the von Neumann (Shannon-like)
entropy; α = 1 itself is excluded (the formula divides by 1 − α).

Speed: one compiled function per block builds every seed-epoch's Gram matrices for all
minibatches and takes their eigenvalues with `eigvalsh` on JAX's default device, in float64:
batched on an accelerator, one matrix at a time on CPU (see `_eigenvalues`). S_α(X) and
S_α(Y) do not depend on the seed-epoch and are computed once per block.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np

from ibrepro.analysis.estimators.base import Block, Estimator, Labels, Param, Value
from ibrepro.analysis.estimators.placement import thread_device
from ibrepro.errors import UserError

SIGMA_FLOOR = 1e-12
_NN_RULE = re.compile(r"nn([0-9]+)")


def parse_sigma(text: str) -> tuple[int, float]:
    """(K, 0.0) for the rule 'nnK', (0, σ) for a fixed positive σ; UserError otherwise."""
    rule = _NN_RULE.fullmatch(text.strip())
    if rule:
        k = int(rule.group(1))
        if k < 1:
            raise UserError(f"kernel width rule {text!r}: the neighbour K in nnK must be at least 1")
        return k, 0.0
    try:
        sigma = float(text)
    except ValueError:
        raise UserError(f"kernel width must be nnK (K-th neighbour rule) or a positive number, got {text!r}") from None
    if not (math.isfinite(sigma) and sigma > 0):
        raise UserError(f"kernel width must be a positive number, got {text!r}")
    return 0, sigma


@lru_cache(maxsize=8)
def minibatches(n: int, batch: int, n_batches: int, seed: int) -> np.ndarray:
    """The minibatch draw (n_batches, batch): input indices, without replacement in a batch."""
    if batch > n:
        raise UserError(f"renyi: batch={batch} is larger than the {n} recorded inputs")
    rng = np.random.default_rng(seed)
    draw = np.stack([rng.choice(n, batch, replace=False) for _ in range(n_batches)])
    draw.flags.writeable = False
    return draw


def entropy(eigenvalues, alpha: float):
    """S_α in bits from eigenvalues of trace-1 matrices (last axis); tiny negatives count 0."""
    xp = jnp if isinstance(eigenvalues, jax.Array) else np
    power = xp.sum(xp.maximum(eigenvalues, 0.0) ** alpha, axis=-1)
    return xp.log2(power) / (1.0 - alpha)


# ---- readable reference ----------------------------------------------------------------------


def _gram_reference(z: np.ndarray, rule: tuple[int, float]) -> np.ndarray:
    n = len(z)
    dist = np.array([[math.dist(z[i], z[j]) for j in range(n)] for i in range(n)])
    k, sigma = rule
    if k:
        sigma = max(np.mean([sorted(np.delete(dist[i], i))[k - 1] for i in range(n)]), SIGMA_FLOOR)
    return np.exp(-dist**2 / (2 * sigma**2))


def renyi_reference(t: np.ndarray, x: np.ndarray, labels: Labels, alpha: float, sigma: str,
                    sigma_x: str, batch: int, n_batches: int, seed: int) -> tuple[float, float]:
    """(I_α(X;T), I_α(T;Y)) in bits for one layer-epoch t (N, w), by the definitions (slow)."""

    def s(k: np.ndarray) -> float:
        return float(entropy(np.linalg.eigvalsh(k / np.trace(k)), alpha))

    ixt, ity = [], []
    for rows in minibatches(len(t), batch, n_batches, seed):
        k_t = _gram_reference(t[rows].astype(np.float64), parse_sigma(sigma))
        k_x = _gram_reference(x[rows].reshape(batch, -1).astype(np.float64), parse_sigma(sigma_x))
        y = labels.codes[rows]
        k_y = (y[:, None] == y[None, :]).astype(np.float64)
        ixt.append(s(k_x) + s(k_t) - s(k_x * k_t))
        ity.append(s(k_y) + s(k_t) - s(k_y * k_t))
    return float(np.mean(ixt)), float(np.mean(ity))


# ---- the fast kernel ---------------------------------------------------------------------------


UNROLL_DIMS = 32  # point dimensions up to this are unrolled in the distance sum


def _squared_distances(z):
    """‖z_i − z_j‖² (..., n, n) summed dimension by dimension (exactly 0 for equal points)."""

    def dim(u):
        col = z[..., u]
        return (col[..., :, None] - col[..., None, :]) ** 2

    if z.shape[-1] <= UNROLL_DIMS:
        return sum((dim(u) for u in range(1, z.shape[-1])), dim(0))
    return jax.lax.fori_loop(1, z.shape[-1], lambda u, acc: acc + dim(u), dim(0))


def _gram(z, nn: int, sigma):
    """Gaussian Gram matrices (..., n, n) of points z (..., n, d) with width rule nn or σ."""
    dist2 = _squared_distances(z)
    if nn:
        # K-th nearest other point: the (K+1)-th smallest including the point itself; the
        # largest of top_k's values, not its last column (XLA then sorts whole rows)
        kth = -jax.lax.top_k(-dist2, nn + 1)[0].min(axis=-1)
        sigma = jnp.maximum(jnp.sqrt(kth).mean(axis=-1), SIGMA_FLOOR)[..., None, None]
    return jnp.exp(-dist2 / (2.0 * sigma * sigma))


def _eigenvalues(matrices, batched: bool):
    """eigvalsh of symmetric matrices (..., n, n): batched, or one matrix at a time.

    jaxlib's CPU kernel spreads a batch over XLA's thread pool and waits in a pool thread;
    with several analysis workers running at once on a 2-core host every pool thread ended up
    waiting and the process hung (jaxlib 0.10). One matrix per call does not use the pool.
    """
    if batched:
        return jnp.linalg.eigvalsh(matrices)
    n = matrices.shape[-1]
    return jax.lax.map(jnp.linalg.eigvalsh, matrices.reshape(-1, n, n)).reshape(matrices.shape[:-1])


@partial(jax.jit, static_argnames=("nn", "nn_x", "batched"))
def _kernel(t, x, y, sigma, sigma_x, alpha, *, nn, nn_x, batched):
    """(I_α(X;T), I_α(T;Y)) per seed-epoch for minibatches t (B, J, n, w), x (J, n, d), y (J, n)."""
    n = t.shape[-2]
    k_t = _gram(t, nn, sigma)  # (B, J, n, n); every Gram has trace n
    k_x = _gram(x, nn_x, sigma_x)[None]
    k_y = (y[:, :, None] == y[:, None, :]).astype(t.dtype)[None]
    fixed = _eigenvalues(jnp.stack([k_x[0], k_y[0]]) / n, batched)  # (2, J, n)
    varying = _eigenvalues(jnp.stack([k_t, k_x * k_t, k_y * k_t], axis=2) / n, batched)  # (B, J, 3, n)
    s_x, s_y = entropy(fixed, alpha)
    s = entropy(varying, alpha)
    return (s_x + s[:, :, 0] - s[:, :, 1]).mean(axis=1), (s_y + s[:, :, 0] - s[:, :, 2]).mean(axis=1)


def gram_entropy(points: np.ndarray, sigma: str, alpha: float) -> float:
    """S_α in bits of the trace-normalised Gaussian Gram matrix of points (n, d)."""
    nn, fixed = parse_sigma(sigma)
    with jax.enable_x64(True):
        gram = _gram(jnp.asarray(points, jnp.float64), nn, fixed)
        return float(entropy(jnp.linalg.eigvalsh(gram / len(points)), alpha))


def renyi_information(acts: np.ndarray, inputs: np.ndarray, labels: Labels, alpha: float, sigma: str,
                      sigma_x: str, batch: int, n_batches: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(I_α(X;T), I_α(T;Y)) in bits per seed-epoch for activations (B, N, w)."""
    rows = minibatches(acts.shape[1], batch, n_batches, seed)
    nn, fixed = parse_sigma(sigma)
    nn_x, fixed_x = parse_sigma(sigma_x)
    for k in {nn, nn_x} - {0}:
        if k >= batch:
            raise UserError(f"renyi: kernel width rule nn{k} needs batch > {k}, got batch={batch}")
    device = thread_device()
    with jax.enable_x64(True):
        put = partial(jax.device_put, device=device)
        ixt, ity = _kernel(put(acts[:, rows].astype(np.float64)),
                           put(inputs.reshape(len(inputs), -1)[rows].astype(np.float64)),
                           put(labels.codes[rows]), fixed, fixed_x, alpha, nn=nn, nn_x=nn_x,
                           batched=device.platform != "cpu")
        return np.asarray(ixt), np.asarray(ity)


def _estimate(block: Block, labels: Labels, params: Mapping[str, Value], context: None):
    if block.inputs is None or len(block.inputs) != labels.n:
        raise UserError("renyi needs the run's recorded inputs (data/x) to measure I(X;T)")
    values = (float(params["alpha"]), str(params["sigma"]), str(params["sigma_x"]),
              int(params["batch"]), int(params["n_batches"]), int(params["seed"]))
    return {"": renyi_information(block.acts, block.inputs, labels, *values)}


def _check(params: Mapping[str, Value]) -> None:
    if params["alpha"] == 1.0:
        raise UserError("renyi: alpha must differ from 1 (S_α divides by 1 - α); try 1.01")
    for name in ("sigma", "sigma_x"):
        k, _ = parse_sigma(str(params[name]))
        if k >= int(params["batch"]):
            raise UserError(f"renyi: {name}=nn{k} needs batch > {k}, got batch={params['batch']}")


RENYI = Estimator(
    name="renyi",
    params=(
        Param("alpha", float, 1.01, "a", "order α of the entropy (> 0, not 1)", low=0.0, low_open=True),
        Param("sigma", str, "nn10", "s", "kernel width for T: nnK (mean distance to the K-th "
              "nearest neighbour in each minibatch) or a fixed positive number"),
        Param("sigma_x", str, "nn10", "sx", "kernel width for the inputs X, as sigma"),
        Param("batch", int, 100, "b", "inputs per minibatch", low=2, high=10**5),
        Param("n_batches", int, 10, "nb", "minibatches averaged over", low=1, high=10**5),
        Param("seed", int, 0, "seed", "seed of the minibatch draw", low=0),
    ),
    estimate=_estimate,
    check=_check,
    batch_limit=8,
    fixed_batch=True,
    help="matrix-based Rényi α-information from Gaussian Gram matrices over minibatches "
         "(Sánchez Giraldo et al.; Yu et al.; Wickstrøm et al.)",
)
