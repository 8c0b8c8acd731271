"""The activation reader: stored or recomputed from params/ (bit for bit), v1 files, structure."""

import h5py
import jax
import numpy as np
import pytest
from helpers import mnist_data_dir, tiny_config

from ibrepro import config as cfg
from ibrepro.analysis.activations import RecomputedLayer, activation_layers, block_layers
from ibrepro.analysis.analyze import analyze_path
from ibrepro.errors import UserError
from ibrepro.train.loop import train_cell
from ibrepro.train.model import MLP, make_model
from ibrepro.train.recorded import layer_outputs
from ibrepro.train.runfile import complete_epochs, open_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same cell trained with and without stored activations."""
    root = tmp_path_factory.mktemp("acts")
    config = tiny_config("train.seeds=3", "train.epochs=20", "log.snapshots=8")
    stored, bare = root / "stored.h5", root / "bare.h5"
    train_cell("cell", config, stored)
    train_cell("cell", tiny_config("train.seeds=3", "train.epochs=20", "log.snapshots=8",
                                   "log.activations=false"), bare)
    return config, stored, bare


def test_recomputed_activations_equal_stored_bit_for_bit(runs):
    config, stored, _ = runs
    with open_run(stored) as run:
        layers = activation_layers(run)
        model, x = make_model(config, 2), run["data/x"][()]
        for k, data in enumerate(layers):
            again = RecomputedLayer(run, k, model, x, "float32", data.shape[-1])
            assert again.shape == data.shape
            assert np.array_equal(again[:, :], data[()]), k
            assert np.array_equal(again[1, 2:5], data[1, 2:5])
            out = np.zeros((2, 1, *data.shape[2:]), np.float32)
            again.read_direct(out, np.s_[0:2, 3:4], np.s_[:, :])
            assert np.array_equal(out, data[0:2, 3:4])


@pytest.mark.parametrize("bits", [0, 4])
def test_a_parameter_set_gives_the_same_outputs_whatever_shares_its_call(bits):
    """784 inputs into 7 units: the shape where a vmap over parameter sets (XLA's one product
    of B x 7 columns) moved values by ~1e-6 between B = 1 and B = 3 on CPU, and a quantized
    layer's grid with its minimum."""
    model = MLP(hidden=(7, 4), n_classes=3, quantize_bits=bits)
    x = np.random.default_rng(0).standard_normal((256, 784)).astype(np.float32)
    sets = [model.init(jax.random.key(i), x[:1])["params"] for i in range(5)]
    stacked = jax.tree.map(lambda *a: np.stack(a), *sets)
    together = layer_outputs(model, stacked, x)
    backwards = layer_outputs(model, jax.tree.map(lambda a: a[::-1], stacked), x)
    for i, one in enumerate(sets):
        alone = layer_outputs(model, jax.tree.map(lambda a: a[None], one), x)
        for k in range(3):
            assert np.array_equal(alone[k][0], together[k][i]), (i, k)
            assert np.array_equal(backwards[k][4 - i], together[k][i]), (i, k)
    assert len({together[0][i].tobytes() for i in range(5)}) == 5  # the sets differ


@pytest.mark.skipif(mnist_data_dir() is None, reason="MNIST files not found (../shared/data)")
@pytest.mark.parametrize("bits", [0, 4])
def test_mnist_recomputed_equals_recorded_in_any_block(tmp_path, bits):
    """The issue's case: a trained MNIST cell with a narrow first layer, recomputed in one
    block, seed by seed and seed-epoch by seed-epoch, equals what training recorded."""
    config = cfg.resolve({"name": "m", "dataset": "mnist", "data": {"dir": str(mnist_data_dir())}},
                         ["model.hidden=[7, 4]", f"model.quantize_bits={bits}", "train.seeds=2",
                          "train.epochs=2", "train.batch_size=128", "train.train_fraction=0.01",
                          "log.snapshots=3", "log.eval_samples=256", "log.train_metric_samples=256"])
    path = tmp_path / "cell.h5"
    train_cell("cell", config, path)
    with open_run(path) as run:
        recorded = [layer[()] for layer in activation_layers(run)]
        model, x = make_model(config, 10), run["data/x"][()]
        seeds, epochs = recorded[0].shape[:2]
        for k, data in enumerate(recorded):
            again = RecomputedLayer(run, k, model, x, "float32", data.shape[-1])
            assert np.array_equal(again[:, :], data), k
            for s in range(seeds):
                assert np.array_equal(again[s, :], data[s]), (k, s)
                for e in range(epochs):
                    assert np.array_equal(again[s, e], data[s, e]), (k, s, e)


def test_block_of_all_layers_from_params_equals_stored(runs):
    _, stored, bare = runs
    with open_run(stored) as a, open_run(bare) as b:
        kept, again = block_layers(a, np.s_[1:3], np.s_[2:7]), block_layers(b, np.s_[1:3], np.s_[2:7])
        assert isinstance(activation_layers(b)[0], RecomputedLayer)
    assert [x.shape for x in kept] == [(2, 5, 4096, w) for w in (6, 4, 2)]
    assert all(np.array_equal(x, y) for x, y in zip(kept, again))


def test_params_only_file_is_small_and_analyses_the_same(runs, tmp_path):
    _, stored, bare = runs
    with h5py.File(bare, "r") as f:
        assert "activations" not in f and f["params/0/kernel"].shape == (3, 8, 12, 6)
        assert f["params/2/bias"].dtype == np.float32
        with h5py.File(stored, "r") as g:  # the same training: the same parameters
            assert np.array_equal(f["params/1/kernel"][()], g["params/1/kernel"][()])
    assert bare.stat().st_size < stored.stat().st_size / 10
    results = []
    for path in (stored, bare):
        analyze_path(path, ["binning"], progress=False)
        with h5py.File(path.with_name(path.stem + ".mi.h5"), "r") as f:
            group = f[next(iter(f))]
            results.append((group["ixt"][()], group["ity"][()]))
    assert np.array_equal(results[0][0], results[1][0]) and np.array_equal(results[0][1], results[1][1])
    assert np.isfinite(results[0][0]).all()


