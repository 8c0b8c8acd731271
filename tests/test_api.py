"""The public Python API (`ibrepro.<name>`): the CLI's numbers, bit for bit; views of a run;
one ValueError naming the argument for bad input; a light `import ibrepro`."""

from __future__ import annotations

import doctest
import importlib
import subprocess
import sys

import numpy as np
import pytest
from helpers import tiny_config
from typer.testing import CliRunner

import ibrepro
from ibrepro.cli import app

API_MODULES = ["ibrepro", "ibrepro.api.mi", "ibrepro.api.runview", "ibrepro.api.estimates", "ibrepro.api.ownrun",
               "ibrepro.api.verdicts", "ibrepro.api.stages"]


def cli(*args) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny trained cell analysed by the CLI with binning and KDE."""
    out = tmp_path_factory.mktemp("runs")
    [(path, outcome)] = ibrepro.stages.train(tiny_config("train.seeds=2"), out)
    assert outcome == "trained"
    cli("analyze", path, "--estimator", "binning", "--estimator", "kde", "--no-progress")
    return path


@pytest.mark.parametrize("module", API_MODULES)
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_all_names_resolve_and_nothing_else_is_public():
    assert set(ibrepro.__all__) == set(ibrepro._EXPORTS) | {"__version__"}
    for name in ibrepro.__all__:
        assert getattr(ibrepro, name) is not None
    with pytest.raises(AttributeError):
        ibrepro.not_a_name  # noqa: B018


def test_import_is_light():
    code = ("import sys, time; t = time.perf_counter(); import ibrepro; dt = time.perf_counter() - t; "
            "heavy = sorted(m for m in ('jax', 'matplotlib', 'xarray', 'h5py', 'pandas') if m in sys.modules); "
            "print(heavy, dt)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("[] "), out


@pytest.mark.parametrize("estimator, settings, group", [
    ("binning", {}, "binning_n30_lo-1_hi1"),
    ("kde", {"bound": "upper"}, "kde_var0.001_upper"),
    ("kde", {"bound": "lower"}, "kde_var0.001_lower"),
])
def test_estimate_equals_analyze_bit_for_bit(trained, estimator, settings, group):
    run = ibrepro.open_run(trained)
    stored = ibrepro.open_estimates(trained)[group]
    for k in range(len(run.layers)):
        acts = run.activations(k).values  # (S, E, N, w) as stored (float32)
        mi = ibrepro.estimate(acts, run.y, estimator, **settings)
        assert mi.ixt.shape == acts.shape[:2]
        np.testing.assert_array_equal(mi.ixt, stored.ixt.isel(layer=k).values)
        np.testing.assert_array_equal(mi.ity, stored.ity.isel(layer=k).values)


def test_run_view(trained):
    run = ibrepro.open_run(trained)
    assert run.status == "complete" and run.config["model"]["hidden"] == [6, 4]
    assert run.widths == (6, 4, 2) and len(run.layers) == 3
    metrics, gradients = run.metrics, run.gradients
    assert metrics.train_loss.dims == ("seed", "epoch")
    assert metrics.epoch.values.tolist() == run.epochs.tolist() and metrics.seed.values.tolist() == [0, 1]
    assert gradients.mean_norm.dims == ("seed", "epoch", "layer")
    assert gradients.width.values.tolist() == [6, 4, 2]
    assert np.isfinite(metrics.train_loss.values).all()
    last = int(run.epochs[-1])
    one = run.activations(1, epoch=last, seed=1)
    assert one.shape == (4096, 4) and one.dims == ("input", "unit")
    np.testing.assert_array_equal(one.values, run.activations(1).values[1, -1])
    params = run.params
    assert len(params) == 3
    kernel = next(iter(params.values()))["kernel"]
    assert kernel.shape == (2, len(run.epochs), 12, 6)


def test_activations_recomputed_without_stored_ones(tmp_path):
    [(stored, _)] = ibrepro.stages.train(tiny_config("train.seeds=1", name="a"), tmp_path)
    [(bare, _)] = ibrepro.stages.train(tiny_config("train.seeds=1", "log.activations=false", name="b"), tmp_path)
    a, b = ibrepro.open_run(stored), ibrepro.open_run(bare)
    np.testing.assert_array_equal(a.activations(0, epoch=int(a.epochs[-1]), seed=0).values,
                                  b.activations(0, epoch=int(b.epochs[-1]), seed=0).values)


def test_open_run_of_a_cell_still_training_shows_complete_snapshots_only(trained, tmp_path):
    import shutil

    import h5py

    copy = tmp_path / "cell.h5"
    shutil.copy(trained, copy)
    with h5py.File(copy, "r+") as f:
        f["complete_snapshots"][()] = 3
        f.attrs.modify("status", "running")
    run = ibrepro.open_run(copy)
    assert run.status == "running" and len(run.epochs) == 3
    assert run.metrics.sizes["epoch"] == 3 and run.activations(0).shape[1] == 3


def test_judge_and_plot(trained, tmp_path):
    verdicts = ibrepro.judge(trained, ["binning"])
    assert set(verdicts.table.group) == {"binning_n30_lo-1_hi1"}
    assert verdicts.table.claim.tolist() == ["i", "ii", "iii", "iv", "v"]
    cli("claims", trained, "--estimator", "binning")
    import json

    written = json.loads(trained.with_name("cell.claims.json").read_text())
    assert {c: v["verdict"] for c, v in written["groups"]["binning_n30_lo-1_hi1"]["claims"].items()} == dict(
        zip(verdicts.table.claim, verdicts.table.verdict))
    fig = ibrepro.plot_plane(trained, "kde")
    assert "kde" in fig.axes[0].get_title().lower() and not list(tmp_path.iterdir())
    ibrepro.plot_plane(trained, save=tmp_path / "plane.png")
    assert (tmp_path / "plane.png").stat().st_size > 0


def _message(call) -> str:
    with pytest.raises(ValueError) as info:
        call()
    return str(info.value)


def test_bad_input_is_one_value_error_naming_the_argument(trained):
    t, y = np.zeros((8, 3), np.float32), np.arange(8) % 2
    assert "t must have at least 2 axes" in _message(lambda: ibrepro.estimate(np.zeros(8), y))
    nan = t.copy()
    nan[2, 1] = np.nan
    assert "t holds NaN" in _message(lambda: ibrepro.estimate(nan, y))
    assert "y must be one label per row" in _message(lambda: ibrepro.estimate(t, y[:5]))
    assert "y must hold integer" in _message(lambda: ibrepro.estimate(t, y + 0.5))
    assert "estimator must be one of" in _message(lambda: ibrepro.estimate(t, y, "bining"))
    assert "unknown setting 'bins'" in _message(lambda: ibrepro.estimate(t, y, bins=30))
    assert "n_bins" in _message(lambda: ibrepro.estimate(t, y, n_bins=-3))
    assert "bound must be one of" in _message(lambda: ibrepro.estimate(t, y, "kde", bound="middle"))
    assert "needs the trained network" in _message(lambda: ibrepro.estimate(t, y, "noisy"))
    run = ibrepro.open_run(trained)
    assert "epoch must be a logged epoch" in _message(lambda: run.activations(0, epoch=10_000))
    assert "layer must be" in _message(lambda: run.activations("fc9"))
    assert "no run file" in _message(lambda: ibrepro.open_run(trained.with_name("nothing.h5")))
    assert "no_such_rule" in _message(lambda: ibrepro.judge(trained, rules={"no_such_rule": 1}))
    assert "estimator" in _message(lambda: ibrepro.stages.analyze(trained, ["bining"]))


def test_older_run_files_are_read(tmp_path):
    from synthetic_files import cell_config, write_run

    path = tmp_path / "old.h5"
    write_run(path, cell_config("old", seeds=2, epochs=100, snapshots=12))  # schema ibrepro-run/1
    run = ibrepro.open_run(path)
    assert run.gradients.std_norm.dims == ("seed", "epoch", "layer")
    assert run.gradients.sizes == {"seed": 2, "epoch": len(run.epochs), "layer": 6}
    assert run.metrics.train_loss.sizes == {"seed": 2, "epoch": len(run.epochs)}
