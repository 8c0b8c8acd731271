"""Crash-safe run files (issue 16): full disk, stale checkpoints, other processes, signals, names."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import tiny_config
from typer.testing import CliRunner

from ibrepro.analysis.analyze import analyze_path
from ibrepro.cli import app
from ibrepro.errors import UserError
from ibrepro.train import writer as writer_module
from ibrepro.train.loop import train_cell
from ibrepro.train.runfile import COMPLETE, checkpoint_path, complete_epochs, open_run, run_status

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ("train.epochs=30", "log.snapshots=10", "log.checkpoint_seconds=1e-9")


def datasets(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of a run file, each cut to the complete snapshots along its epoch axis."""
    out = {}
    with h5py.File(path, "r") as f:
        n = complete_epochs(f)
        f.visititems(lambda name, o: out.__setitem__(name, o[()]) if isinstance(o, h5py.Dataset) else None)
    return {k: (v[:, :n] if k.split("/")[0] in ("params", "activations", "metrics", "gradients") and v.ndim > 1 else v)
            for k, v in out.items()}


def assert_same(a: Path, b: Path) -> None:
    da, db = datasets(a), datasets(b)
    assert da.keys() == db.keys()
    for name in da:
        assert np.array_equal(da[name], db[name], equal_nan=True), name


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "cell.h5"
    train_cell("cell", tiny_config(*CONFIG), path)
    return path


def interrupted_run(path: Path) -> None:
    """Train the test cell into `path` and stop it (as a kill would) after epoch 8."""

    def stop(snapshot):
        if snapshot.epoch >= 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_cell("cell", tiny_config(*CONFIG), path, on_snapshot=stop)


