"""Tests of the IB curve and the self-consistency test against closed forms and brute force."""

import numpy as np
import pytest

from ibrepro.ib import curve as ib
from ibrepro.ib import fixedpoint as sc


def h2(p):
    """Binary entropy in bits."""
    p = np.clip(p, 1e-300, 1 - 1e-16)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def h2_inverse(v):
    """The p in [0, 1/2] with h2(p) = v, by bisection."""
    lo, hi = np.zeros_like(v), np.full_like(v, 0.5)
    for _ in range(100):
        mid = (lo + hi) / 2
        low = h2(mid) < v
        lo, hi = np.where(low, mid, lo), np.where(low, hi, mid)
    return (lo + hi) / 2


def reference_mi(p_xy, encoders):
    """(I(X;T), I(T;Y)) in bits of a stack of encoders (K, |X|, |T|), straight from the joints."""
    p_x = p_xy.sum(1)
    p_xt = p_x[None, :, None] * encoders  # (K, X, T)
    p_ty = np.einsum("kxt,xy->kty", encoders, p_xy)
    p_t = p_xt.sum(1)
    p_y = p_xy.sum(0)

    def mi(joint, a, b):
        outer = a[:, :, None] * b[:, None, :]
        terms = np.where(joint > 0, joint * np.log2(np.where(joint > 0, joint, 1) /
                                                     np.where(outer > 0, outer, 1)), 0.0)
        return terms.sum((1, 2))

    return mi(p_xt, np.broadcast_to(p_x, p_t.shape[:1] + p_x.shape), p_t), mi(
        p_ty, p_t, np.broadcast_to(p_y, p_t.shape[:1] + p_y.shape))


def deterministic_joint(p_x, labels, n_labels):
    p_xy = np.zeros((len(p_x), n_labels))
    p_xy[np.arange(len(p_x)), labels] = p_x
    return p_xy


@pytest.mark.parametrize(
    "p_x, labels, n_labels",
    [
        (np.full(8, 1 / 8), np.array([0, 1, 0, 1, 1, 0, 0, 1]), 2),  # balanced
        (np.array([0.3, 0.25, 0.2, 0.1, 0.1, 0.05]), np.array([0, 0, 0, 0, 1, 1]), 2),
        (np.array([0.4, 0.3, 0.2, 0.1]), np.array([0, 1, 2, 2]), 3),
    ],
)
def test_deterministic_labels_give_min_of_ixt_and_hy(p_x, labels, n_labels):
    curve = ib.ib_curve(deterministic_joint(p_x, labels, n_labels))
    p_y = np.bincount(labels, weights=p_x, minlength=n_labels)
    h_y = -np.sum(p_y * np.log2(p_y))
    r = np.linspace(0, 3 * h_y, 50)
    np.testing.assert_allclose(curve.ity_at(r), np.minimum(r, h_y), atol=1e-9)


def test_binary_symmetric_channel_matches_mrs_gerber_curve():
    eps = 0.1
    p_xy = 0.5 * np.array([[1 - eps, eps], [eps, 1 - eps]])
    curve = ib.ib_curve(p_xy)

    def exact(r):
        delta = h2_inverse(1 - np.asarray(r))
        return 1 - h2(eps * (1 - delta) + delta * (1 - eps))

    inner = (curve.ixt > 0) & (curve.ixt < 1)
    assert inner.sum() > 20
    np.testing.assert_allclose(curve.ity[inner], exact(curve.ixt[inner]), atol=1e-4)
    r = np.array([0.05, 0.2, 0.5, 0.8, 0.95])
    np.testing.assert_allclose(curve.ity_at(r), exact(r), atol=1e-3)
    # at an optimum the slope of the curve is 1 / beta
    mid = (curve.ixt > 0.1) & (curve.ixt < 0.9)
    slope = (exact(curve.ixt[mid] + 1e-6) - exact(curve.ixt[mid] - 1e-6)) / 2e-6
    np.testing.assert_allclose(curve.beta[mid], 1 / slope, rtol=0.02)


def test_no_random_encoder_beats_the_curve_and_the_curve_is_reached():
    rng = np.random.default_rng(0)
    p_xy = np.array([[0.30, 0.05], [0.10, 0.15], [0.02, 0.38]])
    curve = ib.ib_curve(p_xy)
    ixts, itys = [], []
    for n_t in (2, 3, 4):
        for alpha in (0.03, 0.1, 0.3, 1.0):
            encoders = rng.dirichlet(np.full(n_t, alpha), size=(20000, 3))
            ixt, ity = reference_mi(p_xy, encoders)
            ixts.append(ixt)
            itys.append(ity)
    ixt, ity = np.concatenate(ixts), np.concatenate(itys)
    assert np.max(ity - curve.ity_at(ixt)) < 1e-4  # the documented accuracy of the curve
    # the best sampled encoder under each I(X;T) budget comes close to the curve
    r = np.linspace(0.02, curve.ixt[-1], 40)
    best = np.array([ity[ixt <= v].max() for v in r])
    assert np.max(curve.ity_at(r) - best) < 0.01


