"""`--cluster`: cells as Dask tasks on a real local cluster (no mocks)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from ibrepro.analysis.estimators.placement import KERNELS_ENV
from ibrepro.cli import app

distributed = pytest.importorskip("distributed")

SWEEP = """name = "sweep"
dataset = "tishby12"
[model]
hidden = [6, 4]
[train]
seeds = 2
epochs = {epochs}
lr = 0.01
[log]
snapshots = 6
[sweep]
"train.train_fraction" = [0.5, 0.8]
"""


def datasets(path) -> dict:
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def assert_identical(a, b) -> None:
    da, db = datasets(a), datasets(b)
    assert da.keys() == db.keys()
    for name in da:
        np.testing.assert_array_equal(da[name], db[name], err_msg=name)


def experiment(tmp_path, epochs: int):
    config = tmp_path / "sweep.toml"
    config.write_text(SWEEP.format(epochs=epochs))
    return config


def test_a_sweep_on_a_local_cluster_equals_a_serial_run(tmp_path, monkeypatch):
    config = experiment(tmp_path, 40)
    runner = CliRunner()
    serial = runner.invoke(app, ["train", str(config), "--out", str(tmp_path / "serial"), "--no-progress"])
    assert serial.exit_code == 0, serial.output
    on_cluster = runner.invoke(app, ["train", str(config), "--out", str(tmp_path / "dask"), "--no-progress",
                                     "--cluster", "local:2"])
    assert on_cluster.exit_code == 0, on_cluster.output
    assert "2 cell(s) (2 trained)" in on_cluster.output
    for name in ("train_fraction-0.5.h5", "train_fraction-0.8.h5"):
        assert_identical(tmp_path / "serial" / "sweep" / name, tmp_path / "dask" / "sweep" / name)
    # the workers sort and count on the device path; this process on the host path
    monkeypatch.setenv(KERNELS_ENV, "auto")  # restored after the test: --kernels sets it
    for where, extra in (("dask", ["--cluster", "local:2", "--kernels", "device"]), ("serial", ["--kernels", "host"])):
        analysed = runner.invoke(app, ["analyze", str(tmp_path / where / "sweep"), "--estimator", "binning",
                                       "--estimator", "adaptive", "--no-progress", *extra])
        assert analysed.exit_code == 0, analysed.output
    with h5py.File(tmp_path / "dask" / "sweep" / "train_fraction-0.5.mi.h5", "r") as dask, \
            h5py.File(tmp_path / "serial" / "sweep" / "train_fraction-0.5.mi.h5", "r") as serial:
        assert set(dask) == set(serial) == {"binning_n30_lo-1_hi1", "adaptive_n30"}
        for group in dask:
            for name in ("ixt", "ity"):
                np.testing.assert_allclose(dask[group][name][()], serial[group][name][()], rtol=0, atol=1e-9)


def test_a_killed_worker_does_not_change_the_result(tmp_path):
    from ibrepro import cluster
    from ibrepro import config as cfg
    from ibrepro.train.loop import experiment_cells, train_experiment

    config = cfg.load(experiment(tmp_path, 3000), [])
    train_experiment(config, tmp_path / "serial")
    cells = experiment_cells(config, tmp_path / "dask")
    killed = []
    with cluster.connect("local:2") as client:
        def kill_a_busy_worker():
            while not any(path.exists() for _, _, path in cells):
                time.sleep(0.05)
            pids = client.run(os.getpid)
            busy = [w for w, keys in client.processing().items() if keys]
            os.kill(pids[busy[0]], signal.SIGKILL)
            killed.append(busy[0])

        killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
        killer.start()
        outcomes = cluster.run_tasks(client, cluster.train_tasks(cells, force=False))
        killer.join(5)
    assert killed and len(outcomes) == 2
    for _, _, path in cells:
        assert_identical(tmp_path / "serial" / "sweep" / path.name, path)


def test_cluster_without_the_extra_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    result = CliRunner().invoke(app, ["train", str(experiment(tmp_path, 4)), "--out", str(tmp_path),
                                      "--cluster", "local:2"])
    assert result.exit_code != 0
    assert "pip install 'ibrepro[cluster]'" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize("spec", ["local:0", "local:x", "udp://h:1", "slurm"])
def test_bad_cluster_values_are_one_line_errors(tmp_path, spec):
    result = CliRunner().invoke(app, ["train", str(experiment(tmp_path, 4)), "--out", str(tmp_path),
                                      "--cluster", spec])
    assert result.exit_code == 2 and "--cluster" in result.output
