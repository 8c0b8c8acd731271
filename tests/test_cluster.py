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
    # no --estimator: the default estimator, as a serial run would choose it
    default = runner.invoke(app, ["analyze", str(tmp_path / "dask" / "sweep"), "--set", "every=2", "--no-progress",
                                  "--cluster", "local:2"])
    assert default.exit_code == 0, default.output
    with h5py.File(tmp_path / "dask" / "sweep" / "train_fraction-0.8.mi.h5", "r") as dask:
        assert "binning_n30_lo-1_hi1_every2" in dask


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


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("spec, yaml_text, submit, words", [
    ("tcp://h:notaport", None, None, "tcp://HOST:PORT with a port number"),
    ("tcp://", None, None, "tcp://HOST:PORT with a port number"),
    ("tcp://127.0.0.1:70000", None, None, "tcp://HOST:PORT with a port number"),
    ("tcp://127.0.0.1:{free}", None, None, "cannot reach a Dask scheduler at tcp://127.0.0.1:"),
    ("slurm", "cores: 1\nmemory: 1GB\n", None, "submits jobs with sbatch, which is not on PATH"),
    ("pbs", "cores: 1\nmemory: 1GB\n", None, "submits jobs with qsub, which is not on PATH"),
    ("pbs", "cores: 1\nmemory: 1GB\njobs: abc\n", "qsub", "jobs must be a whole number >= 1, got 'abc'"),
    ("slurm", "cores: 1\nmemory: 1GB\njobs: 0\n", "sbatch", "jobs must be a whole number >= 1, got 0"),
    ("slurm", "cores: 1\nmemory: 1GB\nbogus_key: 3\n", "sbatch", "unexpected keyword argument 'bogus_key'"),
    ("slurm", "- a list\n", "sbatch", "must be a mapping"),
    ("local:2", "cores: 1\n", None, "--cluster-config is for --cluster slurm or pbs"),
])
def test_cluster_options_are_checked_in_one_line(tmp_path, monkeypatch, spec, yaml_text, submit, words):
    """Each bad option ends in one line naming it before any cell is trained, with no wait on a
    scheduler or a job queue."""
    pytest.importorskip("dask_jobqueue")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if submit:  # a submit command that would fail if it were ever run
        (bin_dir / submit).write_text("#!/bin/sh\nexit 1\n")
        (bin_dir / submit).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    args = ["train", str(experiment(tmp_path, 4)), "--out", str(tmp_path / "out"), "--no-progress",
            "--cluster", spec.format(free=_free_port())]
    if yaml_text is not None:
        (tmp_path / "cluster.yaml").write_text(yaml_text)
        args += ["--cluster-config", str(tmp_path / "cluster.yaml")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert len(result.output.strip().splitlines()) == 1 and words in result.output, result.output
    assert not list((tmp_path / "out").rglob("*.h5"))


@pytest.mark.parametrize("command", ["train", "analyze"])
def test_cluster_config_without_cluster_is_an_error(tmp_path, command):
    (tmp_path / "cluster.yaml").write_text("cores: 1\n")
    target = str(experiment(tmp_path, 4)) if command == "train" else str(tmp_path)
    result = CliRunner().invoke(app, [command, target, "--cluster-config", str(tmp_path / "cluster.yaml")])
    assert result.exit_code == 2 and "--cluster-config needs --cluster slurm or --cluster pbs" in result.output


def test_something_else_listening_at_the_address_is_one_line(tmp_path):
    """A port that answers but is no Dask scheduler (here it sends HTTP) ends in one line."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def answer():
        for _ in range(2):  # the reachability probe, then the client
            conn, _ = server.accept()
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n" * 64)
            conn.close()

    threading.Thread(target=answer, daemon=True).start()
    spec = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    result = CliRunner().invoke(app, ["train", str(experiment(tmp_path, 4)), "--out", str(tmp_path / "out"),
                                      "--cluster", spec])
    server.close()
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert len(result.output.strip().splitlines()) == 1 and f"cannot connect to a Dask scheduler at {spec}" \
        in result.output
