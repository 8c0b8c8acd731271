import json

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import tiny_config
from typer.testing import CliRunner

from ibrepro.analysis.analyze import analyze_path
from ibrepro.claims.judge import judge_path
from ibrepro.cli import app
from ibrepro.data import prepare
from ibrepro.errors import UserError
from ibrepro.train.engine import kernels
from ibrepro.train.loop import make_trainer, seed_keys, train_cell, train_experiment
from ibrepro.train.runfile import SCHEMA, checkpoint_path, complete_epochs, open_run, run_status
from ibrepro.train.schedule import logged_epochs


def _read_all(path):
    with h5py.File(path, "r") as f:
        out = {}
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
        return out


def test_splits_differ_per_seed_and_respect_fraction():
    arrays = prepare(tiny_config("train.seeds=3", "train.train_fraction=0.25"))
    assert arrays.train_idx.shape == (3, 1024)
    assert (arrays.train_mask.sum(axis=1) == 1024).all()
    assert not np.array_equal(arrays.train_idx[0], arrays.train_idx[1])
    for s in range(3):
        assert len(np.unique(arrays.train_idx[s])) == 1024
        assert arrays.train_mask[s, arrays.train_idx[s]].all()


def test_run_file_contract(tmp_path):
    config = tiny_config()
    path = tmp_path / "cell.h5"
    assert train_cell("cell", config, path) == "trained"
    schedule = logged_epochs(12, 6)
    E, S = len(schedule), 2
    with open_run(path) as f:
        assert f.attrs["schema"] == SCHEMA and run_status(f) == "complete"
        assert json.loads(f.attrs["config"]) == config
        assert "ibrepro_version" in f.attrs
        assert np.array_equal(f["epochs"][()], schedule)
        assert f["data/x"].shape == (4096, 12) and f["data/y"].shape == (4096,)
        assert f["data/train_mask"].shape == (S, 4096) and f["data/train_mask"].dtype == bool
        widths = [6, 4, 2]
        assert sorted(f["activations"]) == ["0", "1", "2"]
        for k, w in enumerate(widths):
            assert f[f"activations/{k}"].shape == (S, E, 4096, w)
            assert f[f"activations/{k}"].dtype == np.float32
        probs = f["activations/2"][()]
        assert np.allclose(probs.sum(-1), 1, atol=1e-5)  # the output layer is softmax
        assert np.abs(f["activations/0"][()]).max() <= 1  # tanh
        for name in ("train_loss", "test_loss", "train_acc", "test_acc"):
            assert f[f"metrics/{name}"].shape == (S, E)
            assert np.isfinite(f[f"metrics/{name}"][()]).all()
        for name in ("mean_norm", "std_norm", "weight_norm"):
            g = f[f"gradients/{name}"][()]
            assert g.shape == (S, E, 3)
            assert np.isnan(g[:, 0]).all() and (g[:, 1:] > 0).all()  # epoch 0: no minibatches yet
    assert not checkpoint_path(path).exists()


def test_tiny_cell_learns(tmp_path):
    config = tiny_config("train.epochs=150", "log.snapshots=10")
    path = tmp_path / "cell.h5"
    train_cell("cell", config, path)
    with open_run(path) as f:
        acc = f["metrics/train_acc"][()]
        loss = f["metrics/train_loss"][()]
    assert (acc[:, -1] > 0.8).all(), acc[:, -1]
    assert (loss[:, -1] < loss[:, 0]).all()


