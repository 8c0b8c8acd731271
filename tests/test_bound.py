"""`ibrepro bound`: the IB curve of a cell's data in its estimates file (DESIGN §2, §7)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import tiny_config
from typer.testing import CliRunner

from ibrepro.analysis.estimatesfile import write_groups
from ibrepro.cli import app
from ibrepro.data.tishby12 import tishby12_labels, tishby12_p_y1, tishby12_score
from ibrepro.errors import UserError
from ibrepro.ib.bound import GROUP, bound_path
from ibrepro.layout import estimates_path


def fake_run(path: Path, config: dict, y: np.ndarray) -> Path:
    """A run file with the names `bound` reads (schema, config, data/x, data/y)."""
    with h5py.File(path, "w") as f:
        f.attrs.update(schema="ibrepro-run/1", config=json.dumps(config), status="complete",
                       ibrepro_version="test")
        f["epochs"] = np.arange(3)
        f["data/x"] = np.zeros((y.size, 3), np.float32)
        f["data/y"] = y.astype(np.int32)
    return path


def entropy_bits(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def read_bound(run: Path) -> tuple[dict, dict]:
    with h5py.File(estimates_path(run), "r") as f:
        group = f[GROUP]
        return {k: group[k][()] for k in group}, dict(group.attrs)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_deterministic_tishby12_bound_is_min_of_ixt_and_hy(tmp_path):
    run = fake_run(tmp_path / "cell.h5", tiny_config(), tishby12_labels())
    before = sha(run)
    assert bound_path(run) == [estimates_path(run)]
    data, attrs = read_bound(run)
    assert attrs["estimator"] == "ib-bound" and attrs["gamma"] == 0 and attrs["theta"] == 7.6
    assert "labels" not in attrs  # the estimate groups' attr name (drawn / soft); not here
    assert data["beta"].shape == data["ixt"].shape == data["ity"].shape
    h_y = entropy_bits(np.array([2118, 4096 - 2118]) / 4096)  # DESIGN §2: 0.99916 bits
    assert h_y == pytest.approx(0.99916, abs=1e-5)
    assert np.all(np.diff(data["ixt"]) > 0) and data["ixt"][0] == 0 and data["ixt"][-1] == pytest.approx(12)
    grid = np.linspace(0, 12, 241)
    assert np.allclose(np.interp(grid, data["ixt"], data["ity"]), np.minimum(grid, h_y), atol=1e-9)
    assert sha(run) == before


def test_noisy_labels_give_a_curve_below_the_trivial_one(tmp_path):
    gamma, theta = 2.0, 7.6
    run = fake_run(tmp_path / "cell.h5", tiny_config(f"data.gamma={gamma}"), tishby12_labels(gamma, theta))
    bound_path(run)
    data, attrs = read_bound(run)
    assert attrs["gamma"] == gamma and attrs["theta"] == theta
    p1 = tishby12_p_y1(gamma, theta)
    h_y = entropy_bits(np.array([p1.mean(), 1 - p1.mean()]))
    i_xy = h_y - np.mean([entropy_bits(np.array([p, 1 - p])) for p in p1])
    ixt, ity = data["ixt"], data["ity"]
    assert ity[-1] == pytest.approx(i_xy, abs=1e-9) and ixt[-1] == pytest.approx(12)
    assert np.all(ity <= np.minimum(ixt, i_xy) + 1e-9)
    assert np.max(np.minimum(ixt, h_y) - ity) > 0.3  # well below min(I(X;T), H(Y))
    # any actual encoder lies on or below the curve: T = [f(x) > theta], computed directly
    t = (tishby12_score(np.array([[(r >> (11 - i)) & 1 for i in range(12)] for r in range(4096)])) > theta)
    p_t1 = t.mean()
    ixt_t = entropy_bits(np.array([p_t1, 1 - p_t1]))
    p_y1_t = np.array([p1[~t].mean(), p1[t].mean()])
    ity_t = h_y - (1 - p_t1) * entropy_bits(np.array([p_y1_t[0], 1 - p_y1_t[0]])) \
        - p_t1 * entropy_bits(np.array([p_y1_t[1], 1 - p_y1_t[1]]))
    assert np.interp(ixt_t, ixt, ity) >= ity_t - 1e-9
    assert np.interp(ixt_t, ixt, ity) - ity_t < 0.05  # and the curve is not loose there


def test_image_dataset_bound_uses_the_eval_labels(tmp_path):
    y = np.repeat(np.arange(10), [30, 20, 10, 10, 5, 5, 5, 5, 5, 5])  # N = 100
    config = {**tiny_config(), "dataset": "mnist"}
    run = fake_run(tmp_path / "cell.h5", config, y)
    bound_path(run)
    data, attrs = read_bound(run)
    assert "gamma" not in attrs and "labels" not in attrs and attrs["dataset"] == "mnist"
    h_y = entropy_bits(np.bincount(y) / y.size)
    grid = np.linspace(0, np.log2(100), 50)
    assert data["ixt"][-1] == pytest.approx(np.log2(100))
    assert np.allclose(np.interp(grid, data["ixt"], data["ity"]), np.minimum(grid, h_y), atol=1e-9)


def test_rerun_replaces_the_group_and_keeps_the_others(tmp_path):
    run = fake_run(tmp_path / "cell.h5", tiny_config(), tishby12_labels())
    before = sha(run)
    mi = estimates_path(run)
    write_groups(mi, {"binning_n30_lo-1_hi1": ({"ixt": np.ones((1, 2, 3))}, {"estimator": "binning"}),
                      GROUP: ({"ixt": np.zeros(2)}, {"estimator": "ib-bound", "stale": 1})})
    bound_path(tmp_path)  # the experiment directory
    with h5py.File(mi, "r") as f:
        assert "stale" not in f[GROUP].attrs and f[GROUP]["ixt"][-1] == pytest.approx(12)
        assert np.array_equal(f["binning_n30_lo-1_hi1/ixt"][()], np.ones((1, 2, 3)))
        assert sorted(f) == ["binning_n30_lo-1_hi1", GROUP]
    assert sha(run) == before


def test_bad_input_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        bound_path(tmp_path / "nope.h5")
    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(UserError, match="not an ibrepro run file"):
        bound_path(tmp_path / "foreign.h5")
    short = fake_run(tmp_path / "short.h5", tiny_config(), np.zeros(100, int))
    with pytest.raises(UserError, match="4096"):
        bound_path(short)
    assert not estimates_path(short).exists()


def test_cli(tmp_path):
    runner = CliRunner()
    run = fake_run(tmp_path / "cell.h5", tiny_config(), tishby12_labels())
    result = runner.invoke(app, ["bound", str(run)])
    assert result.exit_code == 0, result.output
    assert estimates_path(run).exists()
    result = runner.invoke(app, ["bound", str(tmp_path / "missing.h5")])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and "error" in result.output
