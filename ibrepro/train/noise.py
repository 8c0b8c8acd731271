"""Cheap keyed random draws for the hidden-layer perturbations (noise and dropout).

With `jax.random.normal` / `bernoulli` the paper cell trained ~4.7x (noise) and ~3.3x
(dropout) slower than noise-free on 2 CPU cores; a keyed hash fed to XLA's `erf_inv` was still
~4-5x for noise: XLA's CPU `erf_inv` inside the training step costs several times the same
polynomial written out here (scripts/bench_train.py --noise/--dropout; now ~1.6x and ~1.3x).
A draw is a hash of (key, element index): murmur3's 32-bit finaliser applied twice with the
key's two words mixed in, a bijection of the index for a fixed key, elementwise (~1 ns per
value). A Gaussian value is the inverse normal CDF of the hash's top 24 bits (Giles'
single-precision erfinv); a Bernoulli value compares the 32 bits with a threshold. Draws are a
pure function of the key, so a resumed run repeats an uninterrupted one.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

# M. Giles, "Approximating the erfinv function" (GPU Computing Gems, 2011), single precision:
# erfinv(x) = x * p(w), w = -log(1 - x²); central and tail polynomials, highest power first.
_CENTRAL = (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 2.1858087e-04,
            -1.25372503e-03, -4.17768164e-03, 2.46640727e-01, 1.50140941)
_TAIL = (-2.00214257e-04, 1.00950558e-04, 1.34934322e-03, -3.67342844e-03, 5.73950773e-03,
         -7.6224613e-03, 9.43887047e-03, 1.00167406, 2.83297682)


def _fmix(x: jax.Array) -> jax.Array:
    """murmur3's 32-bit finaliser (a bijection with full avalanche)."""
    x = x * jnp.uint32(0x85EBCA6B)
    x = x ^ (x >> 13)
    x = x * jnp.uint32(0xC2B2AE35)
    return x ^ (x >> 16)


def _horner(coefficients: tuple[float, ...], x: jax.Array) -> jax.Array:
    result = jnp.full_like(x, coefficients[0])
    for c in coefficients[1:]:
        result = result * x + jnp.float32(c)
    return result


def bits(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """uint32 values of `shape` drawn from a PRNG key (typed or raw)."""
    words = jax.random.key_data(key).astype(jnp.uint32)
    index = jax.lax.iota(jnp.uint32, math.prod(shape)).reshape(shape)
    return _fmix(_fmix(index ^ words[0]) ^ words[1])


def erfinv(x: jax.Array) -> jax.Array:
    """float32 inverse error function on (-1, 1) (relative error ~1e-7, Giles 2011)."""
    w = -jnp.log((1.0 - x) * (1.0 + x))
    central = _horner(_CENTRAL, w - 2.5)
    tail = _horner(_TAIL, jnp.sqrt(w) - 3.0)
    return jnp.where(w < 5.0, central, tail) * x


def normal(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    """Standard normal values of `shape`: √2 erfinv(v), v uniform on the 2^24 odd multiples
    of 2^-24 in (-1, 1), a grid symmetric about 0 (so |value| < 5.5)."""
    odd = (bits(key, shape) >> 8).astype(jnp.int32) * 2 - (2**24 - 1)  # exact in float32
    v = odd.astype(jnp.float32) * jnp.float32(2.0**-24)
    return (jnp.float32(math.sqrt(2.0)) * erfinv(v)).astype(dtype)


def bernoulli(key: jax.Array, p: float, shape: tuple[int, ...]) -> jax.Array:
    """Booleans of `shape`, each True with probability p (to within 2^-32)."""
    return bits(key, shape) < jnp.uint32(min(round(p * 2.0**32), 2**32 - 1))