def _python(code: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_disk_full_keeps_complete_snapshots_and_resumes(tmp_path, reference, monkeypatch):
    """An ENOSPC in the middle of a snapshot: one line, earlier snapshots intact, re-run resumes."""
    calls = []
    real = writer_module.RunWriter.append

    def append(self, index, arrays):
        calls.append(index)
        if len(calls) == 6:
            raise writer_module.write_error(self.path, OSError(errno.ENOSPC, "No space left on device"),
                                            self.complete)
        real(self, index, arrays)

    monkeypatch.setattr(writer_module.RunWriter, "append", append)
    path = tmp_path / "cell.h5"
    with pytest.raises(UserError, match="No space left on device.*5 complete snapshot.*resume") as info:
        train_cell("cell", tiny_config(*CONFIG), path)
    assert "\n" not in str(info.value)
    with open_run(path) as run:
        assert complete_epochs(run) == 5 and run_status(run) == "running"
        with h5py.File(reference, "r") as ref:
            assert np.array_equal(run["params/1/kernel"][:, :5], ref["params/1/kernel"][:, :5])
    monkeypatch.setattr(writer_module.RunWriter, "append", real)
    assert train_cell("cell", tiny_config(*CONFIG), path) == "resumed"
    assert_same(path, reference)


def test_checkpoint_ahead_of_the_file_starts_the_cell_over(tmp_path, reference):
    path = tmp_path / "cell.h5"

    interrupted_run(path)
    assert checkpoint_path(path).exists()
    with h5py.File(path, "r+", locking=False) as f:  # a lost flush: the file is behind
        f[COMPLETE][()] = 2
    notes = []
    assert train_cell("cell", tiny_config(*CONFIG), path, say=notes.append) == "resumed"
    assert len(notes) == 1 and "ahead of the file" in notes[0] and "from the start" in notes[0]
    assert_same(path, reference)


HOLD_LOCK = """
import sys, time
from pathlib import Path
from ibrepro.train.lock import cell_lock
with cell_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(60)
"""

HOLD_OPEN = """
import sys, time, h5py
with h5py.File(sys.argv[1], sys.argv[2]):
    print("held", flush=True)
    time.sleep(60)
"""


def _holding(code: str, *args: str) -> subprocess.Popen:
    proc = _python(code, *args)
    assert proc.stdout.readline().strip() == "held", proc.stderr.read()
    return proc


def test_a_second_writer_is_refused_naming_the_first(tmp_path):
    path = tmp_path / "cell.h5"
    proc = _holding(HOLD_LOCK, str(path))
    try:
        with pytest.raises(UserError, match=rf"being trained by another process \(pid {proc.pid}\)"):
            train_cell("cell", tiny_config(*CONFIG), path)
    finally:
        proc.kill()
        proc.wait()
    assert not path.exists()


def test_force_never_deletes_a_file_held_open(tmp_path, reference):
    path = tmp_path / "cell.h5"
    path.write_bytes(reference.read_bytes())
    before = path.read_bytes()
    reader = _holding(HOLD_OPEN, str(path), "r")
    try:
        with pytest.raises(UserError, match="in use by another process"):
            train_cell("cell", tiny_config(*CONFIG, "train.lr=0.02"), path, force=True)
    finally:
        reader.kill()
        reader.wait()
    assert path.read_bytes() == before
    writer = _holding(HOLD_OPEN, str(path), "r+")  # HDF5's own lock, held for writing
    try:
        with pytest.raises(UserError, match="in use by another process"):
            open_run(path)
    finally:
        writer.kill()
        writer.wait()


TRAIN = """
import sys
from ibrepro.cli import main
sys.argv = ["ibrepro", "train", sys.argv[1], "--out", sys.argv[2], "--no-progress"]
main()
"""


def test_analysis_while_training_then_sigint_checkpoints(tmp_path):
    """Two real processes: analyze reads a cell another process is writing; SIGINT then stops
    that process within seconds with a checkpoint that matches the file."""
    experiment = tmp_path / "exp.toml"
    experiment.write_text('name = "e"\ndataset = "tishby12"\n[model]\nhidden = [6, 4]\n'
                          '[train]\nseeds = 2\nepochs = 200000\n[log]\nsnapshots = 400\n'
                          'checkpoint_seconds = 0.2\n')
    trainer = _python(TRAIN, str(experiment), str(tmp_path / "runs"))
    path = tmp_path / "runs" / "e" / "cell.h5"
    deadline = time.monotonic() + 60
    while True:
        assert time.monotonic() < deadline and trainer.poll() is None, trainer.stderr.read() if trainer.poll() else ""
        if path.exists():
            with open_run(path) as run:
                if complete_epochs(run) >= 3:
                    break
        time.sleep(0.2)
    notes = []
    try:
        analyze_path(path, ["binning"], progress=False, say=notes.append)
    finally:
        trainer.send_signal(signal.SIGINT)
        _, err = trainer.communicate(timeout=30)
    assert notes and "still training" in notes[0]
    assert trainer.returncode == 130
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "interrupted: cell saved at epoch" in lines[0] and "resume" in lines[0], err
    from flax.serialization import msgpack_restore

    meta = msgpack_restore(checkpoint_path(path).read_bytes())["meta"]
    with open_run(path) as run:
        assert meta["n_snapshots"] == complete_epochs(run) and meta["epoch"] == run["epochs"][meta["n_snapshots"] - 1]


def test_markup_characters_in_paths_and_messages(tmp_path):
    experiment = tmp_path / "exp.toml"
    experiment.write_text('name = "e"\ndataset = "tishby12"\n[model]\nhidden = [6, 4]\n'
                          '[train]\nseeds = 2\nepochs = 2\n[log]\nsnapshots = 2\n'
                          '[sweep]\n"train.lr" = "x"\n')
    runner = CliRunner()
    bad = runner.invoke(app, ["train", str(experiment), "--out", str(tmp_path / "o"), "--no-progress"])
    assert bad.exit_code == 2 and "[sweep]" in bad.output
    experiment.write_text(experiment.read_text().replace('"x"', "[0.01]"))
    out = tmp_path / "bad" / "[/]"
    good = runner.invoke(app, ["train", str(experiment), "--out", str(out), "--no-progress"])
    assert good.exit_code == 0, good.output
    assert f"-> {out / 'e'}" in good.output


@pytest.mark.parametrize("overrides, words", [
    ({"name": ".."}, "not starting with '.'"),
    ({"sweep": {"data.dir": ["../escape"]}}, "not usable as a file name"),
])
def test_names_cannot_leave_the_output_directory(tmp_path, overrides, words):
    from ibrepro import config as cfg
    from ibrepro.train.loop import train_experiment

    raw = {"name": "n", "dataset": "tishby12", "model": {"hidden": [4]},
           "train": {"seeds": 1, "epochs": 2}, "log": {"snapshots": 2}, **overrides}
    with pytest.raises(UserError, match=words):
        train_experiment(cfg.resolve(raw), tmp_path / "out")
    assert not (tmp_path / "escape").exists() and not any(tmp_path.glob("*.h5"))


def test_a_diverged_run_is_judged_not_applicable(tmp_path):
    from ibrepro.analysis.analyze import analyze_path
    from ibrepro.claims.judge import judge_path
    from ibrepro.claims.rules import parse_rules

    path = tmp_path / "cell.h5"
    train_cell("cell", tiny_config("train.optimizer=\"sgd\"", "train.lr=1e6", "train.epochs=20",
                                   "log.snapshots=5"), path)
    analyze_path(path, ["binning"], progress=False)
    judge_path(path, (), parse_rules([]))
    doc = json.loads(path.with_name("cell.claims.json").read_text())
    claims = [c for group in doc["groups"].values() for c in group["claims"].values()]
    assert claims and all(c["verdict"] == "not applicable" for c in claims)
    assert all("did not fit" in c["reason"] or "diverged" in c["reason"] for c in claims)


def test_irrelevant_keys_do_not_block_a_resume_and_leftovers_go(tmp_path, reference):
    path = tmp_path / "cell.h5"

    interrupted_run(path)
    moved = tiny_config(*CONFIG, 'data.dir="/elsewhere"', "log.checkpoint_seconds=5")
    assert train_cell("cell", moved, path) == "resumed"
    assert_same(path, reference)
    checkpoint_path(path).write_bytes(b"left over")
    assert train_cell("cell", moved, path) == "skipped" and not checkpoint_path(path).exists()


def test_tishby12_needs_two_training_rows_per_class():
    from ibrepro.data import prepare

    with pytest.raises(UserError, match="at least 4"):
        prepare(tiny_config("train.train_fraction=0.0005"))


def test_training_resumes_while_another_process_reads_the_file(tmp_path, reference):
    path = tmp_path / "cell.h5"
    interrupted_run(path)
    reader = _holding(HOLD_OPEN, str(path), "r")
    try:
        assert train_cell("cell", tiny_config(*CONFIG), path) == "resumed"
    finally:
        reader.kill()
        reader.wait()
    assert_same(path, reference)
