"""Estimators against closed-form values and against the package's slow, readable references
(`*_reference` beside each fast kernel: np.digitize and np.unique over rows, plain pairwise KDE)."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest

from ibrepro.analysis import estimators
from ibrepro.analysis.estimators import Block, Labels
from ibrepro.analysis.estimators.adaptive import adaptive_reference, adaptive_symbols
from ibrepro.analysis.estimators.binning import binning_reference, layer_symbols
from ibrepro.analysis.estimators.discrete import plugin_reference
from ibrepro.analysis.estimators.kde import kde_reference
from ibrepro.analysis.estimators.partition import partition_symbols
from ibrepro.errors import UserError

N = 96  # inputs per test layer-epoch (small: the KDE reference is quadratic)


# ---- helpers ---------------------------------------------------------------------------------


def run(name: str, acts: np.ndarray, y, **params) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Estimate through the registry interface (prepare + estimate) for acts (B, N, w)."""
    est = estimators.get(name)
    values = est.resolve(params, {"dataset": "tishby12"})
    labels = Labels.from_labels(np.asarray(y))
    seeds = np.arange(len(acts))
    block = Block(np.ascontiguousarray(acts), seeds)
    context = est.prepare(iter([block]), values) if est.prepare else None
    return est.estimate(block, labels, values, context)


def single(name: str, acts: np.ndarray, y, variant: str = "", **params) -> tuple[float, float]:
    ixt, ity = run(name, acts[None], y, **params)[variant]
    return float(ixt[0]), float(ity[0])


def random_acts(rng, b: int, width: int, dtype=np.float32, scale: float = 2.0) -> np.ndarray:
    return np.tanh(rng.normal(size=(b, N, width)) * scale).astype(dtype)


DISCRETE = [("binning", {}), ("binning-layer", {}), ("binning-layer", {"range": "global"}),
            ("binning-layer", {"convention": "edges"}), ("adaptive", {}), ("adaptive", {"pool": "layer"})]
ALL = DISCRETE + [("kde", {"sigma2": 0.05})]


def variants(name: str) -> tuple[str, ...]:
    return estimators.get(name).variants


