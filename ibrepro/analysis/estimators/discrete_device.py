"""Plug-in entropies of discrete rows computed whole on JAX's default device.

The host path (`discrete.py`) builds sort keys in a kernel, then sorts and counts runs with
numpy. Here the keys are sorted and their runs counted by compiled code, batched over the
seed-epochs of a block, so only (B,) entropies come back: the path for accelerators, where
moving (B, N) keys to the host and sorting there would leave the device idle.

Rows of symbols in [0, radix) that fit in one int64 number with their label are keyed
exactly, as on the host. Wider rows are keyed by a 64-bit hash and sorted by (hash, label)
with their row index; neighbours with equal hashes are then compared symbol by symbol, and a
seed-epoch where two different rows share a hash is flagged, for the caller to recount exactly.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from ibrepro.analysis.estimators.base import Labels
from ibrepro.analysis.estimators.discrete import class_bits, information_from_symbols, radix_bits
from ibrepro.analysis.estimators.placement import thread_device

# two 32-bit multiply-xorshift lanes (odd multipliers, distinct per lane), joined into 64 bits
_LANES = ((0x9E3779B1, 15, 0x2545F491), (0x85EBCA77, 13, 0xC2B2AE3D))


@jax.jit
def row_hash(bits: jax.Array) -> jax.Array:
    """A 64-bit hash (uint64) of each row of uint32 words (B, N, w); equal rows, equal hashes."""
    lanes = []
    for mul, shift, seed in _LANES:
        h = jnp.full(bits.shape[:2], seed, jnp.uint32)
        for j in range(bits.shape[2]):
            h = (h ^ bits[:, :, j]) * jnp.uint32(mul)
            h = h ^ (h >> shift)
        lanes.append(h.astype(jnp.uint64))
    return (lanes[0] << 32) | lanes[1]


def _entropy_of_runs(starts: jax.Array) -> jax.Array:
    """H in bits per row of `starts` (B, N): True where a run of equal sorted items begins."""
    n = starts.shape[1]
    position = jnp.arange(n)
    run_start = jax.lax.cummax(jnp.where(starts, position, 0), axis=1)
    last = jnp.concatenate([starts[:, 1:], jnp.ones_like(starts[:, :1])], axis=1)
    length = (position - run_start + 1).astype(jnp.float64)
    clogc = jnp.where(last, length * jnp.log2(length), 0.0)
    return math.log2(n) - clogc.sum(axis=1) / n


def _starts(changed: jax.Array) -> jax.Array:
    """Run starts (B, N) from `changed` (B, N-1): item i+1 differs from item i."""
    return jnp.concatenate([jnp.ones_like(changed[:, :1]), changed], axis=1)


@functools.partial(jax.jit, static_argnames=("cbits",))
def key_entropies(keys: jax.Array, *, cbits: int) -> tuple[jax.Array, jax.Array]:
    """(H(T̂), H(T̂,Y)) in bits per row of int64 keys (B, N) >= 0, the label in the lowest
    `cbits` bits (as `discrete.pack_rows` builds them); sorts on the device. Call with x64 on."""
    keys = jnp.sort(keys, axis=1)
    change = keys[:, 1:] ^ keys[:, :-1]
    return _entropy_of_runs(_starts(change >= (1 << cbits))), _entropy_of_runs(_starts(change != 0))


@jax.jit
def hashed_entropies(hashes: jax.Array, codes: jax.Array, rows: jax.Array):
    """(H(T̂), H(T̂,Y), collided) per seed-epoch: rows (B, N, w) keyed by `hashes` (B, N).

    `collided` is True where two different rows share a hash; its entropies are then wrong.
    Call with x64 on.
    """
    b, n = hashes.shape
    labels = jnp.broadcast_to(codes, (b, n))
    index = jnp.broadcast_to(jnp.arange(n), (b, n))
    hashes, labels, index = jax.lax.sort((hashes, labels, index), dimension=1, num_keys=2)
    same_hash = hashes[:, 1:] == hashes[:, :-1]
    ordered = jnp.take_along_axis(rows, index[:, :, None], axis=1)
    differ = jnp.any(ordered[:, 1:] != ordered[:, :-1], axis=2)
    joint = _starts(~same_hash | (labels[:, 1:] != labels[:, :-1]))
    return _entropy_of_runs(_starts(~same_hash)), _entropy_of_runs(joint), jnp.any(same_hash & differ, axis=1)


@functools.partial(jax.jit, static_argnames=("radix", "cbits"))
def _packed_keys(symbols: jax.Array, codes: jax.Array, *, radix: int, cbits: int) -> jax.Array:
    key = jnp.zeros(symbols.shape[:2], jnp.int64)
    for j in range(symbols.shape[2] - 1, -1, -1):
        key = key * radix + symbols[:, :, j].astype(jnp.int64)
    return (key << cbits) | codes.astype(jnp.int64)


def fits_one_key(width: int, radix: int, labels: Labels) -> bool:
    """Whether a row of `width` symbols in [0, radix) and its label fit one int64 key."""
    return radix_bits(radix, width) + class_bits(labels) <= 62


def symbol_information(symbols: jax.Array, radix: int, labels: Labels) -> tuple[np.ndarray, np.ndarray]:
    """(I(X;T̂), I(T̂;Y)) in bits per seed-epoch for symbols (B, N, w) in [0, radix), on device.

    `symbols` may already live on the device (a kernel's output). Seed-epochs whose hashes
    collide are recounted exactly on the host. Soft labels are counted on the host
    (`discrete.soft_information`).
    """
    if labels.soft is not None:
        return information_from_symbols(np.asarray(symbols), radix, labels)
    cbits = class_bits(labels)
    with jax.enable_x64(True):
        codes = jax.device_put(labels.codes, thread_device())
        if fits_one_key(symbols.shape[2], radix, labels):
            h_t, h_ty = key_entropies(_packed_keys(symbols, codes, radix=radix, cbits=cbits), cbits=cbits)
            collided = np.zeros(symbols.shape[0], bool)
        else:
            symbols = jnp.asarray(symbols, jnp.uint32)
            h_t, h_ty, collided = hashed_entropies(row_hash(symbols), codes, symbols)
            collided = np.asarray(collided)
        h_t, h_ty = np.array(h_t), np.asarray(h_ty)
    ixt, ity = h_t, h_t + labels.entropy - h_ty
    for k in np.flatnonzero(collided):
        ixt[k], ity[k] = (float(v[0]) for v in information_from_symbols(np.asarray(symbols[k:k + 1]), radix, labels))
    return ixt, ity
