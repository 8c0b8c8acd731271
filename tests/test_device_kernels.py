"""The device path (sort and count on JAX's default device) against the host path and the
readable references: 1e-9 bits for the discrete estimators, 1e-6 relative for KDE."""

from __future__ import annotations

import dataclasses
import os

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ibrepro.analysis import estimators
from ibrepro.analysis.estimators import Block, Labels, discrete_device
from ibrepro.analysis.estimators.binning import binning_reference, layer_symbols
from ibrepro.analysis.estimators.discrete import plugin_reference
from ibrepro.analysis.estimators.placement import KERNELS_ENV, device_kernels
from ibrepro.errors import UserError

PATHS = ("host", "device")


def estimate(monkeypatch, path: str, name: str, acts: np.ndarray, y: np.ndarray, soft=None, **params):
    """{variant: (ixt, ity)} through the registry, on the host or the device path."""
    monkeypatch.setenv(KERNELS_ENV, path)
    est = estimators.get(name)
    values = est.resolve(params, {"dataset": "tishby12", "model": {"hidden": [acts.shape[2]]}})
    block = Block(np.ascontiguousarray(acts), np.arange(len(acts)))
    context = est.prepare(iter([block]), values) if est.prepare else None
    return est.estimate(block, Labels.from_labels(y, soft), values, context)


def both_paths(monkeypatch, name, acts, y, soft=None, **params):
    return [estimate(monkeypatch, path, name, acts, y, soft, **params) for path in PATHS]