@pytest.mark.parametrize("estimator, settings", [("kde", ["every=3"]), ("adaptive", ["seeds=0,2", "every=2"])])
def test_block_major_recompute_analyses_as_stored(runs, tmp_path, estimator, settings, monkeypatch):
    """Thinned epochs, seed subsets and fixed-size blocks through the shared recompute, in
    blocks small enough that a layer spans several of them."""
    from ibrepro.analysis import stream

    monkeypatch.setattr(stream, "BLOCK_ROWS", 4096 * 3)
    _, stored, bare = runs
    groups = []
    for path in (stored, bare):
        copy = tmp_path / path.name
        copy.write_bytes(path.read_bytes())
        analyze_path(copy, [estimator], settings, progress=False, workers=2)
        with h5py.File(copy.with_name(copy.stem + ".mi.h5"), "r") as f:
            groups.append({name: (g["ixt"][()], g["ity"][()]) for name, g in f.items()})
    assert groups[0].keys() == groups[1].keys()
    for name, (ixt, ity) in groups[0].items():
        np.testing.assert_array_equal(groups[1][name][0], ixt)
        np.testing.assert_array_equal(groups[1][name][1], ity)
        assert np.isfinite(ixt).all()


def _as_version_1(source, target):
    """A version-1 file from a v2 one: growing arrays cut to the complete snapshots, no params/."""
    with h5py.File(source, "r") as src, h5py.File(target, "w") as dst:
        n = complete_epochs(src)
        for key in ("config", "ibrepro_version"):
            dst.attrs[key] = src.attrs[key]
        dst.attrs.update(schema="ibrepro-run/1", status="complete")
        dst["epochs"] = src["epochs"][:n]
        for name in ("data/x", "data/y", "data/train_mask"):
            dst[name] = src[name][()]
        for group in ("activations", "metrics", "gradients"):
            for key in src[group]:  # (version 1 had no coordinate variables: the 1-D seed/epoch/layer)
                if src[f"{group}/{key}"].ndim > 1:
                    dst[f"{group}/{key}"] = src[f"{group}/{key}"][:, :n]


def test_version_1_files_are_still_read(runs, tmp_path):
    _, stored, _ = runs
    old = tmp_path / "old.h5"
    _as_version_1(stored, old)
    with open_run(old) as run, open_run(stored) as new:
        assert [d.shape for d in activation_layers(run)] == [d.shape for d in activation_layers(new)]
        assert np.array_equal(activation_layers(run)[1][()], activation_layers(new)[1][()])
    assert analyze_path(old, ["binning"], progress=False)


def test_unknown_schema_names_found_and_readable(runs, tmp_path):
    _, stored, _ = runs
    other = tmp_path / "other.h5"
    other.write_bytes(stored.read_bytes())
    with h5py.File(other, "r+", locking=False) as f:
        f.attrs["schema"] = "ibrepro-run/9"
    with pytest.raises(UserError, match=r"ibrepro-run/9.*reads ibrepro-run/1, ibrepro-run/2"):
        open_run(other)


@pytest.mark.parametrize("damage, words", [
    (lambda f: f.__delitem__("params/1"), "params/1/kernel is missing"),
    (lambda f: f.__delitem__("activations/1"), "activations/1 is missing"),
    (lambda f: f.create_dataset("params/5/kernel", data=np.zeros(1)), "params/5 is not a layer"),
])
def test_structure_errors_name_the_dataset(runs, tmp_path, damage, words):
    _, stored, _ = runs
    broken = tmp_path / "broken.h5"
    broken.write_bytes(stored.read_bytes())
    with h5py.File(broken, "r+", locking=False) as f:
        damage(f)
    with open_run(broken) as run, pytest.raises(UserError, match=words):
        activation_layers(run)
    with pytest.raises(UserError, match=words):
        analyze_path(broken, ["binning"], progress=False)


def test_params_shapes_that_do_not_match_the_config_are_named(runs, tmp_path):
    _, _, bare = runs
    broken = tmp_path / "broken.h5"
    broken.write_bytes(bare.read_bytes())
    with h5py.File(broken, "r+", locking=False) as f:
        del f["params/1/kernel"]
        f.create_dataset("params/1/kernel", data=np.zeros((3, 8, 6, 3), np.float32))
    with pytest.raises(UserError, match=r"params/1/kernel has shape \(3, 8, 6, 3\)"):
        analyze_path(broken, ["binning"], progress=False)


def test_claims_global_ranges_from_params_equal_stored(runs):
    from ibrepro.claims.inputs import global_ranges

    _, stored, bare = runs
    seeds = np.array([0, 2])
    ranges = global_ranges(stored, seeds)
    with open_run(stored) as run:
        n = complete_epochs(run)
        layers = [np.asarray(layer[:, :n])[seeds] for layer in activation_layers(run)]
    expected = np.stack([np.min([a.min(axis=(1, 2, 3)) for a in layers], axis=0),
                         np.max([a.max(axis=(1, 2, 3)) for a in layers], axis=0)], axis=1)
    np.testing.assert_array_equal(ranges, expected)
    np.testing.assert_array_equal(global_ranges(bare, seeds), ranges)
