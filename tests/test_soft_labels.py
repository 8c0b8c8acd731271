"""Soft-label I(T;Y) (labels = p(y|x)): the shared discrete plug-in and KDE against slow, plain
references, one-hot p(y|x) against the drawn labels, and `analyze --set labels=soft`."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from test_analyze import N as N_RUN
from test_analyze import write_run

from ibrepro.analysis import analyze as an
from ibrepro.analysis import estimators
from ibrepro.analysis.estimators import Block, Estimator, Labels
from ibrepro.analysis.estimators.binning import uniform_edges
from ibrepro.analysis.estimators.discrete import information_from_symbols, soft_information, soft_plugin_reference
from ibrepro.analysis.estimators.kde import kde_reference
from ibrepro.analysis.request import parse_request
from ibrepro.errors import UserError
from ibrepro.ib.curve import ib_point
from ibrepro.ib.fixedpoint import symbols_to_encoder

N = 80


def soft_labels(rng, n: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Drawn labels and p(y|x) (n, classes) with some exact 0/1 rows (as sigmoids saturate)."""
    p = rng.dirichlet(np.full(classes, 0.7), n)
    p[: n // 8] = np.eye(classes)[rng.integers(0, classes, n // 8)]
    y = np.array([rng.choice(classes, p=row) for row in p])
    return y, p


def estimate(name: str, acts: np.ndarray, labels: Labels, **params):
    est = estimators.get(name)
    values = est.resolve(params, {"dataset": "tishby12"})
    block = Block(np.ascontiguousarray(acts), np.arange(len(acts)))
    context = est.prepare(iter([block]), values) if est.prepare else None
    return est.estimate(block, labels, values, context)


@pytest.mark.parametrize("width,radix,classes", [
    (3, 4, 2),    # few symbols: large cells
    (2, 30, 3),   # many small cells, singletons included
    (40, 9, 2),   # too wide for one key: rank folding
    (1, 2, 1),    # a single class
])
def test_soft_plugin_matches_the_plain_reference(width, radix, classes):
    rng = np.random.default_rng(width * 100 + radix)
    symbols = rng.integers(0, radix, (4, N, width))
    symbols[1] = 0  # one cell holding everything
    y, p = soft_labels(rng, N, classes)
    ixt, ity = information_from_symbols(symbols, radix, Labels.from_labels(y, p))
    for b in range(4):
        assert (ixt[b], ity[b]) == pytest.approx(soft_plugin_reference(symbols[b], p), abs=1e-12)


def test_soft_plugin_on_cluster_indices_is_the_ib_point():
    """Plain cluster indices as keys: I(X;T), I(T;Y) of the hard encoder (ib.curve, uniform p(x))."""
    rng = np.random.default_rng(4)
    _, p = soft_labels(rng, 30, 2)
    clusters = rng.integers(0, 6, 30)
    want = ib_point(np.full(30, 1 / 30), p, symbols_to_encoder(clusters))
    got = soft_information(clusters[None], p)
    assert (got[0][0], got[1][0]) == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("name,params", [("binning", {"n_bins": 8}), ("binning-layer", {}),
                                         ("binning-layer", {"range": "global"}), ("adaptive", {"n_bins": 5}),
                                         ("kde", {"sigma2": 0.05})])
def test_one_hot_soft_labels_equal_the_drawn_ones(name, params):
    rng = np.random.default_rng(7)
    acts = np.tanh(rng.normal(size=(3, N, 3)) * 2)
    y = rng.integers(0, 3, N)
    drawn = estimate(name, acts, Labels.from_labels(y), **params)
    soft = estimate(name, acts, Labels.from_labels(y, np.eye(3)[y]), **params)
    for variant in drawn:
        np.testing.assert_allclose(soft[variant], drawn[variant], rtol=1e-12, atol=1e-12)


def test_binning_with_soft_labels_matches_the_reference():
    rng = np.random.default_rng(8)
    acts = np.tanh(rng.normal(size=(3, N, 4)) * 1.5).astype(np.float32)
    y, p = soft_labels(rng, N, 2)
    ixt, ity = estimate("binning", acts, Labels.from_labels(y, p), n_bins=6)[""]
    for b in range(3):
        ref = soft_plugin_reference(np.digitize(acts[b], uniform_edges(-1.0, 1.0, 6)), p)
        assert (ixt[b], ity[b]) == pytest.approx(ref, abs=1e-12)
    drawn = estimate("binning", acts, Labels.from_labels(y), n_bins=6)[""]
    np.testing.assert_array_equal(ixt, drawn[0])  # I(X;T) does not depend on the labels


@pytest.mark.parametrize("sigma2,classes", [(0.05, 2), (0.3, 4)])
def test_kde_with_soft_labels_matches_the_pairwise_reference(sigma2, classes):
    rng = np.random.default_rng(classes)
    acts = np.tanh(rng.normal(size=(2, N, 3)))
    y, p = soft_labels(rng, N, classes)
    out = estimate("kde", acts, Labels.from_labels(y, p), sigma2=sigma2)
    for b in range(2):
        ref = kde_reference(acts[b], y, sigma2, p)
        for bound in ("upper", "lower"):
            assert (out[bound][0][b], out[bound][1][b]) == pytest.approx(ref[bound], rel=1e-9, abs=1e-12)


def test_estimators_without_soft_support_refuse_soft_labels(monkeypatch):
    hard_only = Estimator("hard-only", (), lambda *a: {}, "test estimator")
    monkeypatch.setitem(estimators.REGISTRY, "hard-only", hard_only)
    with pytest.raises(UserError, match="hard-only cannot use soft labels"):
        parse_request(["hard-only"], {"labels": "soft"})
    assert not parse_request(["hard-only"], {}).soft
    with pytest.raises(UserError, match="labels must be one of drawn, soft"):
        parse_request(["binning"], {"labels": "noisy"})


def test_analyze_soft_groups_beside_drawn_ones(tmp_path):
    """A run with stored p(y|x): soft groups get their own name and attr; on a run without one
    (deterministic labels) soft equals drawn, and analyze says so."""
    path = tmp_path / "cell.h5"
    acts = write_run(path)
    rng = np.random.default_rng(1)
    p_y1 = rng.uniform(size=N_RUN)
    with h5py.File(path, "r+") as f:
        f["data/p_y1"] = p_y1
    an.analyze_path(path, ["binning"], progress=False)
    an.analyze_path(path, ["binning"], {"labels": "soft", "every": "2"}, progress=False)
    with h5py.File(path.with_name("cell.mi.h5"), "r") as f:
        assert set(f) == {"binning_n30_lo-1_hi1", "binning_n30_lo-1_hi1_soft_every2"}
        assert f["binning_n30_lo-1_hi1"].attrs["labels"] == "drawn"
        soft = f["binning_n30_lo-1_hi1_soft_every2"]
        assert soft.attrs["labels"] == "soft"
        s, e, k = 1, 2, 0  # logged epoch 2 is the second analysed one
        ref = soft_plugin_reference(np.digitize(acts[k][s, e], uniform_edges(-1, 1, 30)),
                                    np.stack([1 - p_y1, p_y1], axis=1))
        assert (soft["ixt"][s, 1, k], soft["ity"][s, 1, k]) == pytest.approx(ref, abs=1e-12)
    plain = tmp_path / "plain" / "cell.h5"
    plain.parent.mkdir()
    write_run(plain)
    notes = []
    an.analyze_path(plain, ["adaptive"], progress=False)
    an.analyze_path(plain, ["adaptive"], {"labels": "soft"}, progress=False, say=notes.append)
    assert notes == ["cell.h5: labels are deterministic (p(y|x) is one-hot), so its soft-label "
                     "estimates equal the drawn-label ones"]
    with h5py.File(plain.with_name("cell.mi.h5"), "r") as f:
        for key in ("ixt", "ity"):
            np.testing.assert_allclose(f["adaptive_n30_soft"][key][()], f["adaptive_n30"][key][()], atol=1e-12)
