"""Benchmark the knn and renyi estimators against their plain references, in one invocation.

For each layer width, times the fast kernels on a block of seed-epochs (N inputs, tanh-like
activations with saturated rows, 12-bit inputs) on one thread and on `--workers` threads, each
with its own host device as `ibrepro analyze` runs them, and the plain reference beside each
module (`knn_reference`, `renyi_reference`) on one layer-epoch; prints ms per layer-epoch, the
ratio and the largest difference between the two.

    .venv/bin/python scripts/bench_knn_renyi.py [--n 4096 --widths 10,7,5,4,3,2 --workers 2]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads (as jaxsetup does)

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ibrepro.jaxsetup import configure  # noqa: E402

configure()

from ibrepro.analysis.estimators import Labels  # noqa: E402
from ibrepro.analysis.estimators.knn import knn_information, knn_reference  # noqa: E402
from ibrepro.analysis.estimators.renyi import renyi_information, renyi_reference  # noqa: E402

RENYI_DEFAULTS = (1.01, "nn10", "nn10", 100, 10, 0)


def activations(rng, b: int, n: int, width: int) -> np.ndarray:
    acts = np.tanh(rng.normal(size=(b, n, width)) * 2.5).astype(np.float32)
    acts[:, : n // 4] = np.sign(acts[:, : n // 4])  # saturated rows: many exact duplicates
    return acts


def timed(fn, *args) -> tuple[float, float]:
    """Wall and CPU seconds of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - t0, time.process_time() - c0


def bench(name, fast, reference, acts, workers: int) -> tuple[float, float, float, float]:
    """Seconds per layer-epoch: one thread, `workers` threads, CPU on one thread, plain reference."""
    b = len(acts)
    fast(acts)  # compile
    one, cpu = timed(fast, acts)
    halves = [acts] * workers
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fast, halves))  # every worker's device compiles
        t0 = time.perf_counter()
        list(pool.map(fast, halves))
        both = (time.perf_counter() - t0) / (b * workers)
    plain, _ = timed(reference, acts[0])
    ours = fast(acts[:1])
    gap = max(abs(float(a[0]) - r) for a, r in zip(ours, reference(acts[0])))
    width = acts.shape[2]
    print(f"{name} N={acts.shape[1]} width {width:2d}: {one / b * 1e3:6.1f} ms per layer-epoch on one thread "
          f"({cpu / b * 1e3:.1f} ms CPU), {both * 1e3:6.1f} ms with {workers} threads; plain reference "
          f"{plain * 1e3:7.0f} ms, ratio {plain / both:5.0f}x; largest difference {gap:.1e} bits")
    return one / b, both, cpu / b, plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--widths", default="10,7,5,4,3,2")
    parser.add_argument("--seed-epochs", type=int, default=16, help="seed-epochs per block")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", default="knn,renyi", help="estimators to time")
    args = parser.parse_args()
    print(f"cpus available: {len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.2f} "
          "(timings are inflated when other jobs share the cores)")
    rng = np.random.default_rng(0)
    labels = Labels.from_labels((rng.random(args.n) < 0.517).astype(np.int64))
    inputs = ((np.arange(args.n)[:, None] >> np.arange(11, -1, -1)) & 1).astype(np.float32)
    widths = [int(w) for w in args.widths.split(",")]
    for name, fast, reference in (
        ("knn", lambda a: knn_information(a, labels, 3, 1e-5), lambda t: knn_reference(t, labels, 3, 1e-5)),
        ("renyi", lambda a: renyi_information(a, inputs, labels, *RENYI_DEFAULTS),
         lambda t: renyi_reference(t, inputs, labels, *RENYI_DEFAULTS)),
    ):
        if name not in args.only.split(","):
            continue
        rows = [bench(name, fast, reference, activations(rng, args.seed_epochs, args.n, w), args.workers)
                for w in widths]
        mean, cpu = np.mean([r[1] for r in rows]), np.mean([r[2] for r in rows])
        print(f"{name}: mean over widths {widths}: {mean * 1e3:.1f} ms per layer-epoch with {args.workers} "
              f"threads, {np.mean([r[3] for r in rows]) / mean:.0f}x the plain reference; on {args.workers} idle "
              f"cores (CPU time / {args.workers}): {cpu / args.workers * 1e3:.1f} ms mean, "
              f"{rows[0][2] / args.workers * 1e3:.1f} ms at width {widths[0]} (budget 20 ms at width <= 10)")


if __name__ == "__main__":
    main()
