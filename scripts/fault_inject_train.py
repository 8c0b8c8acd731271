"""Kill `ibrepro train` at every write point of a tiny run, re-run it, compare bit for bit.

Under strace, the N-th call of one system call (pwrite64: HDF5 writes; write: checkpoint
bytes; fsync; rename) gets SIGKILL, for N = 1..all (or every --stride-th pwrite64). Then the
same command runs again without faults. A write point is recovered when that re-run exits 0
and every dataset of the final run file equals an uninterrupted run's (attrs with times and
ids aside), or when the re-run refused in one line and the files are unchanged.

    python scripts/fault_inject_train.py [--stride 1] [--activations] [--keep DIR]
                                         [--only pwrite64:197,fsync:3]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from ibrepro.train.runfile import checkpoint_path, complete_epochs, run_status  # noqa: E402

EXPERIMENT = """name = "f"
dataset = "tishby12"
[model]
hidden = [6, 4]
[train]
seeds = 2
epochs = 40
lr = 0.01
[log]
snapshots = 6
checkpoint_seconds = 1e-9
activations = {activations}
"""
SYSCALLS = ("pwrite64", "write", "fsync", "rename")


def train(config: Path, out: Path, inject: str | None = None) -> subprocess.CompletedProcess:
    """One `ibrepro train` run, optionally under strace with a fault injected."""
    command = [sys.executable, "-m", "ibrepro.cli", "train", str(config), "--out", str(out), "--no-progress"]
    if inject:
        command = ["strace", "-f", "-qq", "-o", "/dev/null", "-e", f"trace={inject.split(':')[0]}",
                   "-e", f"inject={inject}", *command]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def count_calls(config: Path, out: Path) -> Counter:
    """How often a clean run makes each traced system call (all threads)."""
    log = out.with_suffix(".strace")
    command = ["strace", "-f", "-qq", "-o", str(log), "-e", f"trace={','.join(SYSCALLS)}",
               sys.executable, "-m", "ibrepro.cli", "train", str(config), "--out", str(out), "--no-progress"]
    subprocess.run(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True,
                   capture_output=True, timeout=300)
    found = Counter()
    for line in log.read_text().splitlines():
        match = re.match(r"\d+\s+(\w+)\(", line)
        if match:
            found[match.group(1)] += 1
    return found


def datasets(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
        assert run_status(f) == "complete" and complete_epochs(f) == f["epochs"].shape[0]
    return out


def same(a: Path, b: Path) -> bool:
    try:
        da, db = datasets(a), datasets(b)
    except (OSError, AssertionError, KeyError):
        return False
    return da.keys() == db.keys() and all(np.array_equal(da[k], db[k], equal_nan=True) for k in da)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stride", type=int, default=1, help="try every K-th pwrite64 only")
    parser.add_argument("--activations", action="store_true", help="store activations too")
    parser.add_argument("--keep", type=Path, help="keep the work directory here")
    parser.add_argument("--only", default="", help="just these points, e.g. pwrite64:197,fsync:3")
    args = parser.parse_args()
    if shutil.which("strace") is None:
        sys.exit("strace is needed")
    work = Path(tempfile.mkdtemp(prefix="ibrepro-faults-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    config = work / "f.toml"
    config.write_text(EXPERIMENT.format(activations=str(args.activations).lower()))
    reference = work / "reference"
    done = train(config, reference)
    assert done.returncode == 0, done.stderr
    calls = count_calls(config, work / "count")
    print(f"system calls of a clean run: {dict(calls)}", flush=True)
    started, tried, recovered, refused, failures = time.monotonic(), 0, 0, 0, []
    points = [(syscall, n) for syscall in SYSCALLS
              for n in range(1, calls[syscall] + 1, args.stride if syscall == "pwrite64" else 1)]
    if args.only:
        points = [(p.split(":")[0], int(p.split(":")[1])) for p in args.only.split(",")]
    for syscall, n in points:
        out = work / f"{syscall}-{n}"
        killed = train(config, out, f"{syscall}:signal=SIGKILL:when={n}")
        if killed.returncode == 0:
            shutil.rmtree(out)
            continue  # the call was not reached in this run (thread timing): not a write point
        tried += 1
        again = train(config, out)
        cell = out / "f" / "cell.h5"
        lines = again.stderr.strip().splitlines()
        if again.returncode == 0 and same(cell, reference / "f" / "cell.h5") \
                and not checkpoint_path(cell).exists():
            recovered += 1
        elif again.returncode != 0 and len(lines) == 1:
            refused += 1
            failures.append(f"{syscall} #{n}: refused: {lines[0]}")
        else:
            failures.append(f"{syscall} #{n}: exit {again.returncode}: {again.stderr.strip()[-300:]}")
        shutil.rmtree(out)
    print(f"write points tried: {tried}; recovered bit for bit: {recovered}; refused in one line: {refused}; "
          f"failed: {tried - recovered - refused} ({time.monotonic() - started:.0f} s)")
    for line in failures:
        print("  " + line)
    if args.keep is None:
        shutil.rmtree(work)
    sys.exit(1 if tried - recovered - refused else 0)


if __name__ == "__main__":
    main()
