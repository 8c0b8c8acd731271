"""Bring your own network: `ibrepro.write_run` files go through `ibrepro analyze | bound |
claims | plot | report` unchanged; the Flax and PyTorch examples write such files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import ibrepro
from ibrepro.cli import app

ROOT = Path(__file__).resolve().parents[1]


def cli(*args) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def own_activations(seed: int = 0, n: int = 64, seeds: int = 3):
    """A 3-class toy: two hidden layers whose units saturate over epochs, and a softmax output."""
    rng = np.random.default_rng(seed)
    epochs = np.array([0, 1, 3, 10, 30, 100])
    x = rng.normal(size=(n, 5))
    y = np.arange(n) % 3
    scale = np.linspace(0.3, 4, len(epochs))[None, :, None, None]
    hidden = [np.tanh(scale * rng.normal(size=(seeds, 1, n, w))) for w in (6, 4)]
    logits = scale * np.eye(3)[y][None, None] + rng.normal(size=(seeds, len(epochs), n, 3))
    output = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    acts = {"fc1": np.broadcast_to(hidden[0], (seeds, len(epochs), n, 6)),
            "fc2": np.broadcast_to(hidden[1], (seeds, len(epochs), n, 4)), "softmax": output}
    return x, y, acts, epochs


def test_written_file_goes_through_the_whole_cli(tmp_path):
    x, y, acts, epochs = own_activations()
    loss = np.exp(-np.arange(len(epochs)))
    path = ibrepro.write_run(tmp_path / "mine.h5", x=x, y=y, activations=acts, epochs=epochs,
                             metrics={"train_loss": loss, "train_acc": 1 - loss / 2})
    cli("analyze", path, "--estimator", "binning", "--estimator", "kde", "--set", "sigma2=0.1", "--no-progress")
    cli("bound", path)
    cli("claims", path)
    cli("plot", path)
    cli("report", path)
    groups = ibrepro.open_estimates(path)
    assert {"binning_n30_lo-1_hi1", "ib-bound"} <= set(groups)
    assert groups["binning_n30_lo-1_hi1"].sizes == {"seed": 3, "epoch": 6, "layer": 3}
    mi = ibrepro.estimate(acts["fc2"].astype(np.float32), y)
    np.testing.assert_array_equal(mi.ixt, groups["binning_n30_lo-1_hi1"].ixt.isel(layer=1).values)
    claims = json.loads((tmp_path / "mine.claims.json").read_text())
    assert set(claims["groups"]["binning_n30_lo-1_hi1"]["claims"]) == {"i", "ii", "iii", "iv", "v"}
    assert (tmp_path / "figures" / "mine_infoplane_binning_n30_lo-1_hi1.png").is_file()
    assert "mine" in (tmp_path / "report.md").read_text()
    run = ibrepro.open_run(path)
    assert run.layers == ("fc1", "fc2", "softmax") and run.widths == (6, 4, 3)
    np.testing.assert_allclose(run.metrics.train_loss.isel(seed=2).values, loss.astype(np.float32))


def _message(**changes) -> str:
    x, y, acts, epochs = own_activations(seeds=2)
    arguments = {"path": "unused.h5", "x": x, "y": y, "activations": acts, "epochs": epochs, **changes}
    with pytest.raises(ValueError) as info:
        ibrepro.write_run(**arguments)
    return str(info.value)


def test_bad_input_names_the_argument():
    x, y, acts, epochs = own_activations(seeds=2)
    assert "y must be one label per row of x" in _message(y=y[:10])
    assert "activations['fc2']" in _message(activations={**acts, "fc2": acts["fc2"][:, :3]})
    nan = acts["fc1"].copy()
    nan[0, 0, 0, 0] = np.nan
    assert "activations['fc1'] holds NaN" in _message(activations={**acts, "fc1": nan})
    assert "epochs must be increasing" in _message(epochs=epochs[::-1])
    assert "metrics takes" in _message(metrics={"loss": np.zeros(6)})
    assert "metrics['train_loss'] must have shape (2, 6)" in _message(metrics={"train_loss": np.zeros(5)})
    assert "path must name a run file" in _message(path="mine.mi.h5")


@pytest.mark.parametrize("script, module", [("flax_own_network.py", "flax"), ("torch_own_network.py", "torch")])
def test_example_writes_a_run_that_the_cli_analyses(tmp_path, script, module):
    pytest.importorskip(module)
    done = subprocess.run([sys.executable, str(ROOT / "examples" / script), str(tmp_path), "--epochs", "40",
                           "--seeds", "2"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    [path] = tmp_path.glob("*.h5")
    cli("analyze", path, "--no-progress")
    cli("claims", path)
    run = ibrepro.open_run(path)
    assert run.layers == ("hidden1", "hidden2", "hidden3", "output") and run.widths == (8, 6, 4, 2)
    assert run.metrics.train_loss.values[:, -1].max() < run.metrics.train_loss.values[:, 0].min()  # it learned
    ixt = ibrepro.open_estimates(path)["binning_n30_lo-1_hi1"].ixt
    assert np.isfinite(ixt.values).all() and ixt.values.max() <= np.log2(1024) + 1e-9
