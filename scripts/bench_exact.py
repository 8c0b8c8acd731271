"""The exact estimator against binning on the same quantized cell, in one invocation.

Builds a synthetic run file of a full paper cell (default 50 seeds x 300 logged epochs x
layers 10,7,5,4,3,2, N = 4096) whose layers are rounded to 2^8 levels per seed-epoch (as an
8-bit quantized network records them), then times `analyze` in-process with `binning` (the
paper's 30 bins) and with `exact`, each once cold (compilation included) and once warm, and
checks `exact` against the obvious count (np.unique over rows, per class) on random
layer-epochs.

    .venv/bin/python scripts/bench_exact.py [--seeds 50 --epochs 300 --bits 8 --workers 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_mi import add_cell_arguments, make_run_file  # noqa: E402

from ibrepro.analysis.analyze import analyze_path  # noqa: E402
from ibrepro.analysis.estimators.discrete import plugin_reference  # noqa: E402


def timed(path: Path, estimator: str, workers: int) -> tuple[float, float]:
    """Wall and process CPU seconds of one in-process `analyze PATH --estimator NAME`."""
    t0, c0 = time.perf_counter(), time.process_time()
    analyze_path(path, [estimator], {}, progress=False, workers=workers)
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_cell_arguments(parser)
    parser.add_argument("--bits", type=int, default=8)
    parser.add_argument("--check-samples", type=int, default=30, help="layer-epochs checked against np.unique")
    args = parser.parse_args()
    print(f"cpus available: {len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.2f} "
          "(timings are inflated when other jobs share the cores)")
    widths = [int(w) for w in args.widths.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cell.h5"
        t0 = time.perf_counter()
        make_run_file(path, args.seeds, args.epochs, args.n, widths, bits=args.bits)
        print(f"synthetic {args.bits}-bit cell: {args.seeds} seeds x {args.epochs} epochs x widths {widths}, "
              f"N={args.n}: {path.stat().st_size / 2**30:.2f} GiB, written in {time.perf_counter() - t0:.0f} s")
        runs = {}
        for round_ in ("cold", "warm"):
            for name in ("binning", "exact"):
                runs[name, round_] = timed(path, name, args.workers)
                wall, cpu = runs[name, round_]
                print(f"{name:8s} {round_}: {wall:6.2f} s wall, {cpu:6.2f} s CPU")
        for round_ in ("cold", "warm"):
            ratio = runs["exact", round_][0] / runs["binning", round_][0]
            cpu = runs["exact", round_][1] / runs["binning", round_][1]
            print(f"exact / binning, {round_}: {ratio:.2f}x wall, {cpu:.2f}x CPU (budget: <= 1)")
        rng = np.random.default_rng(0)
        with h5py.File(path) as run, h5py.File(Path(tmp) / "cell.mi.h5") as est:
            y = run["data/y"][()]
            worst = 0.0
            for _ in range(args.check_samples):
                s, e, k = rng.integers(args.seeds), rng.integers(args.epochs), rng.integers(len(widths))
                want = plugin_reference(run[f"activations/{k}"][s, e], y)
                got = est["exact"]["ixt"][s, e, k], est["exact"]["ity"][s, e, k]
                worst = max(worst, abs(want[0] - got[0]), abs(want[1] - got[1]))
        print(f"exact vs np.unique on {args.check_samples} random layer-epochs: largest difference {worst:.1e} bits")


if __name__ == "__main__":
    main()
