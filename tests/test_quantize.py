"""Quantized and binary layers: levels, straight-through gradients, and tiny runs that learn."""

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import tiny_config
from test_exact import brute_force

from ibrepro.analysis.analyze import analyze_path
from ibrepro.errors import UserError
from ibrepro.train import quantize as q
from ibrepro.train.loop import train_cell
from ibrepro.train.model import MLP
from ibrepro.train.runfile import open_run


@pytest.mark.parametrize("bits", [1, 3, 8])
def test_quantizer_levels(bits):
    x = jnp.asarray(np.random.default_rng(bits).normal(size=(500, 6)) * 3, jnp.float32)
    out = np.asarray(q.quantize_batch(x, bits))
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    step = (hi - lo) / (2**bits - 1)
    assert len(np.unique(out)) <= 2**bits
    assert max(len(np.unique(out[:, j])) for j in range(6)) <= 2**bits
    assert np.all(np.abs(out - np.asarray(x)) <= step / 2 + 1e-5)  # the nearest level
    levels = (out - lo) / step
    assert np.allclose(levels, np.round(levels), atol=1e-3)


def test_straight_through_gradients():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(64, 5)), jnp.float32)
    c = jnp.asarray(np.random.default_rng(1).normal(size=(64, 5)), jnp.float32)
    # batch range: every value inside, so the gradient is the unquantized one (the identity)
    grad = jax.grad(lambda v: jnp.sum(c * q.quantize_batch(v, 4)))(x)
    assert np.array_equal(np.asarray(grad), np.asarray(c))
    grad = jax.grad(lambda v: jnp.sum(c * q.quantize_batch(jnp.tanh(v), 4)))(x)
    assert np.allclose(grad, jax.grad(lambda v: jnp.sum(c * jnp.tanh(v)))(x))
    # a fixed range: the gradient vanishes outside it
    grad = np.asarray(jax.grad(lambda v: jnp.sum(c * q.quantize(v, -0.5, 0.5, 4)))(x))
    inside = np.abs(np.asarray(x)) <= 0.5
    assert np.array_equal(grad[inside], np.asarray(c)[inside]) and not grad[~inside].any()


def test_sign_and_binary_weights():
    x = jnp.linspace(-2, 2, 41)
    assert set(np.asarray(q.sign(x)).tolist()) == {-1.0, 1.0} and float(q.sign(jnp.zeros(()))) == 1.0
    grad = np.asarray(jax.grad(lambda v: jnp.sum(q.sign(v)))(x))
    assert np.array_equal(grad, (np.abs(np.asarray(x)) <= 1).astype(np.float32))
    w = jnp.asarray(np.random.default_rng(2).normal(size=(12, 10)), jnp.float32)
    binary = np.asarray(q.binary_weights(w))
    assert len(np.unique(binary)) == 2 and np.allclose(np.abs(binary), np.abs(np.asarray(w)).mean())
    assert np.array_equal(np.asarray(jax.grad(lambda v: jnp.sum(q.binary_weights(v)))(w)), np.ones((12, 10)))


@pytest.mark.parametrize("activation,bits", [("tanh", 3), ("relu", 4), ("sign", 2)])
def test_quantized_model_layers_take_few_values(activation, bits):
    model = MLP(hidden=(8, 5), n_classes=2, activation=activation, quantize_bits=bits)
    x = jnp.asarray(np.random.default_rng(3).integers(0, 2, size=(300, 12)), jnp.float32)
    params = model.init(jax.random.key(0), x)["params"]
    layers, _ = model.apply({"params": params}, x)
    allowed = [2 if activation == "sign" else 2**bits] * 2 + [2**bits]
    for layer, most in zip(layers, allowed):
        layer = np.asarray(layer)
        assert max(len(np.unique(layer[:, j])) for j in range(layer.shape[1])) <= most
    float_layers, _ = MLP(hidden=(8, 5), n_classes=2, activation=activation).apply({"params": params}, x)
    assert len(np.unique(np.asarray(float_layers[-1])[:, 0])) > 2**bits  # the bound is not met for free


@pytest.mark.parametrize("sets", [("model.quantize_bits=8",),
                                  ('model.activation="relu"', "model.quantize_bits=4"),
                                  ('model.activation="sign"', "model.binary_weights=true", "model.hidden=[10, 6]",
                                   "train.epochs=100")])
def test_tiny_quantized_and_binary_runs_learn(tmp_path, sets):
    """Reached (seeds 0, 1): 8-bit tanh ~0.90, 4-bit ReLU ~0.87, sign + binary weights 0.85, 0.87.
    The trained layers are then analysed exactly and checked against the brute-force count."""
    config = tiny_config("train.epochs=60", "train.batch_size=64", "log.snapshots=3", *sets)
    train_cell("cell", config, tmp_path / "cell.h5")
    (mi_path,) = analyze_path(tmp_path / "cell.h5", ["exact"], progress=False)
    with open_run(tmp_path / "cell.h5") as f, h5py.File(mi_path) as est:
        assert (f["metrics/test_acc"][:, -1] > 0.8).all(), f["metrics/test_acc"][:, -1]
        y = f["data/y"][()]
        for k in range(len(f["activations"])):
            want = brute_force(f[f"activations/{k}"][1, 1], y)
            assert abs(est["exact/ixt"][1, 1, k] - want[0]) < 1e-12
            assert abs(est["exact/ity"][1, 1, k] - want[1]) < 1e-12


@pytest.mark.parametrize("bad", ["model.quantize_bits=17", "model.quantize_bits=-1", "model.binary_weights=1",
                                 'model.activation="signum"'])
def test_bad_quantization_settings_are_user_errors(bad):
    with pytest.raises(UserError):
        tiny_config(bad)
