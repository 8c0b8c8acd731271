"""Benchmark soft-label I(T;Y) (labels = p(y|x)) against drawn labels and a plain reference.

On synthetic tanh-like layers of the paper's 12-bit task (N = 4096, widths 10, 7, 5, 4, 3, 2,
p(y=1|x) of γ = 1 noisy labels), times per layer-epoch: binning with drawn labels, binning
with soft labels, the plain numpy soft reference (`soft_plugin_reference`: np.digitize,
np.unique over rows, a loop over cells), and KDE with drawn and with soft labels. Prints the
numbers and ratios; also I(X;Y) of the noisy labels against what one draw of them carries.

    .venv/bin/python scripts/bench_soft.py [--blocks 64]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ibrepro.analysis.estimators import Labels  # noqa: E402
from ibrepro.analysis.estimators.binning import uniform_edges, uniform_information  # noqa: E402
from ibrepro.analysis.estimators.discrete import soft_information, soft_plugin_reference  # noqa: E402
from ibrepro.analysis.estimators.kde import kde_information  # noqa: E402
from ibrepro.data.tishby12 import tishby12_labels, tishby12_p_y1  # noqa: E402

WIDTHS = (10, 7, 5, 4, 3, 2)


def per_item(fn, count: int, repeat: int = 3) -> float:
    """Best-of-`repeat` seconds per item of fn() that handles `count` items."""
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=64, help="seed-epochs per timed block")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    p_y1 = tishby12_p_y1(1.0)
    p = np.stack([1 - p_y1, p_y1], axis=1)
    y = tishby12_labels(1.0)
    drawn, soft = Labels.from_labels(y), Labels.from_labels(y, p)
    n = y.size
    lo, hi = np.full(args.blocks, -1.0), np.full(args.blocks, 1.0)
    rows = []
    for width in WIDTHS:
        acts = np.tanh(rng.normal(size=(args.blocks, n, width)) * rng.uniform(0.5, 8, (args.blocks, 1, 1)))
        acts = acts.astype(np.float32)
        uniform_information(acts[:2], lo[:2], hi[:2], 30, soft)  # compile
        t_drawn = per_item(lambda acts=acts: uniform_information(acts, lo, hi, 30, drawn), args.blocks)
        t_soft = per_item(lambda acts=acts: uniform_information(acts, lo, hi, 30, soft), args.blocks)
        symbols = np.digitize(acts[:4], uniform_edges(-1.0, 1.0, 30))
        t_ref = per_item(lambda symbols=symbols: [soft_plugin_reference(s, p) for s in symbols], 4, repeat=1)
        got = uniform_information(acts[:4], lo[:4], hi[:4], 30, soft)[1]
        error = max(abs(got[b] - soft_plugin_reference(symbols[b], p)[1]) for b in range(4))
        rows.append((width, t_drawn, t_soft, t_ref, error))
    print("binning n30, N = 4096, per layer-epoch (ms):")
    print(" width   drawn    soft  soft/drawn  reference  reference/soft  max |soft - reference|")
    for width, t_drawn, t_soft, t_ref, error in rows:
        print(f"{width:6d} {1e3 * t_drawn:7.3f} {1e3 * t_soft:7.3f} {t_soft / t_drawn:11.2f} "
              f"{1e3 * t_ref:10.1f} {t_ref / t_soft:15.0f} {error:22.1e}")
    acts = np.tanh(rng.normal(size=(4, n, 5)) * 2.0)
    kde_information(acts[:1], drawn, 1e-3), kde_information(acts[:1], soft, 1e-3)  # compile
    k_drawn = per_item(lambda: kde_information(acts, drawn, 1e-3), 4)
    k_soft = per_item(lambda: kde_information(acts, soft, 1e-3), 4)
    print(f"kde, width 5, N = 4096, per layer-epoch: drawn {1e3 * k_drawn:.1f} ms, soft "
          f"{1e3 * k_soft:.1f} ms ({k_soft / k_drawn:.2f}x)")
    identity = np.arange(n)[None]  # T = X
    print(f"gamma = 1: I(X;Y) from p(y|x) {soft_information(identity, p)[1][0]:.3f} bits; "
          f"one draw of labels carries H(Y) = {drawn.entropy:.3f} bits")


if __name__ == "__main__":
    main()
