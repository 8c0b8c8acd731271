"""Kill `ibrepro analyze`, or fail one of its writes, at every write it makes; check nothing is lost.

A tiny cell is trained and analysed with `binning`. Then `analyze --estimator kde --estimator
adaptive` is run under strace, which sends SIGKILL (`--fault kill`) or returns an errno
(`--fault ENOSPC`, `--fault EIO`) at the N-th call of one system call on the estimates file
(pwrite64, write, rename, fsync, unlink; N = 1 .. the count of a clean run). After each fault
the estimates file must be readable with the binning group exactly as before (and every other
group present exactly as in a clean run); a failed run must have said so in one line (no
traceback, no crash), a run that exited 0 must have written the clean result; the re-run must
then finish, giving a file equal to a clean run's. Prints the counts: points tried, handled.

usage: python scripts/fault_inject_analyze.py [--fault kill|ENOSPC|EIO] [--limit K]   (needs strace)
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SYSCALLS = ("pwrite64", "write", "rename", "fsync", "unlink")
TINY = ["--set", "train.seeds=2", "--set", "train.epochs=20", "--set", "log.snapshots=8",
        "--set", "model.hidden=[6,4]"]
ESTIMATORS = ["--estimator", "kde", "--estimator", "adaptive"]


def ibrepro(*args: str, strace: list[str] | None = None) -> subprocess.CompletedProcess:
    cmd = [*(strace or []), sys.executable, "-m", "ibrepro.cli", *args]
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)


def traced(mi: Path, *options: str) -> list[str]:
    """strace tracing only the calls on the estimates file, its temporary file and directory."""
    paths = [arg for p in (mi, mi.with_name(mi.name + ".tmp"), mi.parent) for arg in ("-P", str(p))]
    return ["strace", "-f", "-qq", *paths, *options]


def contents(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        return {f"{g}/{k}": f[g][k][()] for g in f for k in f[g]}


def same(a: dict, b: dict, names=None) -> bool:
    keys = [k for k in a if names is None or k.split("/")[0] in names]
    return all(k in b and np.array_equal(a[k], b[k], equal_nan=True) for k in keys)


def count_calls(cell: Path, mi: Path) -> dict[str, int]:
    log = mi.with_name("count.strace")
    ibrepro("analyze", str(cell), *ESTIMATORS, "--no-progress",
            strace=traced(mi, "-o", str(log), "-e", "trace=" + ",".join(SYSCALLS)))
    counts = dict.fromkeys(SYSCALLS, 0)
    for line in log.read_text().splitlines():
        match = re.match(r"\d+\s+(\w+)\(", line)
        if match and match.group(1) in counts:
            counts[match.group(1)] += 1
    log.unlink()
    return counts


def check_point(cell: Path, before: bytes, binning: dict, clean: dict, syscall: str, n: int, fault: str) -> str:
    """One fault at the N-th `syscall`, then a clean re-run: "" when handled, else what went wrong."""
    mi = cell.with_name("cell.mi.h5")
    mi.write_bytes(before)
    action = "signal=SIGKILL" if fault == "kill" else f"error={fault}"
    run = ibrepro("analyze", str(cell), *ESTIMATORS, "--no-progress",
                  strace=traced(mi, "-o", "/dev/null", "-e", f"trace={syscall}",
                                "-e", f"inject={syscall}:{action}:when={n}"))
    after = contents(mi)
    if not (same(binning, after) and same(after, clean)):
        return f"estimates damaged (exit {run.returncode})"
    lines = run.stderr.strip().splitlines()
    if fault != "kill" and run.returncode == 0 and not same(clean, after):
        return "exit 0 without the clean result"
    if fault != "kill" and run.returncode != 0 and (len(lines) != 1 or not 0 < run.returncode < 128):
        return f"exit {run.returncode}: {run.stderr.strip()[-300:]}"
    rerun = ibrepro("analyze", str(cell), *ESTIMATORS, "--no-progress")
    if rerun.returncode != 0 or not (same(clean, contents(mi)) and same(contents(mi), clean)):
        return f"re-run exit {rerun.returncode}: {rerun.stderr.strip()[-200:]}"
    return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fault", default="kill", help="kill, or an errno name such as ENOSPC or EIO")
    parser.add_argument("--limit", type=int, default=0, help="at most this many points per call (0: all)")
    args = parser.parse_args()
    if shutil.which("strace") is None:
        sys.exit("needs strace (apt-get install strace)")
    work = Path(tempfile.mkdtemp(prefix="ibrepro-fault-"))
    config = work / "tiny.toml"
    config.write_text('name = "tiny"\ndataset = "tishby12"\n')
    assert ibrepro("train", str(config), "--out", str(work), "--no-progress", *TINY).returncode == 0
    cell, mi = work / "tiny" / "cell.h5", work / "tiny" / "cell.mi.h5"
    assert ibrepro("analyze", str(cell), "--estimator", "binning", "--no-progress").returncode == 0
    before = mi.read_bytes()
    binning = contents(mi)
    assert ibrepro("analyze", str(cell), *ESTIMATORS, "--no-progress").returncode == 0
    clean = contents(mi)
    counts = count_calls(cell, mi)
    tried = handled = 0
    for syscall, count in counts.items():
        for n in range(1, (min(count, args.limit) if args.limit else count) + 1):
            problem = check_point(cell, before, binning, clean, syscall, n, args.fault)
            tried += 1
            handled += not problem
            if problem:
                print(f"NOT HANDLED: {args.fault} at {syscall} #{n}: {problem}", flush=True)
    print(f"system calls on the estimates file in a clean analyze: {counts}")
    print(f"{args.fault} at write points tried: {tried}, handled: {handled}")
    shutil.rmtree(work)
    sys.exit(0 if tried == handled else 1)


if __name__ == "__main__":
    main()
