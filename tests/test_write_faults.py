"""Write failures and diverged training (issue 22): one line, nothing damaged marked done or
put in place of a good file, NaN where a network's numbers are not finite.

The strace tests fail chosen writes of real `ibrepro` processes (a sample of the points that
scripts/fault_inject_train.py and scripts/fault_inject_analyze.py try in full).
"""

from __future__ import annotations

import errno
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import tiny_config

from ibrepro import config as cfg
from ibrepro import durable
from ibrepro.analysis.analyze import analyze_path, plan_path
from ibrepro.analysis.estimators import REGISTRY
from ibrepro.analysis.results import load_cell
from ibrepro.analysis.stream import run_estimator
from ibrepro.claims.judge import judge_path
from ibrepro.claims.rules import parse_rules
from ibrepro.errors import UserError
from ibrepro.report.plots import make_figures
from ibrepro.train.loop import train_cell, train_experiment
from ibrepro.train.runfile import DIVERGED, open_run, run_status

ROOT = Path(__file__).resolve().parents[1]
needs_strace = pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def train_faults(tmp_path_factory):
    """The train fault script, its experiment file and an uninterrupted run of it."""
    script = _script("fault_inject_train")
    work = tmp_path_factory.mktemp("train-faults")
    config = work / "f.toml"
    config.write_text(script.EXPERIMENT.format(activations="true"))
    train_experiment(cfg.load(config), work / "reference")
    return script, config, work / "reference" / "f" / "cell.h5"


@needs_strace
@pytest.mark.parametrize("syscall, n, fault", [
    ("pwrite64", 10, "ENOSPC"),  # a chunk of data/x while the run file is created (issue 22, item 1)
    ("fsync", 12, "EIO"),  # making snapshots durable before they are counted
])
def test_a_failed_train_write_ends_in_one_line_and_the_rerun_is_exact(tmp_path, train_faults, syscall, n, fault):
    script, config, reference = train_faults
    faulty = script.train(config, tmp_path, script.inject(syscall, n, fault))
    lines = faulty.stderr.strip().splitlines()
    assert faulty.returncode == 2 and len(lines) == 1 and "cannot write" in lines[0], faulty.stderr
    cell = tmp_path / "f" / "cell.h5"
    if cell.exists():
        with h5py.File(cell, "r") as f:
            assert run_status(f) == "running"
    train_experiment(cfg.load(config), tmp_path)
    assert script.same(cell, reference)


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """A tiny cell with stored activations, analysed with binning."""
    path = tmp_path_factory.mktemp("analysed") / "cell.h5"
    train_cell("cell", tiny_config("log.activations=true"), path)
    analyze_path(path, ["binning"], progress=False)
    return path


@needs_strace
@pytest.mark.parametrize("syscall, fault", [("write", "ENOSPC"), ("rename", "EIO")])
def test_a_failed_estimates_write_leaves_the_old_file(tmp_path, analysed, syscall, fault):
    script = _script("fault_inject_analyze")
    cell = tmp_path / "cell.h5"
    shutil.copy(analysed, cell)
    mi = cell.with_name("cell.mi.h5")
    shutil.copy(analysed.with_name("cell.mi.h5"), mi)
    before = mi.read_bytes()
    run = script.ibrepro("analyze", str(cell), *script.ESTIMATORS, "--no-progress",
                         strace=script.traced(mi, "-o", "/dev/null", "-e", f"trace={syscall}",
                                              "-e", f"inject={syscall}:error={fault}:when=1"))
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1 and "estimates file is unchanged" in lines[0], run.stderr
    assert mi.read_bytes() == before and not mi.with_name("cell.mi.h5.tmp").exists()


def test_a_figure_that_cannot_be_written_leaves_the_old_one(tmp_path, analysed, monkeypatch):
    from ibrepro.report.plots import make_figures

    out = tmp_path / "figures"
    out.mkdir()
    (out / "cell_learning.png").write_bytes(b"the figure of an earlier plot")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(durable.os, "fsync", full_disk)
    with pytest.raises(UserError, match=r"cannot write .*\.png: No space left on device") as info:
        make_figures(analysed, out=out)
    assert "\n" not in str(info.value)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_unreported_h5py_errors_become_an_oserror():
    class Leaky:
        def __del__(self):
            raise RuntimeError("file write failed: errno = 28, error message = 'No space left on device'")

    hooks = sys.unraisablehook, sys.excepthook
    with pytest.raises(OSError, match="No space left on device") as info:
        with durable.reported_writes(Path("x.h5")):
            Leaky()
    assert info.value.errno == errno.ENOSPC
    assert (sys.unraisablehook, sys.excepthook) == hooks


