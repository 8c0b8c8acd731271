"""Kill `ibrepro train`, or fail one of its writes, at every write point of a tiny run.

Under strace, the N-th call of one system call on the cell's files (pwrite64: HDF5 writes;
write: checkpoint bytes; fsync; rename) gets SIGKILL (`--fault kill`) or fails with an errno
(`--fault ENOSPC`, `--fault EIO`), for N = 1..all (or every --stride-th). Then the
same command runs again without faults.

- A kill point is recovered when that re-run exits 0 and every dataset of the final run file
  equals an uninterrupted run's (attrs with times and ids aside), or when the re-run refused
  in one line.
- An error point is handled when the faulty run exits 0 with that same file (the failed write
  did not matter), or exits non-zero with one line on stderr (no traceback, no "Exception
  ignored", no crash), no file marked complete that differs, and the re-run recovers.

    python scripts/fault_inject_train.py [--fault kill|ENOSPC|EIO] [--stride 1] [--activations]
                                         [--keep DIR] [--only pwrite64:197,fsync:3]
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
CELL_FILES = ("cell.h5", "cell.h5.creating", "cell.ckpt", "cell.ckpt.tmp")


def train(config: Path, out: Path, strace: list[str] | None = None) -> subprocess.CompletedProcess:
    """One `ibrepro train` run, optionally under strace (tracing only the cell's files)."""
    command = [sys.executable, "-m", "ibrepro.cli", "train", str(config), "--out", str(out), "--no-progress"]
    if strace is not None:
        cell_dir = out / "f"
        paths = [arg for name in CELL_FILES for arg in ("-P", str(cell_dir / name))] + ["-P", str(cell_dir)]
        command = ["strace", "-f", "-qq", *paths, *strace, *command]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def inject(syscall: str, n: int, fault: str) -> list[str]:
    """strace options: the N-th `syscall` on the cell's files is killed or fails with errno `fault`."""
    action = "signal=SIGKILL" if fault == "kill" else f"error={fault}"
    return ["-o", "/dev/null", "-e", f"trace={syscall}", "-e", f"inject={syscall}:{action}:when={n}"]


def count_calls(config: Path, out: Path) -> Counter:
    """How often a clean run makes each traced system call on the cell's files (all threads)."""
    log = out.with_suffix(".strace")
    train(config, out, ["-o", str(log), "-e", f"trace={','.join(SYSCALLS)}"])
    return Counter(m.group(1) for line in log.read_text().splitlines() if (m := re.match(r"\d+\s+(\w+)\(", line)))


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


def is_complete(path: Path) -> bool:
    try:
        with h5py.File(path, "r") as f:
            return run_status(f) == "complete"
    except (OSError, KeyError):
        return False


def check_point(config: Path, out: Path, reference: Path, syscall: str, n: int, fault: str) -> str:
    """Inject one fault, re-run cleanly; "" when the point is handled, else what went wrong.
    "not reached" when the faulty run made fewer such calls."""
    faulty = train(config, out, inject(syscall, n, fault))
    cell, good = out / "f" / "cell.h5", reference / "f" / "cell.h5"
    lines = faulty.stderr.strip().splitlines()
    if fault != "kill":
        if faulty.returncode == 0:
            return "" if same(cell, good) else "exit 0, and the run file differs from a clean run's"
        if len(lines) != 1 or faulty.returncode < 0 or faulty.returncode > 128:
            return f"exit {faulty.returncode}: {faulty.stderr.strip()[-400:]}"
        if is_complete(cell) and not same(cell, good):
            return f"marked complete with wrong data after: {lines[0]}"
    elif faulty.returncode == 0:
        return "not reached"  # the call was not reached in this run (thread timing)
    again = train(config, out)
    again_lines = again.stderr.strip().splitlines()
    if again.returncode == 0 and same(cell, good) and not checkpoint_path(cell).exists():
        return ""
    if fault == "kill" and again.returncode != 0 and len(again_lines) == 1:
        return ""  # refused in one line: the files are left for the user to judge
    return f"re-run exit {again.returncode}: {again.stderr.strip()[-300:]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fault", default="kill", help="kill, or an errno name such as ENOSPC or EIO")
    parser.add_argument("--stride", type=int, default=1, help="try every K-th call of each system call only")
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
    print(f"system calls on the cell's files in a clean run: {dict(calls)}", flush=True)
    started, tried, failures = time.monotonic(), 0, []
    points = [(syscall, n) for syscall in SYSCALLS for n in range(1, calls[syscall] + 1, args.stride)]
    if args.only:
        points = [(p.split(":")[0], int(p.split(":")[1])) for p in args.only.split(",")]
    for syscall, n in points:
        out = work / f"{syscall}-{n}"
        problem = check_point(config, out, reference, syscall, n, args.fault)
        shutil.rmtree(out, ignore_errors=True)
        if problem != "not reached":
            tried += 1
            if problem:
                failures.append(f"{syscall} #{n}: {problem}")
                print("  " + failures[-1], flush=True)
    print(f"{args.fault} at write points tried: {tried}; handled: {tried - len(failures)}; "
          f"failed: {len(failures)} ({time.monotonic() - started:.0f} s)")
    if args.keep is None:
        shutil.rmtree(work)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