# ---- closed forms ----------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 3, 8])
@pytest.mark.parametrize("name,params", ALL)
def test_uniform_over_k_symbols_gives_log2_k(name, params, k):
    # k well-separated levels, each held by N/k inputs; labels unrelated to the level
    levels = np.linspace(-0.9, 0.9, 8)[:k] if k > 1 else np.array([0.3])
    t = np.repeat(levels, N // k)[:, None].astype(np.float32)
    y = np.arange(N) % 2
    extra = {"n_bins": k} if name == "adaptive" else {}
    if name == "kde":
        extra = {"sigma2": 1e-5}  # kernels between levels underflow to exactly 0
    for variant in variants(name):
        ixt, _ = single(name, t, y, variant, **{**params, **extra})
        assert ixt == pytest.approx(math.log2(k), abs=1e-9)


@pytest.mark.parametrize("name,params", ALL)
def test_copy_of_labels_gives_h_y(name, params):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, N)
    t = np.where(y == 0, -0.8, np.where(y == 1, 0.0, 0.8))[:, None].astype(np.float32)
    h_y = Labels.from_labels(y).entropy
    extra = {"n_bins": 3} if name == "adaptive" else {"sigma2": 1e-5} if name == "kde" else {}
    if name == "adaptive":
        # equal-mass bins only split the three levels when the class sizes are N/3 each
        y = np.repeat([0, 1, 2], N // 3)
        t = np.repeat([-0.8, 0.0, 0.8], N // 3)[:, None].astype(np.float32)
        h_y = math.log2(3)
    for variant in variants(name):
        ixt, ity = single(name, t, y, variant, **{**params, **extra})
        assert ity == pytest.approx(h_y, abs=1e-9)
        assert ixt == pytest.approx(h_y, abs=1e-9)


@pytest.mark.parametrize("name,params", ALL)
def test_constant_layer_gives_zero(name, params):
    t = np.full((N, 3), 0.25, np.float32)
    y = np.arange(N) % 2
    for variant in variants(name):
        ixt, ity = single(name, t, y, variant, **params)
        assert ixt == pytest.approx(0.0, abs=1e-12)
        assert ity == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("name,params", ALL)
def test_ity_bounded_by_ixt_and_h_y(name, params):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, N)
    acts = random_acts(rng, 4, 2, scale=0.7)
    h_y = Labels.from_labels(y).entropy
    for ixt, ity in run(name, acts, y, **params).values():
        assert np.all(ity <= np.minimum(ixt, h_y) + 1e-12)


@pytest.mark.parametrize("coarse,fine", [(16, 31), (5, 9), (30, 59)])
def test_coarser_fixed_bins_never_raise_ixt(coarse, fine):
    # linspace(-1, 1, coarse) is every other edge of linspace(-1, 1, fine): nested partitions
    rng = np.random.default_rng(2)
    acts = random_acts(rng, 6, 1, scale=1.0)
    y = rng.integers(0, 2, N)
    ixt_fine, _ = run("binning", acts, y, n_bins=fine)[""]
    ixt_coarse, _ = run("binning", acts, y, n_bins=coarse)[""]
    assert np.all(ixt_coarse <= ixt_fine + 1e-12)
    assert np.any(ixt_coarse < ixt_fine - 1e-6)


def test_coarser_equal_mass_bins_never_raise_ixt():
    rng = np.random.default_rng(3)
    acts = random_acts(rng, 6, 2)
    y = rng.integers(0, 2, N)
    values = [run("adaptive", acts, y, n_bins=n)[""][0] for n in (3, 6, 12)]
    assert np.all(values[0] <= values[1] + 1e-12) and np.all(values[1] <= values[2] + 1e-12)


# ---- against the package's readable references --------------------------------------------


def test_references_on_hand_counted_cases():
    # rows (0,0) (0,0) (1,0) (1,1), labels 0 0 1 1: H(T) = 1.5; class 1 splits in two: H(T|Y) = 0.5
    assert plugin_reference(np.array([[0, 0], [0, 0], [1, 0], [1, 1]]), np.array([0, 0, 1, 1])) == \
        pytest.approx((1.5, 1.0))
    # edges -1, 0, 1: np.digitize gives 0 1 1 2 3 2 (an edge value goes up); classes share no symbol
    t = np.array([[-1.5], [-1.0], [-0.5], [0.0], [1.0], [0.5]])
    h_t = 2 / 6 * math.log2(6) + 4 / 6 * math.log2(3)
    assert binning_reference(t, -1.0, 1.0, 3, np.array([0, 0, 0, 1, 1, 1])) == pytest.approx((h_t, 1.0))
    # values 3 1 2 2 have 3 0 1 1 values below: bins 1 0 0 0 of 2
    h_quarter = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))
    assert adaptive_reference(np.array([[3.0], [1.0], [2.0], [2.0]]), 2, np.array([1, 0, 0, 0])) == \
        pytest.approx((h_quarter, h_quarter))
    # two inputs at distance 1, σ² = 0.5: K_01 = exp(-1 / c σ²); far-apart classes give 1 bit each
    two = kde_reference(np.array([[0.0], [1.0]]), np.array([0, 0]), 0.5)
    for bound, factor in (("upper", 2.0), ("lower", 8.0)):
        assert two[bound] == pytest.approx((1 - math.log2(1 + math.exp(-1 / (factor * 0.5))), 0.0), abs=1e-12)
    far = kde_reference(np.array([[0.0], [0.0], [10.0], [10.0]]), np.array([0, 0, 1, 1]), 0.01)
    assert far["upper"] == pytest.approx((1.0, 1.0)) and far["lower"] == pytest.approx((1.0, 1.0))


def with_edge_values(acts: np.ndarray, lo: float, hi: float, n_bins: int, rng) -> np.ndarray:
    """Put some values exactly on bin edges, on float32 neighbours of edges, and on lo/hi."""
    acts = acts.copy()
    edges = np.linspace(lo, hi, n_bins)
    picks = rng.integers(0, acts.size, 40)
    chosen = edges[rng.integers(0, n_bins, 40)].astype(acts.dtype)
    nudged = np.nextafter(chosen, np.where(rng.random(40) < 0.5, -np.inf, np.inf).astype(acts.dtype))
    acts.flat[picks] = np.where(np.arange(40) % 2 == 0, chosen, nudged)
    acts.flat[rng.integers(0, acts.size, 6)] = np.array([lo, hi, lo, hi, 1.0, -1.0], acts.dtype)
    return acts


