"""Minibatches, gradient statistics against a hand calculation, seed independence, and the
small training/analysis fixes of issue 11 (full-batch warning, sweep growth, every=K, float16)."""

from __future__ import annotations

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import optax
from helpers import tiny_config
from typer.testing import CliRunner

from ibrepro.analysis import estimators
from ibrepro.analysis.analyze import analyze_path
from ibrepro.analysis.estimators import Block, Labels
from ibrepro.cli import app
from ibrepro.data import full_batch, prepare
from ibrepro.train.engine import SeedData, SharedData, kernels
from ibrepro.train.loop import make_trainer, seed_keys, train_cell, train_experiment
from ibrepro.train.runfile import open_run

# 5 % of the 4096 patterns = 205 rows, batch 64: three full minibatches and one of 13
PARTIAL = ("train.train_fraction=0.05", "train.batch_size=64", "train.seeds=1")


def _trainer(*overrides):
    config = tiny_config(*PARTIAL, *overrides)
    arrays = prepare(config)
    return make_trainer(config, arrays), arrays


def test_every_training_row_once_per_epoch_in_a_new_order():
    trainer, arrays = _trainer()
    key = seed_keys(0, 1)[0]
    train_idx = jnp.asarray(arrays.train_idx[0])
    orders = []
    for epoch in range(2):
        rows, weights = trainer.minibatches(jax.random.fold_in(key, epoch), train_idx)
        rows, weights = np.asarray(rows), np.asarray(weights)
        assert rows.shape == (4, 64) and weights.sum(axis=1).tolist() == [64, 64, 64, 13]
        used = rows[weights > 0]
        np.testing.assert_array_equal(np.sort(used), np.sort(arrays.train_idx[0]))  # each once
        orders.append(used)
    assert not np.array_equal(orders[0], orders[1])


def test_gradient_statistics_weight_the_partial_minibatch():
    """mean = ‖Σ_b (n_b/n) g_b‖, std² = Σ_elements Σ_b (n_b/n)(g_b − mean)² (DESIGN §5)."""
    trainer, arrays = _trainer()
    key = jax.random.fold_in(seed_keys(0, 1)[0], 0)
    shared = SharedData(*(jnp.asarray(a) for a in (arrays.x_pool, arrays.y_pool,
                                                   arrays.x_eval, arrays.y_eval)))
    seed = SeedData(key, jnp.asarray(arrays.train_idx[0]), jnp.asarray(arrays.test_weight[0]))
    state = trainer.init_state(seed_keys(0, 1)[0], 12)
    got = np.asarray(trainer.epoch(state, key, shared, seed).grad_stats)

    params, opt_state = state.params, state.opt_state
    grads, shares = [], []
    for rows_b, weight_b in zip(*trainer.minibatches(key, seed.train_idx)):
        g = jax.grad(trainer._loss)(params, shared.x_pool[rows_b], shared.y_pool[rows_b], weight_b,
                                   jax.random.PRNGKey(0))  # the key draws noise or dropout: none here
        updates, opt_state = trainer.optimizer.update(g, opt_state, params)
        params = optax.apply_updates(params, updates)
        grads.append([np.asarray(k, np.float64) for k in kernels(g)])
        shares.append(float(weight_b.sum()) / 205)
    assert shares[-1] == 13 / 205
    for layer in range(len(grads[0])):
        g = np.stack([gb[layer] for gb in grads])
        w = np.asarray(shares).reshape(-1, *([1] * (g.ndim - 1)))
        mean = (w * g).sum(axis=0)
        var = (w * (g - mean) ** 2).sum(axis=0)
        np.testing.assert_allclose(got[0, layer], np.linalg.norm(mean), rtol=2e-5)
        np.testing.assert_allclose(got[1, layer], np.sqrt(var.sum()), rtol=2e-4)
        np.testing.assert_allclose(got[2, layer], np.linalg.norm(kernels(params)[layer]), rtol=1e-6)


