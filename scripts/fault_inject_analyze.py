"""Kill `ibrepro analyze` at every write it makes, then re-run it, and check nothing is lost.

A tiny cell is trained and analysed with `binning`. Then `analyze --estimator adaptive` is
run under strace, which sends SIGKILL at the N-th call of one system call (pwrite64, write,
rename, fsync, unlink; N = 1 .. the count of a clean run). After each kill the estimates file
must be readable with the binning group exactly as before (and the adaptive group, if
present, exactly as in a clean run); the re-run must then finish, giving a file equal to a
clean run's. Prints the counts: write points tried, recovered.

usage: python scripts/fault_inject_analyze.py [--limit K]   (needs strace)
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


def ibrepro(*args: str, strace: list[str] | None = None) -> subprocess.CompletedProcess:
    cmd = [*(strace or []), sys.executable, "-m", "ibrepro.cli", *args]
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)


def contents(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        return {f"{g}/{k}": f[g][k][()] for g in f for k in f[g]}


def same(a: dict, b: dict, names=None) -> bool:
    keys = [k for k in a if names is None or k.split("/")[0] in names]
    return all(k in b and np.array_equal(a[k], b[k], equal_nan=True) for k in keys)


def count_calls(cell: Path) -> dict[str, int]:
    trace = ibrepro("analyze", str(cell), "--estimator", "adaptive", "--no-progress",
                    strace=["strace", "-f", "-c", "-e", "trace=" + ",".join(SYSCALLS)])
    counts = {}
    for line in trace.stderr.splitlines():
        fields = line.split()
        if fields and fields[-1] in SYSCALLS and re.fullmatch(r"\d+", fields[3] if len(fields) > 4 else ""):
            counts[fields[-1]] = int(fields[3])
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="at most this many kill points per call (0: all)")
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
    assert ibrepro("analyze", str(cell), "--estimator", "adaptive", "--no-progress").returncode == 0
    clean = contents(mi)
    counts = count_calls(cell)
    tried = recovered = killed = 0
    for syscall, count in counts.items():
        for n in range(1, (min(count, args.limit) if args.limit else count) + 1):
            mi.write_bytes(before)
            run = ibrepro("analyze", str(cell), "--estimator", "adaptive", "--no-progress",
                          strace=["strace", "-f", "-qq", "-o", "/dev/null",
                                  "-e", f"inject={syscall}:signal=SIGKILL:when={n}"])
            tried += 1
            killed += run.returncode == -9
            after = contents(mi)
            intact = same(binning, after) and same(clean, after, names={k.split("/")[0] for k in after})
            rerun = ibrepro("analyze", str(cell), "--estimator", "adaptive", "--no-progress")
            ok = intact and rerun.returncode == 0 and same(clean, contents(mi)) and same(contents(mi), clean)
            recovered += ok
            if not ok:
                print(f"NOT RECOVERED: kill at {syscall} #{n} (exit {run.returncode}); "
                      f"intact={intact}, re-run exit {rerun.returncode}: {rerun.stderr.strip()[-200:]}")
    print(f"system calls of a clean analyze: {counts}")
    print(f"write points tried: {tried} (killed there: {killed}), recovered: {recovered}")
    shutil.rmtree(work)
    sys.exit(0 if tried == recovered else 1)


if __name__ == "__main__":
    main()
