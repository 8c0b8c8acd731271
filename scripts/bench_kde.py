"""The KDE kernel compiled with YNNPACK's fusions (as `kde_information` does) against the same
kernel compiled with the process's XLA flags (the command line turns those fusions off for
training), and the plain numpy reference, on paper-shaped activations.

Activations: the 4096 inputs of the 12-bit task through a random tanh network 12-10-7-5-4-3-2
(weights scaled by --scale, so later layers saturate as trained ones do), --seed-epochs
layer-epochs per layer, σ² = 1e-3 (tishby12's default). Every contender runs once to compile,
then --rounds times in turn; the best round counts. Prints ms per layer-epoch on one thread,
the ratios, and the largest relative difference between the two compiled kernels' bounds.

    python scripts/bench_kde.py [--seed-epochs 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ibrepro.jaxsetup import configure  # noqa: E402

configure()  # as the command line does

import jax  # noqa: E402

from ibrepro.analysis.estimators import kde  # noqa: E402
from ibrepro.analysis.estimators.base import Labels  # noqa: E402
from ibrepro.data.tishby12 import tishby12_inputs, tishby12_labels  # noqa: E402

WIDTHS = (10, 7, 5, 4, 3, 2)
SIGMA2 = 1e-3


def layer_activations(scale: float, seed_epochs: int) -> list[np.ndarray]:
    """Per layer, (seed_epochs, 4096, width) tanh activations of random networks."""
    rng = np.random.default_rng(0)
    x = tishby12_inputs().astype(np.float64)
    per_layer = [[] for _ in WIDTHS]
    for _ in range(seed_epochs):
        h = x
        for k, width in enumerate(WIDTHS):
            h = np.tanh(h @ rng.normal(scale=scale / np.sqrt(h.shape[1]), size=(h.shape[1], width)))
            per_layer[k].append(h)
    return [np.stack(acts) for acts in per_layer]


def best_time(fn, rounds: int) -> float:
    best = np.inf
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed-epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scale", type=float, default=3.0)
    args = parser.parse_args()
    codes = tishby12_labels().astype(np.int64)
    labels = Labels(codes, np.bincount(codes))
    layers = layer_activations(args.scale, args.seed_epochs)
    fused = kde._kernel_sums
    plain_flags = jax.jit(fused.__wrapped__, static_argnames=("block",))

    def run(kernel):
        kde._kernel_sums = kernel
        try:
            return [kde.kde_information(acts, labels, SIGMA2) for acts in layers]
        finally:
            kde._kernel_sums = fused

    results = {name: run(kernel) for name, kernel in (("fused", fused), ("flags", plain_flags))}  # compile
    seconds = {name: best_time(lambda k=kernel: run(k), args.rounds) for name, kernel in
               (("fused", fused), ("flags", plain_flags))}
    reference = best_time(lambda: [kde.kde_reference(acts[0], codes, SIGMA2) for acts in layers], 1)
    per = {name: s / (len(layers) * args.seed_epochs) for name, s in seconds.items()}
    per_reference = reference / len(layers)
    gap = max(np.max(np.abs(np.subtract(a[b], f[b])) / np.abs(f[b]))
              for a, f in zip(results["flags"], results["fused"]) for b in kde.BOUNDS)
    print(f"KDE, N = 4096, widths {','.join(map(str, WIDTHS))}, one thread, ms per layer-epoch:")
    print(f"  with YNNPACK fusions (kde_information): {per['fused'] * 1e3:7.1f}")
    flags = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split() if "ynn" in f) or "XLA's defaults"
    print(f"  process flags ({flags}): {per['flags'] * 1e3:7.1f}   ratio {per['flags'] / per['fused']:.2f}x")
    print(f"  plain numpy reference (kde_reference):  {per_reference * 1e3:7.1f}   ratio "
          f"{per_reference / per['fused']:.1f}x")
    print(f"  largest relative difference between the two compiled kernels: {gap:.1e}")


if __name__ == "__main__":
    main()
