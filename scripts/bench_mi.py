"""Benchmark the MI estimators against plain numpy loops, in one invocation.

Binning: builds a synthetic run file of a full paper cell (default 50 seeds x 300 logged
epochs x layers 10,7,5,4,3,2, N = 4096, float32 tanh-like values that saturate over epochs)
in a temp dir, times `ibrepro analyze` (the command, in a fresh process, so start-up, imports and
compilation are included; also in-process), and times the obvious loop (`binning_reference`:
np.digitize, np.unique over rows, per class; one layer-epoch at a time) on a random subset of
layer-epochs, extrapolated to the whole cell. KDE: time per layer-epoch at N = 4096 and
N = 10000 against the plain pairwise numpy reference (`kde_reference`).

    .venv/bin/python scripts/bench_mi.py [--seeds 50 --epochs 300 --n 4096 --workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ibrepro.analysis.estimators import Labels  # noqa: E402
from ibrepro.analysis.estimators.binning import binning_reference  # noqa: E402
from ibrepro.analysis.estimators.kde import kde_information, kde_reference  # noqa: E402


def make_run_file(path: Path, seeds: int, epochs: int, n: int, widths: list[int], seed: int = 0,
                  chunk_seeds: int = 1, bits: int = 0) -> None:
    """A synthetic run file following DESIGN §7, activations chunked (chunk_seeds, 1, N, w)
    (with chunk_seeds=1 the layout ibrepro.train.runfile writes for N*w <= 2**18).

    With `bits`, every layer of every seed-epoch is rounded to 2^bits levels over its range
    (0 included), as a network trained with model.quantize_bits = bits records it."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.517).astype(np.int64)
    with h5py.File(path, "w") as f:
        f.attrs.update(schema="ibrepro-run/1", status="complete", ibrepro_version="bench",
                       config=json.dumps({"name": "bench", "dataset": "tishby12", "model": {
                           "hidden": widths[:-1], "activation": "tanh", "quantize_bits": bits}}))
        f["epochs"] = np.geomspace(1, 10 * epochs, epochs).astype(int) + np.arange(epochs)
        f["data/x"] = ((np.arange(n)[:, None] >> np.arange(11, -1, -1)) & 1).astype(np.float32)
        f["data/y"] = y
        f["data/train_mask"] = rng.random((seeds, n)) < 0.85
        for k, w in enumerate(widths):
            d = f.create_dataset(f"activations/{k}", (seeds, epochs, n, w), np.float32, chunks=(chunk_seeds, 1, n, w))
            base = rng.standard_normal((seeds, n, w), dtype=np.float32)
            for e in range(epochs):
                gain = np.float32(0.3 + 6.0 * e / epochs)
                shift = rng.standard_normal((seeds, 1, w), dtype=np.float32) * np.float32(0.1)
                values = np.tanh(base * gain + shift)
                d[:, e] = _quantized(values, bits) if bits else values


def _quantized(values: np.ndarray, bits: int) -> np.ndarray:
    """Each seed's (S, N, w) values rounded to 2^bits levels over [min(lo, 0), max(hi, 0)]."""
    lo = np.minimum(values.min(axis=(1, 2), keepdims=True), 0)
    hi = np.maximum(values.max(axis=(1, 2), keepdims=True), 0)
    step = (hi - lo) / np.float32(2**bits - 1)
    return (lo + np.round((values - lo) / step) * step).astype(np.float32)