def test_curve_is_monotone_concave_and_below_the_diagonal():
    rng = np.random.default_rng(1)
    p_y1 = 1 / (1 + np.exp(-3 * rng.normal(size=30)))
    p_x = rng.dirichlet(np.ones(30))
    curve = ib.ib_curve(ib.binary_joint(p_y1, p_x))
    assert curve.ixt[0] == 0 and curve.ity[0] == 0
    assert np.all(np.diff(curve.ixt) > 0)
    slopes = np.diff(curve.ity) / np.diff(curve.ixt)
    assert np.all(slopes >= 0)
    assert np.all(np.diff(slopes) <= 1e-9)
    assert np.all(slopes <= 1 + 1e-9)
    assert np.all(np.diff(curve.beta) >= 0)  # larger beta, further along the curve


def test_merging_equal_rows_keeps_the_curve():
    p_y1 = np.array([0.1, 0.5, 0.9])
    p_x = np.array([0.2, 0.5, 0.3])
    small = p_x[:, None] * np.stack([1 - p_y1, p_y1], axis=1)
    split = np.repeat(small, [2, 3, 1], axis=0) / np.repeat([2, 3, 1], [2, 3, 1])[:, None]
    grouped_p_x, grouped_cond = ib.group_inputs(split)
    order = np.argsort(grouped_cond[:, 1])
    np.testing.assert_allclose(grouped_p_x[order], p_x)
    np.testing.assert_allclose(grouped_cond[order, 1], p_y1)
    r = np.linspace(0, 2, 30)
    np.testing.assert_allclose(ib.ib_curve(split).ity_at(r), ib.ib_curve(small).ity_at(r))


def test_ib_point_matches_reference():
    rng = np.random.default_rng(2)
    p_xy = rng.dirichlet(np.ones(12)).reshape(4, 3)
    encoder = rng.dirichlet(np.ones(5), size=4)
    p_x = p_xy.sum(1)
    got = ib.ib_point(p_x, p_xy / p_x[:, None], encoder)
    want = reference_mi(p_xy, encoder[None])
    np.testing.assert_allclose(got, [want[0][0], want[1][0]], rtol=1e-12)


def random_problem(seed):
    rng = np.random.default_rng(seed)
    p_x = rng.dirichlet(np.ones(5))
    p_y_given_x = rng.dirichlet(np.full(3, 0.5), size=5)
    return rng, p_x, p_y_given_x


def test_self_consistency_finds_the_beta_of_a_fixed_point():
    rng, p_x, p_y_given_x = random_problem(3)
    beta0 = 8.0
    start = rng.dirichlet(np.ones(5), size=5)
    fixed = ib.ib_iterate(p_x, p_y_given_x, start, beta0, tol=1e-14, max_iter=200000)
    assert ib.ib_point(p_x, p_y_given_x, fixed)[0] > 0.05  # not the trivial solution
    grid = np.geomspace(1, 100, 201)
    best, residual = sc.self_consistency(p_x, p_y_given_x, fixed, grid)
    step = grid[1] / grid[0]
    assert 1 / step <= best / beta0 <= step
    assert residual < 1e-4
    # away from beta0 the same encoder is clearly not self-consistent
    _, far = sc.self_consistency(p_x, p_y_given_x, fixed, np.array([beta0 / 3, beta0 * 3]))
    assert far > 100 * residual


def test_self_consistency_residual_equals_direct_kl():
    rng, p_x, p_y_given_x = random_problem(4)
    encoder = rng.dirichlet(np.ones(4), size=5)
    # split the first cluster in two with equal decoders
    encoder = np.hstack([encoder[:, :1] / 3, 2 * encoder[:, :1] / 3, encoder[:, 1:]])
    p_t = p_x @ encoder
    dec = (encoder * p_x[:, None]).T @ p_y_given_x / p_t[:, None]
    kl = np.sum(p_y_given_x[:, None, :] * np.log(p_y_given_x[:, None, :] / dec[None]), axis=2)
    for beta in (0.0, 0.7, 5.0):
        updated = p_t * np.exp(-beta * kl)
        updated /= updated.sum(1, keepdims=True)
        direct = np.sum(p_x[:, None] * encoder * np.log2(encoder / updated))
        _, residual = sc.self_consistency(p_x, p_y_given_x, encoder, np.array([beta]))
        assert residual == pytest.approx(direct, rel=1e-9, abs=1e-12)