def test_a_run_replaced_between_analyze_reads_is_refused(tmp_path, analysed):
    cell = tmp_path / "cell.h5"
    shutil.copy(analysed, cell)
    plan = plan_path(cell, ["binning"])[0]
    with h5py.File(cell, "r+") as f:  # as `train --force` would have left it
        f.attrs["run_id"] = "another"
    estimator = REGISTRY["binning"]
    values = plan.settings[0][1]
    with pytest.raises(UserError, match="replaced by another run.*run analyze again"):
        run_estimator(plan, estimator, values, None, 1)


def test_a_non_finite_seed_epoch_gives_nan_estimates(tmp_path, analysed):
    cell = tmp_path / "cell.h5"
    shutil.copy(analysed, cell)
    with h5py.File(cell, "r+") as f:
        acts = f["activations/0"]
        acts[1, 2, 5, 0] = np.nan
        acts[0, 3, 7, 1] = np.inf
    analyze_path(cell, ["binning", "kde"], progress=False)
    with h5py.File(cell.with_name("cell.mi.h5"), "r") as f:
        for group in f.values():
            ixt = group["ixt"][()]
            assert np.isnan(ixt[1, 2, 0]) and np.isnan(ixt[0, 3, 0])
            assert np.isfinite(np.delete(ixt[:, :, 0].ravel(), [1 * ixt.shape[1] + 2, 3])).all()
            assert np.isfinite(ixt[:, :, 1:]).all()


DIVERGING = ("train.optimizer=\"sgd\"", "train.lr=1e30", "model.activation=\"relu\"")


def test_divergence_is_recorded_said_and_fails_unless_allowed(tmp_path):
    config = tiny_config(*DIVERGING)
    with pytest.raises(UserError, match=r"2 of 2 seed\(s\) diverged .*from epoch \d+.*--allow-divergence"):
        train_experiment(config, tmp_path)
    path = tmp_path / "tiny" / "cell.h5"
    notes = []
    assert train_experiment(config, tmp_path, say=notes.append, allow_divergence=True) == [(path, "skipped")]
    assert len(notes) == 1 and "diverged" in notes[0]
    with open_run(path) as run:
        first = run[DIVERGED][()]
        assert run_status(run) == "complete" and (first > 0).all()
        assert not np.isfinite(run["metrics/train_loss"][0, list(run["epochs"][()]).index(first[0])])
    analyze_path(path, ["binning"], progress=False)
    with h5py.File(path.with_name("cell.mi.h5"), "r") as f:
        ixt = next(iter(f.values()))["ixt"][()]
    assert np.isfinite(ixt[:, 0]).all() and np.isnan(ixt[:, -1]).all()  # the start is finite, the end is not


def test_claims_leave_diverged_seeds_out_and_say_how_many(tmp_path, analysed):
    cell = tmp_path / "cell.h5"
    shutil.copy(analysed, cell)
    shutil.copy(analysed.with_name("cell.mi.h5"), tmp_path / "cell.mi.h5")
    with h5py.File(cell, "r+") as f:
        f[DIVERGED][...] = [-1, int(f["epochs"][3])]
    judge_path(cell, (), parse_rules([]))
    doc = json.loads(cell.with_name("cell.claims.json").read_text())
    assert all(group["seeds"] == [0] for group in doc["groups"].values())
    assert any("1 of 2 seed(s) diverged" in note and "left out" in note for note in doc["notes"])
    # the figures read the same results model: the same seed, and the same note
    figures = make_figures(cell, out=tmp_path / "figures")
    assert any("1 of 2 seed(s) diverged" in message for message in figures.skipped)
    assert all(e.seeds.tolist() == [0] and e.ixt.shape[0] == 1 for e in load_cell(cell).estimates)