@pytest.mark.parametrize("width,n_bins,classes,dtype", [
    (3, 30, 2, np.float32),     # one int32 word per row
    (10, 30, 2, np.float32),    # two words (the paper's first layer)
    (20, 30, 3, np.float32),    # too wide for two words: rank folding
    (4, 7, 1, np.float64),      # float64 arithmetic, a single class
    (2, 1000, 10, np.float32),  # many bins, ten classes
])
def test_binning_matches_reference(width, n_bins, classes, dtype):
    rng = np.random.default_rng(width * 1000 + n_bins)
    acts = with_edge_values(random_acts(rng, 3, width, dtype), -1.0, 1.0, n_bins, rng)
    acts[1, :5, 0] = np.nan
    y = rng.integers(0, classes, N)
    ixt, ity = run("binning", acts, y, n_bins=n_bins)[""]
    for b in range(len(acts)):
        ref = binning_reference(acts[b], -1.0, 1.0, n_bins, y)
        assert (ixt[b], ity[b]) == pytest.approx(ref, abs=1e-9)


def test_binning_other_range_matches_reference():
    rng = np.random.default_rng(5)
    acts = (rng.normal(size=(3, N, 4)) * 3).astype(np.float32)
    y = rng.integers(0, 2, N)
    ixt, ity = run("binning", acts, y, n_bins=12, lo=-2.5, hi=4.0)[""]
    for b in range(3):
        ref = binning_reference(acts[b], -2.5, 4.0, 12, y)
        assert (ixt[b], ity[b]) == pytest.approx(ref, abs=1e-9)


def layer_reference(t: np.ndarray, lo: float, hi: float, n_bins: int, convention: str, y) -> tuple[float, float]:
    return plugin_reference(layer_symbols(t, lo, hi, n_bins, convention), y)


def on_layer_edges(acts: np.ndarray, n_bins: int, rng) -> np.ndarray:
    """Values of each seed-epoch exactly on its own range's interval edges, and an ulp either
    side (kept inside min..max, so the range does not move), some in rows with the maximum."""
    acts = acts.copy()
    for b in range(len(acts)):
        lo, hi = float(acts[b].min()), float(acts[b].max())
        edges = np.linspace(lo, hi, n_bins + 1).astype(acts.dtype)
        chosen = edges[rng.integers(0, n_bins + 1, 30)]
        nudged = np.nextafter(chosen, np.where(rng.random(30) < 0.5, -np.inf, np.inf).astype(acts.dtype))
        acts[b].flat[rng.integers(0, acts[b].size, 30)] = np.clip(np.where(np.arange(30) % 2, chosen, nudged), lo, hi)
        acts[b, :5, 0], acts[b, :5, -1] = hi, edges[1:6]  # rows redone exactly (an edge) holding the maximum
    return acts