def test_hard_encoder_residual_closed_form():
    """Pure clusters, deterministic labels: residual = H(T) - H(Y) for every beta > 0."""
    labels = np.array([0, 0, 1, 1, 1, 0])
    p_x = np.array([0.1, 0.2, 0.15, 0.25, 0.05, 0.25])
    p_y_given_x = np.eye(2)[labels]
    grid = np.geomspace(0.1, 1000, 50)
    _, residual = sc.self_consistency(p_x, p_y_given_x, sc.symbols_to_encoder(labels), grid)
    assert residual == pytest.approx(0, abs=1e-12)
    symbols = np.array([[0, 1], [0, 1], [2, 2], [3, 0], [3, 0], [1, 1]])
    p_t = np.array([0.3, 0.15, 0.3, 0.25])
    p_y = np.array([0.55, 0.45])
    h_t_minus_h_y = -np.sum(p_t * np.log2(p_t)) + np.sum(p_y * np.log2(p_y))
    _, residual = sc.self_consistency(p_x, p_y_given_x, sc.symbols_to_encoder(symbols), grid)
    assert residual == pytest.approx(h_t_minus_h_y, rel=1e-12)
    # input 5 (label 0) in a label-1 cluster: finite residual, worse than before
    symbols[5] = [2, 2]
    _, residual = sc.self_consistency(p_x, p_y_given_x, sc.symbols_to_encoder(symbols), grid)
    assert h_t_minus_h_y < residual < np.inf


def test_symbols_to_encoder_one_hot_rows():
    symbols = np.array([[1, 2], [0, 0], [1, 2], [3, 1]])
    encoder = sc.symbols_to_encoder(symbols)
    assert encoder.shape == (4, 3)
    np.testing.assert_array_equal(encoder.sum(1), 1)
    np.testing.assert_array_equal(encoder[0], encoder[2])
    assert not np.array_equal(encoder[0], encoder[1])
    np.testing.assert_array_equal(sc.symbols_to_encoder(np.array([5, 5, 7])),
                                  [[1, 0], [1, 0], [0, 1]])


def test_self_consistency_of_cluster_indices_equals_the_dense_encoder():
    rng = np.random.default_rng(5)
    p_x = rng.dirichlet(np.ones(40))
    p_y1 = rng.uniform(0, 1, 40)
    p_y_given_x = np.stack([1 - p_y1, p_y1], axis=1)
    clusters = rng.integers(3, 12, 40)  # unused indices in between are fine
    grid = np.geomspace(0.1, 100, 31)
    dense = sc.self_consistency(p_x, p_y_given_x, sc.symbols_to_encoder(clusters), grid)
    hard = sc.self_consistency(p_x, p_y_given_x, clusters, grid)
    assert hard[0] == dense[0]
    assert hard[1] == pytest.approx(dense[1], rel=1e-12, abs=1e-14)


def test_nearest_decoder_share_counts_inputs_in_their_kl_closest_cluster():
    p_x = np.full(6, 1 / 6)
    p_y1 = np.array([0.05, 0.1, 0.15, 0.85, 0.9, 0.95])
    p_y_given_x = np.stack([1 - p_y1, p_y1], axis=1)
    assert sc.nearest_decoder_share(p_x, p_y_given_x, np.array([0, 0, 0, 1, 1, 1])) == 1.0
    # input 2 (p = 0.15) moved to the high cluster: the shares against a direct KL count
    clusters = np.array([0, 0, 1, 1, 1, 1])
    dec = np.array([p_y1[:2].mean(), p_y1[2:].mean()])
    kl = (p_y1[:, None] * np.log(p_y1[:, None] / dec) + (1 - p_y1[:, None]) * np.log((1 - p_y1[:, None]) / (1 - dec)))
    expected = np.mean(kl[np.arange(6), clusters] <= kl.min(axis=1))
    assert expected < 1
    assert sc.nearest_decoder_share(p_x, p_y_given_x, clusters) == pytest.approx(expected)
    # several encoders at once give each one's share; unused cluster indices are fine
    many = np.stack([[0, 0, 0, 1, 1, 1], clusters, [4, 4, 4, 9, 9, 9]])
    np.testing.assert_allclose(sc.nearest_decoder_share(p_x, p_y_given_x, many), [1.0, expected, 1.0])


def test_nearest_decoder_share_ties_and_deterministic_labels():
    """Equal decoders tie (both count); with deterministic labels every label-pure partition
    has share 1, whatever its size — why claim iii does not use it there."""
    p_x = np.full(4, 0.25)
    labels = np.array([0, 0, 1, 1])
    one_hot = np.eye(2)[labels]
    for clusters in ([0, 0, 1, 1], [0, 1, 2, 3], [0, 1, 2, 2]):
        assert sc.nearest_decoder_share(p_x, one_hot, np.array(clusters)) == 1.0
    # input 3 (label 1) in a cluster with p(y=1|t) = 1/3 while cluster 1 has p(y=1|t) = 1
    assert sc.nearest_decoder_share(p_x, one_hot, np.array([0, 0, 1, 0])) == 0.75
    with pytest.raises(ValueError):
        sc.nearest_decoder_share(p_x, one_hot, np.array([0, -1, 0, 1]))
