"""How close a hard encoder is to a fixed point of the IB self-consistent equations.

See `ibrepro.ib.curve` for the equations; a layer's discretisation (e.g. its bins) gives a
hard encoder p(t|x) (`symbols_to_encoder`, or cluster indices). Two measures:

- `self_consistency`: by how much one IB update moves the encoder, for every beta of a grid
  (the residual; for hard encoders with deterministic labels it is fixed at H(T) - H(Y)).
- `nearest_decoder_share`: the beta -> inf limit, where a hard encoder is a fixed point when
  every input sits in the cluster whose decoder p(y|t) is KL-closest to its p(y|x).
"""

from __future__ import annotations

import numpy as np

from ibrepro.ib.curve import LN2, decoder, kl_rows, logsumexp, times_inf_safe


def symbols_to_encoder(symbols: np.ndarray) -> np.ndarray:
    """One-hot encoder p(t|x) (N, |T|) of a deterministic layer from its discrete symbols.

    `symbols` is (N,) or (N, units) integers (e.g. per-unit bin indices); a whole row is one
    symbol T, and the columns are the distinct rows in sorted order.
    """
    symbols = np.asarray(symbols)
    rows = symbols.reshape(symbols.shape[0], -1)
    _, inverse = np.unique(rows, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    encoder = np.zeros((rows.shape[0], inverse.max() + 1 if inverse.size else 0))
    encoder[np.arange(rows.shape[0]), inverse] = 1.0
    return encoder


def self_consistency(
    p_x: np.ndarray,
    p_y_given_x: np.ndarray,
    encoder: np.ndarray,
    betas: np.ndarray,
) -> tuple[float, float]:
    """How well an encoder satisfies the IB equations: (best beta, residual in bits).

    From the encoder p(t|x) (|X|, |T|), or a hard encoder as cluster indices (|X|,), form p(t)
    and p(y|t); for each beta apply one IB update
    p'(t|x) = p(t) exp(-beta KL[p(y|x) || p(y|t)]) / Z(x, beta) and measure
    residual(beta) = sum_x p(x) KL[p(t|x) || p'(t|x)]. Returns the grid beta with the smallest
    residual (the smallest such beta on ties) and that residual. A fixed point of the IB
    equations at beta has residual 0 there.

    No smoothing is needed for hard (one-hot) encoders: with d(x,t) = KL[p(y|x) || p(y|t)],
        residual(beta) = I(X;T) + beta E[d(x,t)] + E_x log Z(x, beta)    (nats),
    where terms with p(t|x) = 0 are zero (0 log 0 = 0) and d is finite wherever p(t|x) > 0
    (x itself contributes to p(y|t)); d = inf elsewhere just makes exp(-beta d) = 0. log Z
    depends on x only through p(y|x) and on clusters only through their decoders, so it is
    computed once per distinct row and distinct decoder, for all betas at once.

    A hard encoder is a fixed point only as beta -> inf, only if every input sits in
    the cluster whose decoder is KL-closest to its p(y|x), and only if no two clusters share a
    decoder (the equations split an input between equal decoders in proportion to p(t)). E.g.
    with deterministic labels and pure clusters the residual is H(T) - H(Y) for every beta > 0:
    zero only when the layer keeps exactly the label.
    """
    betas = np.asarray(betas, dtype=float)
    if betas.ndim != 1 or betas.size == 0 or np.any(betas < 0) or not np.all(np.isfinite(betas)):
        raise ValueError("betas must be a non-empty 1-d grid of finite values >= 0")
    p_x = np.asarray(p_x, dtype=float)
    encoder = np.asarray(encoder)
    if encoder.ndim not in (1, 2) or encoder.shape[0] != p_x.size or p_y_given_x.shape[0] != p_x.size:
        raise ValueError("p_x (N,), p_y_given_x (N, |Y|) and encoder (N, |T|) must agree in N")
    keep = p_x > 0
    p_x, p_y_given_x, encoder = p_x[keep], np.asarray(p_y_given_x, float)[keep], encoder[keep]
    if encoder.ndim == 1:  # a hard encoder given as cluster indices: no dense (N, |T|) array
        _, ts = np.unique(encoder, return_inverse=True)
        xs, ts = np.arange(p_x.size), ts.ravel()
        p_t = np.bincount(ts, weights=p_x)
        dec = np.stack([np.bincount(ts, weights=p_x * p_y_given_x[:, y]) for y in
                        range(p_y_given_x.shape[1])], axis=1) / p_t[:, None]
        in_cluster = np.ones(p_x.size)
    else:
        p_t = p_x @ encoder
        used = p_t > 0
        encoder, p_t = encoder[:, used], p_t[used]
        dec = decoder(p_x, p_y_given_x, encoder, p_t)
        xs, ts = np.nonzero(encoder)  # sums over p(t|x) > 0 only: O(N) for hard encoders
        in_cluster = encoder[xs, ts]
    rows, inverse = np.unique(p_y_given_x, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    # clusters with equal decoders (to 12 decimals) enter Z as one, with their summed p(t)
    _, group = np.unique(np.round(dec, 12), axis=0, return_inverse=True)
    group = group.ravel()
    p_g = np.bincount(group, weights=p_t)
    dec_g = np.stack([np.bincount(group, weights=p_t * dec[:, y]) for y in range(dec.shape[1])],
                     axis=1) / p_g[:, None]
    dist = kl_rows(rows, dec_g)  # (R, G), may hold inf
    weight = p_x[xs] * in_cluster
    ixt = np.sum(weight * np.log(in_cluster / p_t[ts]))
    mean_dist = np.sum(weight * dist[inverse[xs], group[ts]])
    # log Z(row, beta) = logsumexp_g (log p(g) - beta d(row, g)), shape (B, R), in chunks of
    # betas that keep the (chunk, R, G) array near 2^22 entries
    chunk = max(1, 2**22 // dist.size)
    log_z = np.concatenate([
        logsumexp(np.log(p_g) - times_inf_safe(b[:, None, None], dist[None]), axis=2)
        for b in np.split(betas, np.arange(chunk, betas.size, chunk))
    ])
    weight_rows = np.bincount(inverse, weights=p_x, minlength=rows.shape[0])
    residual = (ixt + betas * mean_dist + log_z @ weight_rows) / LN2
    residual = np.maximum(residual, 0.0)  # rounding can leave -1e-16
    best = int(np.argmin(residual))
    return float(betas[best]), float(residual[best])


def nearest_decoder_share(p_x: np.ndarray, p_y_given_x: np.ndarray, clusters: np.ndarray,
                          tol: float = 1e-9) -> float | np.ndarray:
    """Share of the input mass p(x) whose own cluster has the KL-closest decoder to its p(y|x).

    `clusters` holds non-negative integer cluster indices (N,) of one hard encoder, or (R, N)
    of R hard encoders on the same inputs (e.g. permutations of one; unused indices are fine):
    a float, or (R,) shares. An input counts when no cluster's decoder is closer than its own
    by more than `tol` nats (equal decoders tie). As beta -> inf the IB update sends every
    input to its KL-closest cluster, so a hard encoder is a fixed point there exactly when the
    share is 1 (up to splitting an input between equal decoders).
    """
    p_x = np.asarray(p_x, dtype=float)
    p_y_given_x = np.asarray(p_y_given_x, dtype=float)
    clusters = np.asarray(clusters)
    if clusters.shape[-1] != p_x.size or p_y_given_x.shape[0] != p_x.size or clusters.ndim not in (1, 2):
        raise ValueError("p_x (N,), p_y_given_x (N, |Y|) and clusters (N,) or (R, N) must agree in N")
    if clusters.size and (clusters.dtype.kind not in "iu" or clusters.min() < 0):
        raise ValueError("clusters must be non-negative integers")
    ts = clusters.reshape(-1, p_x.size)
    n_enc, k = ts.shape[0], int(ts.max()) + 1
    flat = (ts + k * np.arange(n_enc)[:, None]).ravel()  # one bincount for every encoder at once
    p_t = np.bincount(flat, weights=np.tile(p_x, n_enc), minlength=n_enc * k).reshape(n_enc, k)
    joint = np.stack([np.bincount(flat, weights=np.tile(p_x * p_y_given_x[:, y], n_enc), minlength=n_enc * k)
                      for y in range(p_y_given_x.shape[1])], axis=1).reshape(n_enc, k, -1)
    used = p_t > 0
    dec = joint / np.where(used, p_t, 1.0)[..., None]
    rows, inverse = _distinct_rows(p_y_given_x)
    dist = np.where(used[:, None, :], kl_rows(rows, dec), np.inf)  # (R, rows, K)
    own = dist[np.arange(n_enc)[:, None], inverse[None, :], ts]  # (R, N)
    closest = dist.min(axis=2)[:, inverse]
    share = np.sum(p_x * (own <= closest + tol), axis=1) / p_x.sum()
    return share if clusters.ndim == 2 else float(share[0])


def _distinct_rows(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct rows, index of each row's distinct row): np.unique(axis=0) without its slow
    sort of raw bytes."""
    order = np.lexsort(a.T[::-1])
    starts = np.ones(a.shape[0], bool)
    starts[1:] = np.any(a[order][1:] != a[order][:-1], axis=1)
    inverse = np.empty(a.shape[0], int)
    inverse[order] = np.cumsum(starts) - 1
    return a[order][starts], inverse
