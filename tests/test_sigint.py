"""Ctrl-C from the first fraction of a second: one line, exit 130, no "Exception ignored"
(issue 22). Each command runs in a child process that says when `main` starts; SIGINT
follows after a delay that lands in imports, JAX's start-up or the work itself (0.1 s at least: the
handler is set a moment after "ready")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ibrepro import config as cfg
from ibrepro.analysis.analyze import analyze_path
from ibrepro.train.loop import train_cell

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ("import sys; import ibrepro.cli as cli; print('ready', flush=True); "
          "sys.argv = ['ibrepro', *sys.argv[1:]]; cli.main()")
LONG_TRAINING = 'name = "long"\ndataset = "tishby12"\n[train]\nepochs = 100000\nseeds = 2\n[model]\nhidden = [6, 4]\n'


@pytest.fixture(scope="module")
def cell(tmp_path_factory) -> Path:
    """A complete tiny cell with estimates, for the commands that read one."""
    path = tmp_path_factory.mktemp("cell") / "cell.h5"
    train_cell("cell", cfg.resolve({"name": "tiny", "dataset": "tishby12"},
                                   ["train.seeds=2", "train.epochs=12", "log.snapshots=6", "model.hidden=[6, 4]"]),
               path)
    analyze_path(path, progress=False)
    return path


def interrupted(args: list[str], delay: float) -> tuple[int, str]:
    """(exit code, stderr) of `ibrepro ARGS` sent SIGINT `delay` s after its `main` started."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", LAUNCH, *args], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    time.sleep(delay)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=120)
    return child.returncode, err


@pytest.mark.parametrize("command, delay", [
    ("train", 0.1), ("train", 1.5), ("report", 1.0), ("plot", 0.3), ("claims", 0.1),
])
def test_ctrl_c_is_one_line_and_exit_130(cell, tmp_path, command, delay):
    if command == "train":
        (tmp_path / "long.toml").write_text(LONG_TRAINING)
        args = ["train", str(tmp_path / "long.toml"), "--out", str(tmp_path), "--no-progress"]
    else:
        args = [command, str(cell), *(["--no-progress"] if command == "analyze" else [])]
    code, err = interrupted(args, delay)
    assert code == 130, err
    assert err.strip().count("\n") == 0 and err.startswith("error: interrupted"), err