def layer(rng, b: int, n: int, w: int, dtype=np.float32) -> np.ndarray:
    """tanh activations whose spread grows over the seed-epochs, with repeated rows (more in
    later seed-epochs) and a saturated unit."""
    acts = np.tanh(rng.normal(size=(b, n, w)) * np.geomspace(0.01, 4, b)[:, None, None])
    for k in range(b):  # seed-epoch k repeats its first n // (k + 1) rows
        acts[k] = acts[k, np.arange(n) % (n // (k + 1))]
    acts[0, :, 0] = 1.0  # a saturated unit, on the top edge
    return acts.astype(dtype)


@pytest.mark.parametrize("w", [3, 12, 40])  # one key; one key at the limit; hashed rows
@pytest.mark.parametrize("name,params", [("binning", {"n_bins": 30}), ("binning-layer", {}),
                                         ("binning-layer", {"range": "global"}),
                                         ("binning-layer", {"convention": "edges"}), ("adaptive", {"n_bins": 10}),
                                         ("adaptive", {"n_bins": 10, "pool": "layer"})])
def test_discrete_estimators_agree_across_paths(monkeypatch, name, params, w):
    rng = np.random.default_rng(w)
    acts, y = layer(rng, 5, 300, w), rng.integers(0, 3, 300)
    host, device = both_paths(monkeypatch, name, acts, y, **params)
    for got, want in zip(device[""], host[""]):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    assert np.ptp(host[""][0]) > 0.1  # the seed-epochs differ: a mix-up between them would show


def test_binning_device_path_is_np_digitize_on_edges_and_nan(monkeypatch):
    """Values exactly on an edge, an ulp either side of it, and NaN: as np.digitize puts them."""
    edges = np.linspace(-1, 1, 30)
    values = np.concatenate([edges, np.nextafter(edges, 2), np.nextafter(edges, -2), [np.nan, 5, -5]])
    rng = np.random.default_rng(0)
    acts = rng.permutation(np.stack([values, values[::-1], rng.permutation(values)], axis=1))[None]
    y = rng.integers(0, 2, len(values))
    for dtype in (np.float64, np.float32):
        ixt, ity = estimate(monkeypatch, "device", "binning", acts.astype(dtype), y)[""]
        want = plugin_reference(np.digitize(acts[0].astype(dtype), edges), y)
        assert abs(ixt[0] - want[0]) < 1e-9 and abs(ity[0] - want[1]) < 1e-9


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_interval_bins_on_edges_maximum_and_nan(monkeypatch, path, dtype):
    """binning-layer's intervals on both paths: values on the layer's interval edges, an ulp
    either side, the maximum (in the last interval) and NaN, as the readable reference bins them."""
    edges = np.linspace(-0.7, 1.5, 31).astype(dtype)  # no edge at 0 (XLA flushes subnormals to 0)
    values = np.concatenate([edges, np.nextafter(edges, 2)[:-1], np.nextafter(edges, -2)[1:], [np.nan]])
    rng = np.random.default_rng(1)
    acts = rng.permutation(values)[None, :, None].astype(dtype)  # one unit: a symbol per value's bin
    y = rng.integers(0, 2, len(values))
    ixt, ity = estimate(monkeypatch, path, "binning-layer", acts, y, n_bins=30)[""]
    want = plugin_reference(layer_symbols(acts[0], float(edges[0]), 1.5, 30, "intervals"), y)
    assert abs(ixt[0] - want[0]) < 1e-9 and abs(ity[0] - want[1]) < 1e-9
    assert want[0] > 4.5  # the values are spread over the 30 intervals


@pytest.mark.parametrize("w,levels", [(3, 4), (20, 16), (6, 0)])  # exact key; hashed levels; hashed values
def test_exact_agrees_across_paths(monkeypatch, w, levels):
    rng = np.random.default_rng(w)
    grid = rng.integers(0, max(levels, 5), size=(4, 400, w))
    acts = (grid * (2 / max(levels - 1, 1)) - 1).astype(np.float32)
    if levels == 0:  # arbitrary discrete values, allowed by a bound on distinct values per unit
        acts = rng.normal(size=5)[grid].astype(np.float64)
    y = rng.integers(0, 2, 400)
    host, device = both_paths(monkeypatch, "exact", acts, y, levels=str(max(levels, 5)))
    for got, want in zip(device[""], host[""]):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    for k in range(4):
        assert abs(device[""][0][k] - plugin_reference(grid[k], y)[0]) < 1e-9


@pytest.mark.parametrize("soft", [False, True])
def test_kde_agrees_across_paths(monkeypatch, soft):
    rng = np.random.default_rng(7)
    acts, y = layer(rng, 3, 1100, 5), rng.integers(0, 3, 1100)  # > ROWS inputs: several row steps
    p = rng.dirichlet(np.ones(3), size=1100) if soft else None
    host, device = both_paths(monkeypatch, "kde", acts, y, p, sigma2=0.05)
    for bound in ("upper", "lower"):
        for got, want in zip(device[bound], host[bound]):
            np.testing.assert_allclose(got, want, rtol=1e-6)
        assert host[bound][0].max() > 1 and host[bound][1].max() > 0.01  # not trivially zero


def test_hash_collisions_are_flagged_and_recounted(monkeypatch):
    """With every row hashed alike, each seed-epoch with two distinct rows is flagged; the
    information then comes from the exact host count."""
    rng = np.random.default_rng(3)
    symbols = rng.integers(0, 31, size=(3, 50, 14)).astype(np.uint32)  # too wide for one key
    symbols[2] = symbols[2, :1]  # one distinct row: equal hashes, no collision
    codes = rng.integers(0, 2, 50)
    with jax.enable_x64(True):
        _, _, collided = discrete_device.hashed_entropies(np.zeros((3, 50), np.uint64), codes, symbols)
    assert np.asarray(collided).tolist() == [True, True, False]
    labels = Labels.from_labels(codes)
    monkeypatch.setattr(discrete_device, "row_hash", lambda rows: jnp.zeros(rows.shape[:2], jnp.uint64))
    ixt, ity = discrete_device.symbol_information(symbols, 31, labels)
    for k in range(3):
        want = plugin_reference(symbols[k], codes)
        assert abs(ixt[k] - want[0]) < 1e-9 and abs(ity[k] - want[1]) < 1e-9


def test_wide_rows_are_hashed_and_exact():
    rng = np.random.default_rng(4)
    symbols = rng.integers(0, 31, size=(2, 200, 30))
    symbols[:, 100:] = symbols[:, :100]
    y = rng.integers(0, 10, 200)
    labels = Labels.from_labels(y)
    assert not discrete_device.fits_one_key(30, 31, labels)
    ixt, ity = discrete_device.symbol_information(symbols, 31, labels)
    for k in range(2):
        want = plugin_reference(symbols[k], y)
        assert abs(ixt[k] - want[0]) < 1e-9 and abs(ity[k] - want[1]) < 1e-9


def test_kernels_setting(monkeypatch):
    monkeypatch.setenv(KERNELS_ENV, "auto")
    assert device_kernels() is False  # the tests run on CPU devices: auto keeps the host path
    monkeypatch.setenv(KERNELS_ENV, "device")
    assert device_kernels() is True
    monkeypatch.setenv(KERNELS_ENV, "gpu")
    with pytest.raises(UserError, match="IBREPRO_KERNELS"):
        device_kernels()


def test_cli_kernels_give_the_same_estimates_file(tmp_path, tiny, monkeypatch):
    """A params-only trained cell analysed with --kernels host and --kernels device."""
    from typer.testing import CliRunner

    from ibrepro.cli import app
    from ibrepro.train.loop import train_experiment

    monkeypatch.setenv(KERNELS_ENV, "auto")  # restored after the test: --kernels sets it
    config = tiny("log.activations=false", name="k")
    train_experiment(config, tmp_path)
    cell = next((tmp_path / "k").glob("*.h5"))
    seen = {}
    binning = estimators.REGISTRY["binning"]

    def recording(block, labels, values, context):
        seen.setdefault(os.environ[KERNELS_ENV], set()).add(type(block.acts).__module__.split(".")[0])
        return binning.estimate(block, labels, values, context)

    monkeypatch.setitem(estimators.REGISTRY, "binning", dataclasses.replace(binning, estimate=recording))
    results = {}
    for kernels in PATHS:
        args = ["analyze", str(cell), "--no-progress", "--kernels", kernels, "--estimator", "binning",
                "--estimator", "binning-layer", "--estimator", "adaptive", "--estimator", "kde"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        with h5py.File(cell.with_suffix(".mi.h5"), "r") as f:
            results[kernels] = {g: (f[g]["ixt"][()], f[g]["ity"][()]) for g in f}
    # recomputed activations reach the device path as device arrays, the host path as numpy
    assert seen == {"host": {"numpy"}, "device": {"jaxlib"}}
    assert results["host"].keys() == results["device"].keys() and len(results["host"]) == 5
    for group, (ixt, ity) in results["host"].items():
        tol = dict(rtol=1e-6, atol=0) if group.startswith("kde") else dict(rtol=0, atol=1e-9)
        np.testing.assert_allclose(results["device"][group][0], ixt, **tol)
        np.testing.assert_allclose(results["device"][group][1], ity, **tol)
    bad = CliRunner().invoke(app, ["analyze", str(cell), "--no-progress", "--kernels", "gpu"])
    assert bad.exit_code != 0 and "--kernels must be one of" in bad.output


def test_exact_on_a_recomputed_quantized_cell_agrees_across_paths(tmp_path, tiny, monkeypatch):
    from ibrepro.analysis.analyze import analyze_path
    from ibrepro.train.loop import train_experiment

    train_experiment(tiny("log.activations=false", "model.quantize_bits=3", name="q"), tmp_path)
    cell = next((tmp_path / "q").glob("*.h5"))
    results = []
    for kernels in PATHS:
        monkeypatch.setenv(KERNELS_ENV, kernels)
        with h5py.File(analyze_path(cell, ["exact"], {}, progress=False)[0], "r") as f:
            results.append((f["exact/ixt"][()], f["exact/ity"][()]))
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    assert np.ptp(results[0][0]) > 0.1


def test_uneven_blocks_of_a_recomputed_cell_agree_across_paths(tmp_path, tiny, monkeypatch):
    """Blocks of 4 seed-epochs over 7 snapshots: the last block of each seed is filled up with
    copies on the device as on the host, and the copies' results are dropped."""
    from ibrepro.analysis import stream
    from ibrepro.analysis.analyze import analyze_path
    from ibrepro.train.loop import train_experiment

    train_experiment(tiny("log.activations=false", "log.snapshots=7", name="u"), tmp_path)
    cell = next((tmp_path / "u").glob("*.h5"))
    monkeypatch.setattr(stream, "BLOCK_BYTES", 4 * 4096 * 6 * 4)  # 4 seed-epochs of the widest layer
    results = []
    for kernels in PATHS:
        monkeypatch.setenv(KERNELS_ENV, kernels)
        with h5py.File(analyze_path(cell, ["binning", "kde"], {}, progress=False)[0], "r") as f:
            results.append({g: (f[g]["ixt"][()], f[g]["ity"][()]) for g in f})
    host, device = results
    assert host.keys() == device.keys() and host["binning_n30_lo-1_hi1"][0].shape == (2, 7, 3)
    for group, arrays in host.items():
        tol = dict(rtol=1e-6, atol=0) if group.startswith("kde") else dict(rtol=0, atol=1e-9)
        for got, want in zip(device[group], arrays):
            np.testing.assert_allclose(got, want, **tol)


def test_binning_device_path_matches_the_reference(monkeypatch):
    rng = np.random.default_rng(9)
    acts, y = layer(rng, 2, 200, 7, np.float64), rng.integers(0, 2, 200)
    ixt, ity = estimate(monkeypatch, "device", "binning", acts, y, n_bins=12, lo=-0.9, hi=0.9)[""]
    for k in range(2):
        want = binning_reference(acts[k], -0.9, 0.9, 12, y)
        assert abs(ixt[k] - want[0]) < 1e-9 and abs(ity[k] - want[1]) < 1e-9
