"""Noise-injected and dropout networks (model.noise_std, model.dropout)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import tiny_config

from ibrepro.data import prepare
from ibrepro.errors import UserError
from ibrepro.train import noise
from ibrepro.train.engine import SeedData, SharedData
from ibrepro.train.loop import make_trainer, seed_keys


def _setup(*overrides):
    config = tiny_config(*overrides)
    arrays = prepare(config)
    trainer = make_trainer(config, arrays)
    key = seed_keys(0, 1)[0]
    shared = SharedData(arrays.x_pool, arrays.y_pool, arrays.x_eval, arrays.y_eval)
    seed = SeedData(key, arrays.train_idx[0], arrays.test_weight[0])
    return trainer, trainer.init_state(key, arrays.x_pool.shape[1]).params, shared, seed


def test_dropout_is_off_when_activations_are_recorded_and_on_in_training():
    dropped, params, shared, seed = _setup("model.dropout=0.5")
    plain, plain_params, _, _ = _setup()
    assert jax.tree.all(jax.tree.map(jnp.array_equal, params, plain_params))  # same init
    layers_d, metrics_d = dropped.evaluate(params, shared, seed)
    layers_p, metrics_p = plain.evaluate(params, shared, seed)
    for a, b in zip(layers_d, layers_p):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(metrics_d, metrics_p)

    x, y, w = shared.x_pool[:64], shared.y_pool[:64], jnp.ones(64)
    k1, k2 = jax.random.split(seed.key)
    assert dropped._loss(params, x, y, w, k1) != dropped._loss(params, x, y, w, k2)
    assert plain._loss(params, x, y, w, k1) == plain._loss(params, x, y, w, k2)


def test_noise_enters_each_hidden_layer_and_recorded_outputs_are_noiseless():
    beta = 0.1
    noisy, params, shared, seed = _setup(f"model.noise_std={beta}", "model.hidden=[6, 6, 4]")
    clean, _, _, _ = _setup("model.hidden=[6, 6, 4]")
    layers_n, _ = noisy.evaluate(params, shared, seed)
    layers_c, _ = clean.evaluate(params, shared, seed)
    again, _ = noisy.evaluate(params, shared, seed)
    for a, b in zip(layers_n, again):  # the recording pass's noise is a fixed draw
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(layers_n[0], layers_c[0])  # S_1 is a function of X alone
    assert not np.allclose(layers_n[1], layers_c[1], atol=1e-3)
    # S_2 = tanh((S_1 + Z) W + b): the residual Z W has covariance β² WᵀW (W is 6x6)
    w, b = (np.asarray(params["Dense_1"][k], np.float64) for k in ("kernel", "bias"))
    s1, s2 = (np.asarray(layers_n[k], np.float64) for k in (0, 1))
    z = (np.arctanh(s2) - b) @ np.linalg.inv(w) - s1
    np.testing.assert_allclose(z.mean(0), 0, atol=4 * beta / np.sqrt(len(z)))
    np.testing.assert_allclose(z.std(0), beta, rtol=0.06)
    assert abs(np.corrcoef(z.T)[0, 1]) < 0.06


@pytest.mark.parametrize("key, value", [("model.noise_std", -0.1), ("model.dropout", 1.0)])
def test_bad_noise_and_dropout_are_refused(key, value):
    with pytest.raises(UserError, match=key):
        tiny_config(f"{key}={value}")


erf = np.vectorize(math.erf)


def test_erfinv_is_accurate_on_the_grid_the_noise_uses():
    odd = np.concatenate([np.arange(0, 2**24, 61), [2**24 - 1]]) * 2 - (2**24 - 1)  # both ends
    v = (odd * 2.0**-24).astype(np.float32)
    y = np.asarray(jax.jit(noise.erfinv)(v), np.float64)
    newton = (erf(y) - v) / (2 / math.sqrt(math.pi) * np.exp(-y * y))  # ≈ y - erfinv(v)
    assert np.all(np.abs(newton) <= 1e-6 * np.abs(y) + 1e-7)


def test_noise_draws_are_standard_normal_independent_and_a_function_of_the_key():
    key = seed_keys(0, 1)[0]
    z = np.asarray(noise.normal(key, (500, 400)), np.float64)
    normal_cdf = 0.5 * (1 + erf(np.sort(z.ravel()) / math.sqrt(2)))
    empirical = np.arange(1, z.size + 1) / z.size
    assert np.max(np.abs(empirical - normal_cdf)) < 1.95 / math.sqrt(z.size)  # Kolmogorov-Smirnov, p = 0.001
    assert abs(z.mean()) < 4 / np.sqrt(z.size) and abs(z.std() - 1) < 4 / np.sqrt(2 * z.size)
    for a, b in [(z[:, :-1], z[:, 1:]), (z[:-1], z[1:])]:  # neighbours along either axis
        assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 4 / np.sqrt(a.size)
    np.testing.assert_array_equal(z, noise.normal(key, (500, 400)))
    other = np.asarray(noise.normal(jax.random.fold_in(key, 1), (500, 400)), np.float64)
    assert abs(np.corrcoef(z.ravel(), other.ravel())[0, 1]) < 4 / np.sqrt(z.size)
    keep = np.asarray(noise.bernoulli(key, 0.8, (500, 400)))
    assert abs(keep.mean() - 0.8) < 4 * np.sqrt(0.8 * 0.2 / keep.size)