def test_a_seed_does_not_depend_on_the_seeds_beside_it(tmp_path):
    """Seed 0 alone (1 device) and beside another seed (2 devices): equal to a few float32 ulps."""
    finals = []
    for n_seeds in (1, 2):
        path = tmp_path / f"s{n_seeds}.h5"
        train_cell("cell", tiny_config(f"train.seeds={n_seeds}", "train.epochs=4",
                                                            "log.snapshots=2"), path)
        with open_run(path) as run:
            finals.append([run[f"activations/{k}"][0, -1] for k in range(3)])
    for other in finals[1:]:
        for a, b in zip(finals[0], other):
            np.testing.assert_allclose(a, b, rtol=0, atol=2e-6)  # |a| <= 1 (tanh)


def _cli(*args):
    result = CliRunner().invoke(app, list(map(str, args)))
    return result.exit_code, result.output


def test_train_warns_once_for_full_batch(tmp_path):
    for batch, full in ((0, True), (205, True), (300, True), (204, False), (64, False)):
        assert full_batch(tiny_config("train.train_fraction=0.05", f"train.batch_size={batch}")) == full
    path = tmp_path / "exp.toml"
    path.write_text("name = 'x'\ndataset = 'tishby12'\n[model]\nhidden = [4]\n"
                    "[sweep]\n'train.batch_size' = [256, 64]\n")
    code, output = _cli("train", path, "--out", tmp_path, "--set", "train.seeds=1", "--set",
                        "train.epochs=1", "--set", "log.snapshots=2", "--set",
                        "train.train_fraction=0.05", "--no-progress")
    assert code == 0, output
    assert output.count("full-batch gradient descent") == 1 and "no minibatch noise" in output
    warning = output.split("no minibatch noise")[0]
    assert "batch_size-256" in warning and "batch_size-64" not in warning


def test_growing_a_sweep_keeps_finished_cells(tmp_path):
    base = ("train.seeds=1", "train.epochs=1", "log.snapshots=2", "model.hidden=[4]")
    first = train_experiment(tiny_config(*base, "sweep.train.lr=[0.01]", name="grow"), tmp_path)
    grown = train_experiment(tiny_config(*base, "sweep.train.lr=[0.01, 0.02]", name="grow"), tmp_path)
    assert [o for _, o in first] == ["trained"]
    assert [o for _, o in grown] == ["skipped", "trained"]


def test_every_k_keeps_the_last_logged_epoch(tmp_path):
    path = tmp_path / "cell.h5"
    train_cell("cell", tiny_config("train.seeds=1", "train.epochs=20", "log.snapshots=8"), path)
    with open_run(path) as run:
        logged = run["epochs"][()]
    assert (len(logged) - 1) % 3 != 0  # so arange(0, E, 3) alone would miss the last epoch
    analyze_path(path, ["binning"], {"every": "3"}, progress=False)
    with h5py.File(path.with_name("cell.mi.h5"), "r") as f:
        (group,) = [g for g in f.values() if g.attrs.get("every") == 3]
        epochs = group["epochs"][()]
    np.testing.assert_array_equal(epochs, np.append(logged[::3], logged[-1]))


def test_binning_of_float16_activations_matches_float64_binning_of_the_same_values():
    rng = np.random.default_rng(3)
    acts = np.tanh(rng.normal(size=(2, 4096, 5)) * 2).astype(np.float16)
    acts[0, :50, 0] = np.linspace(-1, 1, 30, dtype=np.float16)[rng.integers(0, 30, 50)]  # on edges
    y = rng.integers(0, 2, 4096)
    est = estimators.get("binning")
    values = est.resolve({}, {"dataset": "tishby12"})
    got = est.estimate(Block(acts, np.arange(2)), Labels.from_labels(y), values, None)[""]
    edges = np.linspace(-1, 1, 30)
    for s in range(2):
        _, t = np.unique(np.digitize(acts[s].astype(np.float64), edges), axis=0, return_inverse=True)
        t = t.ravel()
        h = lambda v: -sum(c / v.size * np.log2(c / v.size) for c in np.bincount(v) if c)  # noqa: E731
        h_t = h(t)
        h_ty = sum((y == c).mean() * h(t[y == c]) for c in (0, 1))
        np.testing.assert_allclose([got[0][s], got[1][s]], [h_t, h_t - h_ty], atol=1e-9)