def test_gradient_statistics_full_batch(tmp_path):
    """Full batch: one minibatch per epoch, so std is 0 and mean is the gradient's norm."""
    config = tiny_config("train.batch_size=0", "train.epochs=1", "log.snapshots=2", "train.seeds=2")
    path = tmp_path / "cell.h5"
    train_cell("cell", config, path)
    arrays = prepare(config)
    trainer = make_trainer(config, arrays)
    with open_run(path) as f:
        mean, std, wnorm = (f[f"gradients/{n}"][:, 1] for n in ("mean_norm", "std_norm", "weight_norm"))
    keys = seed_keys(0, 2)
    for s in range(2):
        state = trainer.init_state(keys[s], 12)
        rows = arrays.train_idx[s]
        grads = jax.grad(trainer._loss)(state.params, arrays.x_pool[rows], arrays.y_pool[rows],
                                        jnp.ones(len(rows)), keys[s])  # no noise: any key
        expected = [float(jnp.linalg.norm(g)) for g in kernels(grads)]
        assert np.allclose(mean[s], expected, rtol=1e-4)
        assert np.allclose(std[s], 0, atol=1e-6 * max(expected))
        updates, _ = trainer.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        assert np.allclose(wnorm[s], [float(jnp.linalg.norm(w)) for w in kernels(params)], rtol=1e-5)


@pytest.mark.parametrize("perturb", [[], ["model.noise_std=0.05", "model.dropout=0.2"]])
def test_interrupted_run_resumes_identically(tmp_path, perturb):
    config = tiny_config("train.epochs=40", "log.snapshots=15", "log.checkpoint_seconds=1e-9", *perturb)
    whole = tmp_path / "whole.h5"
    train_cell("cell", config, whole)

    parts = tmp_path / "parts.h5"
    seen = []

    def stop_after_eight(snapshot):
        seen.append(snapshot.epoch)
        if len(seen) == 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_cell("cell", config, parts, on_snapshot=stop_after_eight)
    with h5py.File(parts, "r") as f:
        assert run_status(f) == "running" and 0 < complete_epochs(f) < 15
    assert checkpoint_path(parts).exists()
    assert train_cell("cell", config, parts) == "resumed"
    a, b = _read_all(whole), _read_all(parts)
    assert a.keys() == b.keys()
    for name in a:
        assert np.array_equal(a[name], b[name], equal_nan=True), name
    assert train_cell("cell", config, parts) == "skipped"


def test_changed_config_is_refused_unless_forced(tmp_path):
    config = tiny_config()
    path = tmp_path / "cell.h5"
    train_cell("cell", config, path)
    before = path.read_bytes()
    changed = tiny_config("train.epochs=13")
    with pytest.raises(UserError, match="train.epochs"):
        train_cell("cell", changed, path)
    assert path.read_bytes() == before
    assert train_cell("cell", changed, path, force=True) == "trained"


def test_forced_start_over_sets_the_old_results_aside(tmp_path):
    """train, analyze, claims, then train --force with another config: no estimates or claims
    of the old run stay beside the new run file; they are kept as <name>.old-<old run id>."""
    path = tmp_path / "cell.h5"
    train_cell("cell", tiny_config(), path)
    analyze_path(path, ["binning"], progress=False)
    judge_path(path)
    with h5py.File(path, "r") as run:
        old_id = run.attrs["run_id"]
    old_estimates = (tmp_path / "cell.mi.h5").read_bytes()
    notes = []
    assert train_cell("cell", tiny_config("train.epochs=13"), path, force=True, say=notes.append) == "trained"
    assert not (tmp_path / "cell.mi.h5").exists() and not (tmp_path / "cell.claims.json").exists()
    assert (tmp_path / f"cell.mi.h5.old-{old_id}").read_bytes() == old_estimates
    assert (tmp_path / f"cell.claims.json.old-{old_id}").exists()
    assert notes == [f"cell.h5: a new run; the previous run's results set aside as cell.mi.h5.old-{old_id}, "
                     f"cell.claims.json.old-{old_id}"]
    analyze_path(path, ["binning"], progress=False)  # the new estimates are the new run's
    with h5py.File(path, "r") as run, h5py.File(tmp_path / "cell.mi.h5", "r") as estimates:
        new_id = run.attrs["run_id"]
        assert new_id != old_id and all(g.attrs["run_id"] == new_id for g in estimates.values())
    # a resumed or finished cell keeps its results
    assert train_cell("cell", tiny_config("train.epochs=13"), path) == "skipped"
    assert (tmp_path / "cell.mi.h5").exists()