@pytest.mark.parametrize("convention", ["intervals", "edges"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binning_layer_matches_reference(convention, dtype):
    rng = np.random.default_rng(6)
    acts = np.maximum(rng.normal(size=(4, N, 3)) * rng.uniform(0.1, 5, (4, 1, 1)), 0).astype(dtype)
    acts = on_layer_edges(acts, 10, rng)
    acts[2] = 0.0  # a dead ReLU layer: min = max
    y = rng.integers(0, 2, N)
    ixt, ity = run("binning-layer", acts, y, n_bins=10, convention=convention)[""]
    for b in range(4):
        ref = layer_reference(acts[b], float(acts[b].min()), float(acts[b].max()), 10, convention, y)
        assert (ixt[b], ity[b]) == pytest.approx(ref, abs=1e-9)


def test_interval_bins_are_np_histogram_bins():
    """convention=intervals: n_bins equal intervals over min..max, the maximum in the last (the
    bins of np.histogram with n_bins bins on the layer's range, and of Lorenzen et al.)."""
    rng = np.random.default_rng(10)
    t = rng.normal(size=(N, 3))
    t[:4, 1] = t[:, 1].max()
    lo, hi = t.min(), t.max()
    symbols = layer_symbols(t, lo, hi, 7, "intervals")
    assert symbols.min() >= 1 and symbols.max() <= 7  # 7 intervals, none below or above
    for j in range(3):
        counts = np.bincount(symbols[:, j], minlength=8)[1:]
        np.testing.assert_array_equal(counts, np.histogram(t[:, j], bins=7, range=(lo, hi))[0])


@pytest.mark.parametrize("k", [2, 8, 30])
def test_uniform_layer_in_k_intervals_gives_log2_k(k):
    """m values in each of K equal intervals of the layer's range (the extremes included):
    I(X;T) = log2 K; labels that split the range in halves give I(T;Y) = H(Y) = 1 bit. Counting
    K edges instead (K - 1 intervals and the maximum alone) gives another number."""
    m = 7
    n = k * m
    t = ((np.arange(n) + 0.5) / n).astype(np.float32)[:, None]
    y = (np.arange(n) >= n // 2).astype(int)
    ixt, ity = single("binning-layer", t, y, n_bins=k)
    assert ixt == pytest.approx(math.log2(k), abs=1e-12) and ity == pytest.approx(1.0, abs=1e-12)
    edges_ixt, _ = single("binning-layer", t, y, n_bins=k, convention="edges")
    assert abs(edges_ixt - math.log2(k)) > 0.01


@pytest.mark.parametrize("convention", ["intervals", "edges"])
def test_binning_global_range_uses_each_seeds_range_over_the_cell(convention):
    rng = np.random.default_rng(7)
    acts = (rng.normal(size=(4, N, 2)) * [[[1.0]], [[3.0]], [[1.0]], [[3.0]]]).astype(np.float32)
    seeds = np.array([0, 0, 1, 1])
    y = rng.integers(0, 2, N)
    est = estimators.get("binning-layer")
    values = est.resolve({"n_bins": 8, "range": "global", "convention": convention}, {})
    block = Block(acts, seeds)
    context = est.prepare(iter([Block(acts[:2], seeds[:2]), Block(acts[2:], seeds[2:])]), values)
    ixt, ity = est.estimate(block, Labels.from_labels(y), values, context)[""]
    for b in range(4):
        mine = acts[seeds == seeds[b]]
        ref = layer_reference(acts[b], float(mine.min()), float(mine.max()), 8, convention, y)
        assert (ixt[b], ity[b]) == pytest.approx(ref, abs=1e-9)


@pytest.mark.parametrize("n_bins,width", [(4, 2), (30, 3), (7, 12)])
def test_adaptive_matches_reference(n_bins, width):
    rng = np.random.default_rng(n_bins)
    acts = random_acts(rng, 2, width)
    acts[0, : N // 2, 0] = 0.5  # ties must share a bin
    y = rng.integers(0, 3, N)
    ixt, ity = run("adaptive", acts, y, n_bins=n_bins)[""]
    for b in range(2):
        ref = adaptive_reference(acts[b], n_bins, y)
        assert (ixt[b], ity[b]) == pytest.approx(ref, abs=1e-9)


@pytest.mark.parametrize("pool", ["unit", "layer"])
@pytest.mark.parametrize("n_bins", [1, 65, 200])  # no edges; a binary search over the edges; more bins than values
def test_adaptive_on_nan_signed_zero_and_many_bins(pool, n_bins):
    """NaN sorts last and -0.0 ties with 0.0, as np.sort and np.searchsorted in the reference."""
    rng = np.random.default_rng(n_bins)
    acts = random_acts(rng, 2, 3, np.float64)
    acts[0, :10, 0], acts[0, 10:20, 0], acts[0, 20:30, 1] = np.nan, -0.0, 0.0
    y = rng.integers(0, 2, N)
    ixt, ity = run("adaptive", acts, y, n_bins=n_bins, pool=pool)[""]
    for b in range(2):
        assert (ixt[b], ity[b]) == pytest.approx(adaptive_reference(acts[b], n_bins, y, pool), abs=1e-9)


@pytest.mark.parametrize("n_bins,width", [(4, 2), (30, 3), (7, 12)])
def test_pooled_adaptive_matches_reference(n_bins, width):
    rng = np.random.default_rng(n_bins + 100)
    acts = random_acts(rng, 2, width)
    acts[0, : N // 2, 0] = 0.5  # ties must share a bin
    acts[1, :, -1] = acts[1, :, 0]  # the same values in two units: the same bins when pooled
    y = rng.integers(0, 3, N)
    ixt, ity = run("adaptive", acts, y, n_bins=n_bins, pool="layer")[""]
    for b in range(2):
        ref = adaptive_reference(acts[b], n_bins, y, pool="layer")
        assert (ixt[b], ity[b]) == pytest.approx(ref, abs=1e-9)
    symbols = adaptive_symbols(acts[1], n_bins, "layer")
    np.testing.assert_array_equal(symbols[:, -1], symbols[:, 0])


@pytest.mark.parametrize("k", [2, 4, 8])
def test_pooled_and_per_unit_adaptive_closed_forms(k):
    """Unit 2 = unit 1 + 10, N distinct values: per unit, each unit has k equal-mass bins
    (log2 k bits); pooled over the layer, unit 1 fills the lower k/2 bins and unit 2 the upper
    k/2, so a row has k/2 values: log2 k - 1 bits."""
    u = np.random.default_rng(k).permutation(np.arange(N) / N)
    t = np.stack([u, u + 10], axis=1).astype(np.float32)
    y = np.arange(N) % 2
    assert single("adaptive", t, y, n_bins=k)[0] == pytest.approx(math.log2(k), abs=1e-12)
    assert single("adaptive", t, y, n_bins=k, pool="layer")[0] == pytest.approx(math.log2(k) - 1, abs=1e-12)


@pytest.mark.parametrize("name,values,name_before,name_after", [
    ("binning-layer", {"n_bins": 30, "range": "layer", "convention": "edges"}, "binning-layer_n30_layer", None),
    ("binning-layer", {"n_bins": 30, "range": "layer", "convention": "intervals"}, None,
     "binning-layer_n30_layer_intervals"),
    ("adaptive", {"n_bins": 30, "pool": "unit"}, "adaptive_n30", None),
    ("adaptive", {"n_bins": 30, "pool": "layer"}, None, "adaptive_n30_layer"),
])
def test_groups_written_before_keep_their_names(name, values, name_before, name_after):
    """A group written before `convention`/`pool` existed was computed at the legacy value: that
    value keeps the old name; the new conventions get names of their own."""
    assert estimators.get(name).group_name(values, "") == (name_before or name_after)


def test_groups_written_before_are_read_with_their_convention(tmp_path):
    from ibrepro.analysis.estimatesfile import read_estimates

    path = tmp_path / "cell.mi.h5"
    with h5py.File(path, "w") as f:
        for group, attrs in {"binning-layer_n30_layer": {"estimator": "binning-layer", "n_bins": 30,
                                                         "range": "layer"},
                             "adaptive_n30": {"estimator": "adaptive", "n_bins": 30},
                             "adaptive_n30_layer": {"estimator": "adaptive", "n_bins": 30, "pool": "layer"}}.items():
            g = f.create_group(group)
            g["ixt"] = g["ity"] = np.ones((1, 2, 1))
            g["epochs"] = np.arange(2)
            g.attrs.update(attrs)
    found = {e.group: e.params for e in read_estimates(path)[0]}
    assert found["binning-layer_n30_layer"] == {"n_bins": 30, "range": "layer", "convention": "edges"}
    assert found["adaptive_n30"] == {"n_bins": 30, "pool": "unit"}
    assert found["adaptive_n30_layer"] == {"n_bins": 30, "pool": "layer"}


@pytest.mark.parametrize("sigma2,width,classes", [(1e-3, 3, 2), (0.1, 5, 3), (0.02, 1, 10)])
def test_kde_matches_reference(sigma2, width, classes):
    rng = np.random.default_rng(int(sigma2 * 1e4))
    acts = random_acts(rng, 2, width, np.float64, scale=0.5)
    y = rng.integers(0, classes, N)
    out = run("kde", acts, y, sigma2=sigma2)
    for b in range(2):
        ref = kde_reference(acts[b], y, sigma2)
        for bound in ("upper", "lower"):
            ixt, ity = out[bound]
            assert (ixt[b], ity[b]) == pytest.approx(ref[bound], rel=1e-6, abs=1e-9)


def test_kde_upper_at_least_lower():
    rng = np.random.default_rng(8)
    acts = random_acts(rng, 5, 4, scale=1.0)
    y = rng.integers(0, 2, N)
    out = run("kde", acts, y, sigma2=0.01)
    assert np.all(out["upper"][0] >= out["lower"][0] - 1e-12)
    assert np.any(out["upper"][0] > out["lower"][0] + 1e-3)


@pytest.mark.parametrize("name,params", DISCRETE)
def test_partition_symbols_are_the_cells_the_estimator_counts(name, params):
    """What claim iii clusters by (`partition_symbols`) gives each group's own numbers."""
    rng = np.random.default_rng(11)
    acts = random_acts(rng, 3, 3, scale=1.5)
    y = rng.integers(0, 3, N)
    est = estimators.get(name)
    values = est.resolve(params, {})
    block = Block(acts, np.arange(3))
    context = est.prepare(iter([block]), values) if est.prepare else None
    ixt, ity = est.estimate(block, Labels.from_labels(y), values, context)[""]
    for b in range(3):
        rows = partition_symbols(name, values, acts[b], None if context is None else context[b])
        assert plugin_reference(rows, y) == pytest.approx((ixt[b], ity[b]), abs=1e-12)


# ---- invariances -----------------------------------------------------------------------------


@pytest.mark.parametrize("name,params", ALL)
def test_invariant_to_permuting_samples_and_units(name, params):
    rng = np.random.default_rng(9)
    acts = random_acts(rng, 3, 4, scale=1.0)
    y = rng.integers(0, 2, N)
    rows, units = rng.permutation(N), rng.permutation(4)
    base = run(name, acts, y, **params)
    moved = run(name, acts[:, rows][:, :, units], y[rows], **params)
    for variant in base:
        for a, b in zip(base[variant], moved[variant]):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


# ---- parameters ------------------------------------------------------------------------------


def test_registry_lists_the_contract_names():
    assert {"binning", "binning-layer", "adaptive", "kde"} <= set(estimators.REGISTRY)
    assert [p.name for p in estimators.get("binning").params] == ["n_bins", "lo", "hi"]
    assert [p.default for p in estimators.get("binning").params] == [30, -1.0, 1.0]


@pytest.mark.parametrize("name,key,text", [
    ("binning", "n_bins", "thirty"), ("binning", "n_bins", "2.5"), ("binning", "n_bins", "1"),
    ("binning", "lo", "nan"), ("kde", "sigma2", "0"), ("kde", "sigma2", "-1"),
    ("binning-layer", "range", "seed"), ("adaptive", "n_bins", "0"), ("binning-layer", "convention", "bins"),
    ("adaptive", "pool", "seed"),
])
def test_bad_parameter_values_are_user_errors(name, key, text):
    with pytest.raises(UserError):
        estimators.get(name).param_index[key].parse(text)


def test_lo_must_be_below_hi():
    with pytest.raises(UserError):
        estimators.get("binning").resolve({"lo": 1.0}, {})


def test_kde_default_variance_follows_the_dataset():
    kde = estimators.get("kde")
    assert kde.resolve({}, {"dataset": "tishby12"})["sigma2"] == 1e-3
    assert kde.resolve({}, {"dataset": "mnist"})["sigma2"] == 0.1
    assert kde.resolve({}, {"dataset": "fashion-mnist"})["sigma2"] == 0.1
    with pytest.raises(UserError):
        kde.resolve({}, {"dataset": "cifar"})


def test_unknown_estimator_is_a_user_error():
    with pytest.raises(UserError, match="binning"):
        estimators.get("binnning")


def test_group_names():
    binning = estimators.get("binning")
    assert binning.group_name(binning.resolve({}, {}), "") == "binning_n30_lo-1_hi1"
    kde = estimators.get("kde")
    assert kde.group_name({"sigma2": 0.001}, "upper") == "kde_var0.001_upper"
