"""The `noisy` estimator (Goldfeld et al.'s sample propagation) against closed forms and quadrature."""

from __future__ import annotations

import math

import h5py
import jax
import numpy as np
import pytest
from helpers import tiny_config

from ibrepro.analysis import analyze as an
from ibrepro.analysis import estimators
from ibrepro.analysis.estimators import Block, Labels
from ibrepro.analysis.estimators.noisy import propagate, sample_information
from ibrepro.analysis.request import parse_request
from ibrepro.errors import UserError
from ibrepro.layout import estimates_path
from ibrepro.train.loop import train_cell
from ibrepro.train.model import MLP


def estimate(acts, y, **params):
    est = estimators.get("noisy")
    values = est.resolve(params, {"dataset": "tishby12"})
    out = est.estimate(Block(acts, np.arange(len(acts))), Labels.from_labels(np.asarray(y)), values, None)
    ixt, ity, extras = out[""]
    return ixt, ity, extras["ixt_se"], extras["ity_se"]


def mixture_entropy_bits(means: np.ndarray, var: float) -> float:
    """h of the equal-weight 1-D Gaussian mixture, by quadrature on a fine grid."""
    grid = np.linspace(means.min() - 12 * math.sqrt(var), means.max() + 12 * math.sqrt(var), 200_001)
    p = np.exp(-((grid[:, None] - means[None]) ** 2) / (2 * var)).mean(1) / math.sqrt(2 * math.pi * var)
    integrand = np.where(p > 0, -p * np.log2(np.maximum(p, 1e-300)), 0.0)
    return float(np.sum(integrand) * (grid[1] - grid[0]))


def gaussian_entropy_bits(var: float) -> float:
    return 0.5 * math.log2(2 * math.pi * math.e * var)


def test_separated_components_give_log_n_and_identical_ones_zero():
    rng = np.random.default_rng(1)
    n = 40
    y = rng.integers(0, 3, n)
    apart = rng.normal(size=(1, n, 3)) * 50  # h(T) = log2 N + h(Z): I(X;T) = log2 N, I(T;Y) = H(Y)
    ixt, ity, ixt_se, ity_se = estimate(apart, y, beta=0.05, n_samples=400)
    assert abs(ixt[0] - math.log2(n)) <= 3 * ixt_se[0] + 1e-9
    assert abs(ity[0] - Labels.from_labels(y).entropy) <= 3 * ity_se[0] + 1e-9
    same = np.zeros((1, n, 3))  # one point: T = Z whatever X is
    ixt, ity, _, _ = estimate(same, y, beta=0.05)
    assert abs(ixt[0]) < 1e-9 and abs(ity[0]) < 1e-9


def test_overlapping_layer_against_quadrature():
    means = np.array([0.0, 0.1, 0.15, 0.5, 0.55, 1.0])
    y = np.array([0, 0, 1, 1, 0, 1])
    beta = 0.1
    h_t = mixture_entropy_bits(means, beta**2)
    ixt_ref = h_t - gaussian_entropy_bits(beta**2)
    ity_ref = h_t - sum(np.mean(y == c) * mixture_entropy_bits(means[y == c], beta**2) for c in (0, 1))
    ixt, ity, ixt_se, ity_se = estimate(means[None, :, None], y, beta=beta, n_samples=6000)
    assert 0.01 < ixt_se[0] < 0.05  # overlapping components: a real Monte Carlo error
    assert abs(ixt[0] - ixt_ref) <= 4 * ixt_se[0]
    assert abs(ity[0] - ity_ref) <= 4 * ity_se[0]


def test_deep_layer_of_a_linear_net_against_its_gaussian_closed_form():
    """T_2 = (x W0 + b0 + Z1) W1 + b1 + Z2: given x, N(μ_x, β²(‖W1‖² + 1)); T_2 a mixture of those."""
    beta = 0.2
    x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, 0.2]], np.float32)
    y = np.array([0, 1, 1, 0, 1])
    params = {"Dense_0": {"kernel": np.array([[0.7, -0.4], [0.2, 0.5]], np.float32), "bias": np.zeros(2, np.float32)},
              "Dense_1": {"kernel": np.array([[0.5], [0.4]], np.float32), "bias": np.array([0.1], np.float32)},
              "Dense_2": {"kernel": np.ones((1, 2), np.float32), "bias": np.zeros(2, np.float32)}}
    model = MLP(hidden=(2, 1), n_classes=2, activation="linear", noise_std=beta)
    centres = np.asarray(propagate(model, params, x, jax.random.PRNGKey(3), layer=1, n_passes=96))
    mu = (x @ params["Dense_0"]["kernel"]) @ params["Dense_1"]["kernel"][:, 0] + 0.1
    np.testing.assert_allclose(centres.mean(0)[:, 0], mu, atol=4 * beta * 0.65 / math.sqrt(96))
    var = beta**2 * (1 + float(np.sum(params["Dense_1"]["kernel"] ** 2)))
    h_t = mixture_entropy_bits(mu, var)
    ixt_ref = h_t - gaussian_entropy_bits(var)
    ity_ref = h_t - sum(np.mean(y == c) * mixture_entropy_bits(mu[y == c], var) for c in (0, 1))
    ixt, ity, ixt_se, ity_se = sample_information(centres, Labels.from_labels(y), beta, 6000, jax.random.PRNGKey(4))
    # 96 passes per input stand for the Gaussian S | x: a small downward bias of h(T|X) remains
    assert abs(ixt - ixt_ref) <= 4 * ixt_se + 0.03
    assert abs(ity - ity_ref) <= 4 * ity_se + 0.03