def bench_binning(args, tmp: Path) -> None:
    widths = [int(w) for w in args.widths.split(",")]
    path = tmp / "cell.h5"
    t0 = time.perf_counter()
    make_run_file(path, args.seeds, args.epochs, args.n, widths, chunk_seeds=args.chunk_seeds)
    size = path.stat().st_size / 2**30
    print(f"synthetic cell: {args.seeds} seeds x {args.epochs} epochs x widths {widths}, N={args.n}: "
          f"{size:.2f} GiB float32, written in {time.perf_counter() - t0:.1f} s")

    def cli_run(cache: Path) -> tuple[float, float]:
        """`ibrepro analyze PATH` in a fresh process (start-up, imports, compilation included):
        wall and CPU seconds."""
        env = {**os.environ, "IBREPRO_JAX_CACHE": str(cache)}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ibrepro.cli", "analyze", str(path), "--no-progress"],
                       check=True, capture_output=True, env=env, cwd=Path(__file__).resolve().parents[1])
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime

    cold, cold_cpu = cli_run(tmp / "jax-cache")
    fast_total, fast_cpu = cli_run(tmp / "jax-cache")
    print(f"binning, `ibrepro analyze` in a fresh process: {cold:.2f} s wall ({cold_cpu:.1f} s CPU) with an "
          f"empty compile cache, {fast_total:.2f} s wall ({fast_cpu:.1f} s CPU) with the compile cache filled")

    from ibrepro.analysis.analyze import analyze_path

    analyze_path(path, ["binning"], {}, progress=False, workers=args.workers)  # compile
    t0, c0 = time.perf_counter(), time.process_time()
    analyze_path(path, ["binning"], {}, progress=False, workers=args.workers)
    warm = time.perf_counter() - t0
    print(f"binning, ibrepro in-process, warm (compiled): {warm:.2f} s wall, {time.process_time() - c0:.2f} s CPU")

    rng = np.random.default_rng(1)
    layer_epochs = args.seeds * args.epochs * len(widths)
    picks = [(rng.integers(args.seeds), rng.integers(args.epochs), rng.integers(len(widths)))
             for _ in range(min(args.plain_samples, layer_epochs))]
    with h5py.File(path, "r") as f, h5py.File(tmp / "cell.mi.h5", "r") as est:
        y = f["data/y"][()]
        group = est["binning_n30_lo-1_hi1"]
        worst = 0.0
        t0 = time.perf_counter()
        for s, e, k in picks:
            ixt, ity = binning_reference(f[f"activations/{k}"][s, e], -1.0, 1.0, 30, y)
            worst = max(worst, abs(ixt - group["ixt"][s, e, k]), abs(ity - group["ity"][s, e, k]))
        per = (time.perf_counter() - t0) / len(picks)
    plain = per * layer_epochs
    full = len(picks) == layer_epochs
    print(f"binning, plain loop: {per * 1e3:.2f} ms per layer-epoch on {len(picks)} random layer-epochs"
          f"{'' if full else f', extrapolated to all {layer_epochs}'}: {plain:.0f} s")
    print(f"  largest difference plain vs ibrepro: {worst:.2e} bits")
    print(f"  speed-up: {plain / cold:.0f}x including start-up and compilation, {plain / fast_total:.0f}x "
          f"including start-up (cache filled), {plain / warm:.0f}x warm in-process (targets: <= 10 s, >= 40x)")


def bench_kde(args) -> None:
    rng = np.random.default_rng(2)
    for n in (4096, 10000):
        y = (rng.random(n) < 0.517).astype(np.int64)
        labels = Labels.from_labels(y)
        acts = np.tanh(rng.standard_normal((2 * args.kde_reps, n, 10)) * 2)
        kde_information(acts[:1], labels, 1e-3)  # compile
        t0, c0 = time.perf_counter(), time.process_time()
        kde_information(acts[: args.kde_reps], labels, 1e-3)
        one = (time.perf_counter() - t0) / args.kde_reps
        cpu = (time.process_time() - c0) / args.kde_reps
        halves = np.array_split(acts, args.workers)
        with ThreadPoolExecutor(args.workers) as pool:
            t0 = time.perf_counter()
            list(pool.map(lambda a, labels=labels: kde_information(a, labels, 1e-3), halves))
            both = (time.perf_counter() - t0) / len(acts)
        t0 = time.perf_counter()
        reference = kde_reference(acts[0], y, 1e-3)
        plain = time.perf_counter() - t0
        ours = kde_information(acts[:1], labels, 1e-3)
        gap = max(abs(reference[b][j] - ours[b][j][0]) for b in reference for j in (0, 1))
        target = " (target <= 50 ms)" if n == 4096 else ""
        print(f"kde N={n}, width 10, both bounds: {one * 1e3:.0f} ms per layer-epoch on one thread "
              f"({cpu * 1e3:.0f} ms CPU), {both * 1e3:.0f} ms per layer-epoch with {args.workers} threads{target}; "
              f"plain numpy {plain * 1e3:.0f} ms, ratio {plain / both:.1f}x; largest difference {gap:.1e} bits")


def add_cell_arguments(parser: argparse.ArgumentParser) -> None:
    """The synthetic paper cell's shape and the analysis threads, as options."""
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--widths", default="10,7,5,4,3,2")
    parser.add_argument("--workers", type=int, default=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_cell_arguments(parser)
    parser.add_argument("--chunk-seeds", type=int, default=1, help="seeds per HDF5 chunk of the synthetic file")
    parser.add_argument("--plain-samples", type=int, default=200, help="layer-epochs timed for the plain loop")
    parser.add_argument("--kde-reps", type=int, default=4)
    parser.add_argument("--skip-binning", action="store_true")
    parser.add_argument("--skip-kde", action="store_true")
    args = parser.parse_args()
    print(f"cpus available: {len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.2f} "
          "(timings are inflated when other jobs share the cores)")
    if not args.skip_binning:
        with tempfile.TemporaryDirectory() as tmp:
            bench_binning(args, Path(tmp))
    if not args.skip_kde:
        bench_kde(args)


if __name__ == "__main__":
    main()
