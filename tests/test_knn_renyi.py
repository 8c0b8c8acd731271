"""The kNN (Kozachenko–Leonenko / mixed KSG) and matrix-based Rényi estimators: closed forms,
invariances, agreement with their slow references, bad parameters."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ibrepro.analysis import estimators
from ibrepro.analysis.estimators import Block, Labels
from ibrepro.analysis.estimators.knn import knn_reference
from ibrepro.analysis.estimators.renyi import gram_entropy, minibatches, renyi_reference
from ibrepro.errors import UserError

N_BIG = 4096  # the paper's number of inputs: the kNN closed forms hold within bias here


def run(name: str, acts: np.ndarray, y: np.ndarray, inputs: np.ndarray | None = None, **params):
    """(ixt, ity) per seed-epoch through the registry interface."""
    est = estimators.get(name)
    values = est.resolve(params, {"dataset": "tishby12"})
    block = Block(np.ascontiguousarray(acts), np.arange(len(acts)), inputs=inputs)
    return est.estimate(block, Labels.from_labels(y), values, None)[""]


def saturated(rng, b: int, n: int, width: int) -> np.ndarray:
    """tanh-like activations with many exactly equal rows (saturated units) and ±1 values."""
    acts = np.tanh(rng.normal(size=(b, n, width)) * 3).astype(np.float32)
    acts[:, : n // 3] = np.sign(acts[:, : n // 3])
    return acts


# ---- knn ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("width,k,classes,jitter", [(1, 3, 2, 1e-5), (4, 1, 3, 1e-3), (10, 5, 2, 1e-5)])
def test_knn_matches_reference_exactly(width, k, classes, jitter):
    rng = np.random.default_rng(width + k)
    n = 90
    acts = saturated(rng, 2, n, width)
    y = rng.integers(0, classes, n)
    ixt, ity = run("knn", acts, y, k=k, jitter=jitter)
    for b in range(2):
        ref = knn_reference(acts[b], Labels.from_labels(y), k, jitter)
        assert (ixt[b], ity[b]) == pytest.approx(ref, rel=1e-12, abs=1e-12)


def test_knn_gaussian_entropy():
    # T ~ N(0, Σ), Σ = [[1, ρ], [ρ, 1]]: h(T) = ½ log2((2πe)² |Σ|); labels independent of T
    rng = np.random.default_rng(0)
    rho = 0.8
    t = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], N_BIG).astype(np.float32)
    y = rng.integers(0, 2, N_BIG)
    ixt, ity = run("knn", np.stack([t, t * [1, 0]])[:, :, :2], y, jitter=0.0)
    assert ixt[0] == pytest.approx(0.5 * math.log2((2 * math.pi * math.e) ** 2 * (1 - rho**2)), abs=0.05)
    assert abs(ity[0]) < 0.02
    marginal, _ = run("knn", t[None, :, :1], y, jitter=0.0)
    assert marginal[0] == pytest.approx(0.5 * math.log2(2 * math.pi * math.e), abs=0.05)


def test_knn_gaussian_classes_information():
    # Y uniform on {0, 1}, T | Y ~ N(±1, 1): I(T;Y) = 1 − ∫ p(t) h2(P(Y=1 | t)) dt (quadrature)
    rng = np.random.default_rng(10)
    y = rng.integers(0, 2, N_BIG)
    t = (rng.normal(size=N_BIG) + 2 * y - 1)[None, :, None].astype(np.float32)
    grid = np.linspace(-12, 12, 200001)
    up, down = np.exp(-0.5 * (grid - 1) ** 2), np.exp(-0.5 * (grid + 1) ** 2)
    density, posterior = (up + down) / (2 * math.sqrt(2 * math.pi)), up / (up + down)
    h2 = -(posterior * np.log2(posterior) + (1 - posterior) * np.log2(np.maximum(1 - posterior, 1e-300)))
    exact = 1.0 - np.trapezoid(density * h2, grid)
    _, ity = run("knn", t, y, jitter=0.0)
    assert exact == pytest.approx(0.486, abs=0.01)
    assert ity[0] == pytest.approx(exact, abs=0.03)


def test_knn_discrete_continuous_mixture():
    # Y uniform on {0, 1}; T|Y=0 ~ U[0, 2], T|Y=1 ~ U[1, 3]: Y is known outside [1, 2]
    # (probability 1/2) and a fair coin inside, so I(T;Y) = 1/2 bit; h(T) = 1.5 bits
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], N_BIG // 2)
    t = (rng.uniform(0, 2, N_BIG) + y)[None, :, None].astype(np.float32)
    ixt, ity = run("knn", t, y, jitter=0.0)
    assert ity[0] == pytest.approx(0.5, abs=0.03)
    assert ixt[0] == pytest.approx(1.5, abs=0.03)
    # labels unrelated to T: no information
    _, ity_shuffled = run("knn", t, rng.permutation(y), jitter=0.0)
    assert abs(ity_shuffled[0]) < 0.03


def test_knn_is_invariant_to_permuting_samples():
    rng = np.random.default_rng(2)
    acts = saturated(rng, 3, 200, 3)
    y = rng.integers(0, 2, 200)
    order = rng.permutation(200)
    base = run("knn", acts, y)
    moved = run("knn", acts[:, order], y[order])
    for a, b in zip(base, moved):
        np.testing.assert_array_equal(a, b)


def test_knn_jitter_sets_the_scale_of_duplicate_rows():
    # every row equal: h(T) is log2 of the jitter's spread, and finite only with jitter
    y = np.arange(100) % 2
    same = np.zeros((1, 100, 2), np.float32)  # at 0, float32 keeps the jitter to full precision
    small, _ = run("knn", same, y, jitter=1e-5)
    large, _ = run("knn", same, y, jitter=1e-3)
    assert np.isfinite(small[0]) and large[0] - small[0] == pytest.approx(2 * math.log2(100), abs=1e-4)
    none, _ = run("knn", same, y, jitter=0.0)
    assert none[0] == -np.inf


def test_knn_non_finite_seed_epochs_give_nan():
    rng = np.random.default_rng(3)
    acts = saturated(rng, 2, 64, 2)
    acts[1, 5, 0] = np.nan
    ixt, ity = run("knn", acts, rng.integers(0, 2, 64))
    assert np.isfinite(ixt[0]) and np.isnan(ixt[1]) and np.isnan(ity[1])


# ---- renyi -------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [1.01, 2.0, 0.5])
def test_renyi_far_apart_points_give_log2_n(alpha):
    points = np.arange(20, dtype=float)[:, None] * 10.0
    assert gram_entropy(points, "0.1", alpha) == pytest.approx(math.log2(20), abs=1e-9)


@pytest.mark.parametrize("sigma", ["0.1", "nn3"])
def test_renyi_identical_points_give_zero(sigma):
    assert gram_entropy(np.full((20, 3), 0.7), sigma, 1.01) == pytest.approx(0.0, abs=1e-9)


def test_renyi_t_equal_to_x_gives_s_of_x():
    # four far-apart clusters of identical points: kernel entries are 0 or 1, so I_α(X;X) = S_α(X)
    rng = np.random.default_rng(4)
    x = (rng.integers(0, 4, 200)[:, None] * 10.0 + np.zeros((1, 3))).astype(np.float32)
    y = rng.integers(0, 2, 200)
    params = dict(sigma="0.5", sigma_x="0.5", batch=40, n_batches=3, seed=7)
    ixt, _ = run("renyi", x[None], y, inputs=x, **params)
    s_x = np.mean([gram_entropy(x[rows], "0.5", 1.01) for rows in minibatches(200, 40, 3, 7)])
    assert ixt[0] == pytest.approx(s_x, abs=1e-9)
    assert s_x > 1.0


def test_renyi_distinct_points_carry_all_label_information():
    # K_T = I (far apart): I(X;T) = log2(batch), I(T;Y) = S_α(Y) of the batch
    y = np.arange(64) % 2
    x = np.arange(64, dtype=np.float32)[:, None] * 100
    ixt, ity = run("renyi", x[None], y, inputs=x, sigma="0.1", sigma_x="0.1", batch=16, n_batches=2)
    assert ixt[0] == pytest.approx(4.0, abs=1e-9)
    labels_entropy = np.mean([math.log2(np.sum((np.bincount(y[r]) / 16) ** 1.01)) / (1 - 1.01)
                              for r in minibatches(64, 16, 2, 0)])
    assert ity[0] == pytest.approx(labels_entropy, abs=1e-9)


@pytest.mark.parametrize("params", [
    dict(batch=30, n_batches=3),
    dict(alpha=2.0, sigma="0.8", sigma_x="nn2", batch=25, n_batches=2, seed=5),
])
def test_renyi_matches_reference(params):
    rng = np.random.default_rng(6)
    acts = saturated(rng, 2, 80, 4)
    x = rng.integers(0, 2, (80, 12)).astype(np.float32)
    y = rng.integers(0, 3, 80)
    ixt, ity = run("renyi", acts, y, inputs=x, **params)
    values = estimators.get("renyi").resolve(params, {})
    for b in range(2):
        ref = renyi_reference(acts[b], x, Labels.from_labels(y), values["alpha"], values["sigma"],
                              values["sigma_x"], values["batch"], values["n_batches"], values["seed"])
        assert (ixt[b], ity[b]) == pytest.approx(ref, abs=1e-9)


def test_renyi_is_invariant_to_permuting_units():
    rng = np.random.default_rng(8)
    acts = saturated(rng, 2, 60, 5)
    x = rng.integers(0, 2, (60, 12)).astype(np.float32)
    y = rng.integers(0, 2, 60)
    base = run("renyi", acts, y, inputs=x, batch=20, n_batches=2)
    moved = run("renyi", acts[:, :, rng.permutation(5)], y, inputs=x, batch=20, n_batches=2)
    for a, b in zip(base, moved):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


# ---- parameters --------------------------------------------------------------------------------


@pytest.mark.parametrize("name,key,text", [
    ("knn", "k", "0"), ("knn", "k", "-2"), ("knn", "k", "three"), ("knn", "jitter", "-1e-5"),
    ("renyi", "alpha", "0"), ("renyi", "alpha", "-0.5"), ("renyi", "batch", "1"),
    ("renyi", "n_batches", "0"), ("renyi", "seed", "-1"),
])
def test_bad_parameter_values_are_user_errors(name, key, text):
    with pytest.raises(UserError):
        estimators.get(name).param_index[key].parse(text)


@pytest.mark.parametrize("given", [{"alpha": 1.0}, {"sigma": "wide"}, {"sigma_x": "-1"}, {"sigma": "nn0"},
                                   {"sigma": "nn10", "batch": 10}])
def test_bad_renyi_settings_are_user_errors(given):
    with pytest.raises(UserError, match="renyi|kernel width"):
        estimators.get("renyi").resolve(given, {})


def test_bad_sizes_are_user_errors():
    rng = np.random.default_rng(9)
    acts = rng.normal(size=(1, 50, 2)).astype(np.float32)
    x = rng.normal(size=(50, 3)).astype(np.float32)
    y = np.r_[np.zeros(47, int), np.ones(3, int)]
    with pytest.raises(UserError, match="batch=100"):
        run("renyi", acts, y, inputs=x)
    with pytest.raises(UserError, match="inputs"):
        run("renyi", acts, y, batch=20)
    with pytest.raises(UserError, match="k=3"):
        run("knn", acts, y)


def test_group_names_record_the_settings():
    knn = estimators.get("knn")
    assert knn.group_name(knn.resolve({}, {}), "") == "knn_k3_jit1e-05"
    renyi = estimators.get("renyi")
    assert renyi.group_name(renyi.resolve({}, {}), "") == \
        "renyi_a1.01_snn10_sxnn10_b100_nb10_seed0"


# ---- through analyze and the comparison figure -------------------------------------------------


def test_analyze_writes_knn_and_renyi_groups_the_figures_read(tmp_path):
    import h5py
    from test_analyze import WIDTHS, E, S, write_run

    from ibrepro.analysis.analyze import analyze_path
    from ibrepro.analysis.results import load_cell
    from ibrepro.report.plots.compare import compare_figure

    path = tmp_path / "cell.h5"
    write_run(path)
    analyze_path(path, ["knn", "renyi"], {"batch": "32", "n_batches": "2", "seed": "3"},
                 progress=False, workers=1)  # one worker: one compilation per layer shape
    with h5py.File(tmp_path / "cell.mi.h5", "r") as f:
        knn, renyi = f["knn_k3_jit1e-05"], f["renyi_a1.01_snn10_sxnn10_b32_nb2_seed3"]
        assert dict(knn.attrs)["k"] == 3 and dict(knn.attrs)["jitter"] == 1e-5
        assert {key: renyi.attrs[key] for key in ("alpha", "sigma", "sigma_x", "batch", "n_batches", "seed")} == \
            {"alpha": 1.01, "sigma": "nn10", "sigma_x": "nn10", "batch": 32, "n_batches": 2, "seed": 3}
        for group in (knn, renyi):
            assert group["ixt"].shape == group["ity"].shape == (S, E, len(WIDTHS))
            assert np.isfinite(group["ixt"][()]).all() and np.isfinite(group["ity"][()]).all()
    cell = load_cell(path)
    assert {e.estimator for e in cell.estimates} == {"knn", "renyi"}
    assert next(e for e in cell.estimates if e.estimator == "renyi").params["sigma"] == "nn10"
    fig = compare_figure(cell, cell.estimates)
    assert [ax.get_title().split(" (")[0] for ax in fig.axes[:2]] == [e.estimator for e in cell.estimates]