def _noisy_cell(tmp_path, *overrides):
    config = tiny_config("model.noise_std=0.1", "train.epochs=4", "log.snapshots=3", *overrides)
    path = tmp_path / "cell.h5"
    train_cell("cell", config, path)
    return config, path


def test_analyze_writes_standard_errors_and_uses_each_epochs_parameters(tmp_path):
    config, path = _noisy_cell(tmp_path)
    an.analyze_path(path, ["noisy"], ["n_samples=64", "n_passes=4"], progress=False)
    with h5py.File(estimates_path(path), "r") as f, h5py.File(path, "r") as run:
        (name,) = list(f)
        group = f[name]
        assert dict(group.attrs) | {"beta": 0.1, "n_samples": 64, "n_passes": 4, "seed": 0} == dict(group.attrs)
        ixt, ity, se = group["ixt"][()], group["ity"][()], group["ixt_se"][()]
        assert ixt.shape == ity.shape == se.shape == group["ity_se"].shape == (2, 3, 3)
        assert np.isfinite(ixt).all() and np.isfinite(se).all() and (se >= 0).all()
        labels = Labels.from_labels(run["data/y"][()])
        from ibrepro.analysis.estimators.noisy import network_from_run
        net = network_from_run(run, {"beta": 0.1})
        for s, e, layer in [(0, 0, 0), (1, 2, 1), (0, 1, 2)]:
            key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(0), s), layer)
            pass_key, draw_key = jax.random.split(key)
            if layer == 0:
                centres = run["activations/0"][s, e][None]
            else:
                params = net.params_at(s, e)
                centres = np.asarray(propagate(net.model, params, net.x, pass_key, layer=layer, n_passes=4))
            expected = sample_information(centres, labels, 0.1, 64, draw_key)
            np.testing.assert_allclose([ixt[s, e, layer], ity[s, e, layer]], expected[:2], rtol=1e-9)
        assert not np.allclose(ixt[:, 1, 1:], ixt[:, 2, 1:])  # later epochs: other parameters


def test_without_params_only_the_first_layer_is_estimated(tmp_path):
    _, path = _noisy_cell(tmp_path)
    with h5py.File(path, "a") as f:  # as a run file that stores activations only
        del f["params"]
    an.analyze_path(path, ["noisy"], ["n_samples=32"], progress=False)
    with h5py.File(estimates_path(path), "r") as f:
        ixt = f[list(f)[0]]["ixt"][()]
    assert np.isfinite(ixt[..., 0]).all() and np.isnan(ixt[..., 1:]).all()


def test_noise_free_run_and_zero_beta_are_refused(tmp_path):
    config, path = _noisy_cell(tmp_path, "model.noise_std=0")
    with pytest.raises(UserError, match="beta") as err:
        an.analyze_path(path, ["noisy"], progress=False)
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="beta"):
        an.analyze_path(path, ["noisy"], ["beta=0"], progress=False)
    an.analyze_path(path, ["noisy"], ["beta=0.05", "n_samples=16"], progress=False)  # analysis-time noise
    assert estimates_path(path).exists()


def test_clustering_ratio_against_all_pairs():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 30)
    acts = rng.normal(size=(30, 4)) + 3 * y[:, None]  # classes apart: ratio well below 1
    d2 = ((acts[:, None] - acts[None]) ** 2).sum(-1)
    same = y[:, None] == y[None, :]
    expected = math.sqrt(d2[same].mean() / d2[~same].mean())
    from ibrepro.analysis.estimators.noisy import class_clustering
    assert class_clustering(acts, Labels.from_labels(y)) == pytest.approx(expected, rel=1e-12)
    assert expected < 0.6
    assert math.isnan(class_clustering(np.zeros((30, 4)), Labels.from_labels(y)))


def test_the_former_name_rng_is_accepted_for_seed_with_a_deprecation_note(caplog):
    request = parse_request(["noisy"], {"rng": "3"})
    assert request.given["noisy"] == {"seed": 3}
    assert "--set rng is deprecated, use seed=3" in caplog.text