def test_full_training_set_gives_nan_test_metrics(tmp_path):
    config = tiny_config("train.train_fraction=1.0")
    train_cell("cell", config, tmp_path / "cell.h5")
    with open_run(tmp_path / "cell.h5") as f:
        assert np.isnan(f["metrics/test_loss"][()]).all()
        assert np.isfinite(f["metrics/train_loss"][()]).all()


def test_sweep_writes_one_file_per_cell(tmp_path):
    config = tiny_config("sweep.train.lr=[0.01, 0.02]", "sweep.model.activation=['tanh', 'relu']",
                         name="sweep")
    results = train_experiment(config, tmp_path)
    names = sorted(p.name for p, _ in results)
    assert names == ["lr-0.01_activation-relu.h5", "lr-0.01_activation-tanh.h5",
                     "lr-0.02_activation-relu.h5", "lr-0.02_activation-tanh.h5"]
    with open_run(tmp_path / "sweep" / names[0]) as f:
        assert json.loads(f.attrs["config"])["model"]["activation"] == "relu"
        assert f["activations/0"][()].min() >= 0  # relu


runner = CliRunner()


def _cli(*args):
    result = runner.invoke(app, list(map(str, args)))
    return result.exit_code, result.output


@pytest.mark.parametrize("content, words", [
    ("name = 'x'\ndataset = 'tishby12'\n[train]\nepochs = -5\n", "train.epochs"),
    ("name = 'x'\ndataset = 'tishby12'\n[train]\ntrain_fraction = 0\n", "train_fraction"),
    ("name = 'x'\ndataset = 'tishby12'\n[train]\nseeds = 0\n", "train.seeds"),
    ("name = 'x'\ndataset = 'tishby12'\n[model]\nactivation = 'foo'\n", "activation"),
    ("name = 'x'\ndataset = 'tishby12'\n[model]\nsize = 3\n", "model.size"),
    ("name = 'x\n", "not valid TOML"),
])
def test_cli_bad_config_is_one_line(tmp_path, content, words):
    path = tmp_path / "exp.toml"
    path.write_text(content)
    code, output = _cli("train", path, "--out", tmp_path / "runs", "--no-progress")
    assert code != 0
    assert words in output
    assert "Traceback" not in output
    assert len([line for line in output.splitlines() if line.strip()]) == 1
    assert not (tmp_path / "runs" / "x").exists() or not any((tmp_path / "runs" / "x").iterdir())


def test_cli_missing_file_and_unwritable_out(tmp_path):
    code, output = _cli("train", tmp_path / "nope.toml", "--no-progress")
    assert code != 0 and "no experiment file" in output and "Traceback" not in output
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    path = tmp_path / "exp.toml"
    path.write_text("name = 'x'\ndataset = 'tishby12'\n")
    code, output = _cli("train", path, "--out", blocker, "--no-progress")
    assert code != 0 and "cannot create output directory" in output and "Traceback" not in output
    assert blocker.read_text() == "not a directory"


def test_cli_train_runs_and_skips(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text("name = 'x'\ndataset = 'tishby12'\n[model]\nhidden = [6, 4]\n")
    args = ("train", path, "--out", tmp_path / "runs", "--set", "train.seeds=2", "--set", "train.epochs=3",
            "--set", "log.snapshots=3", "--set", "train.lr=0.01", "--no-progress")
    code, output = _cli(*args)
    assert code == 0, output
    assert "1 trained" in output
    code, output = _cli(*args)
    assert code == 0 and "1 skipped" in output
    code, output = _cli(*args[:-1], "--set", "train.epochs=4", "--no-progress")
    assert code != 0 and "train.epochs" in output and "--force" in output


def test_cli_says_once_that_a_full_training_set_has_no_test_metrics(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text("name = 'x'\ndataset = 'tishby12'\n[model]\nhidden = [6, 4]\n")
    code, output = _cli("train", path, "--out", tmp_path / "runs", "--set", "train.seeds=2",
                        "--set", "train.epochs=2", "--set", "log.snapshots=2", "--set", "train.lr=0.01",
                        "--set", "train.train_fraction=1.0", "--no-progress")
    assert code == 0, output
    assert output.count("test metrics are NaN") == 1
