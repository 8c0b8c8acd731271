"""Benchmark the `noisy` estimator per layer-epoch against a plain numpy version, in one run.

The paper network (12-10-7-5-4-3-2 tanh, paper init) with noise β on all N = 4096 inputs of the
12-bit task: for each layer, the time of one layer-epoch (noisy passes + Monte Carlo) at the
default sample counts, and the same estimate written as plain vectorised numpy (float64, draws
in blocks of 64 against all mixture components). Prints the load average: the machine is shared.

    .venv/bin/python scripts/bench_noisy.py [--beta 0.005 --repeats 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ibrepro.analysis.estimators import Labels, get  # noqa: E402
from ibrepro.analysis.estimators.noisy import propagate, sample_information  # noqa: E402
from ibrepro.data.tishby12 import tishby12_inputs, tishby12_labels  # noqa: E402
from ibrepro.train.model import MLP  # noqa: E402


def plain_noisy(params: dict, x: np.ndarray, y: np.ndarray, layer: int, beta: float, n_passes: int,
                n_samples: int, rng: np.random.Generator) -> tuple[float, float]:
    """The same estimator in plain numpy: propagate, draw, log-sum-exp over the mixture (bits)."""
    kernels = [np.asarray(params[f"Dense_{k}"]["kernel"], np.float64) for k in range(len(params))]
    biases = [np.asarray(params[f"Dense_{k}"]["bias"], np.float64) for k in range(len(params))]
    passes = 1 if layer == 0 else n_passes
    t = np.repeat(x[None].astype(np.float64), passes, 0)
    for k in range(layer + 1):
        s = t @ kernels[k] + biases[k]
        s = np.tanh(s) if k < len(kernels) - 1 else np.exp(s) / np.exp(s).sum(-1, keepdims=True)
        t = s + beta * rng.standard_normal(s.shape)
    centres = s  # (P, N, w)
    n = x.shape[0]
    flat = centres.reshape(-1, centres.shape[-1])
    member = np.tile(y, passes)
    inputs_ = np.resize(rng.permutation(n), n_samples)
    pick = rng.integers(0, passes, n_samples)
    draws = centres[pick, inputs_] + beta * rng.standard_normal((n_samples, flat.shape[1]))
    rx, ry = [], []
    for lo in range(0, n_samples, 64):
        tc, ic = draws[lo:lo + 64], inputs_[lo:lo + 64]
        a = -((tc[:, None, :] - flat[None]) ** 2).sum(-1) / (2 * beta**2)
        top = a.max(1, keepdims=True)
        e = np.exp(a - top)
        log_all = top[:, 0] + np.log(e.sum(1) / flat.shape[0])
        same = member[None] == y[ic][:, None]
        log_class = top[:, 0] + np.log((e * same).sum(1) / (same.sum(1)))
        own = -((centres[:, ic] - tc[None]) ** 2).sum(-1) / (2 * beta**2)
        own_top = own.max(0)
        log_input = own_top + np.log(np.exp(own - own_top).mean(0))
        rx.append(log_input - log_all)
        ry.append(log_class - log_all)
    return float(np.concatenate(rx).mean() / np.log(2)), float(np.concatenate(ry).mean() / np.log(2))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--beta", type=float, default=0.005)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    defaults = {p.name: p.default for p in get("noisy").params}
    n_samples, n_passes = int(defaults["n_samples"]), int(defaults["n_passes"])
    x = tishby12_inputs().astype(np.float32)
    y = tishby12_labels()
    labels = Labels.from_labels(y)
    model = MLP(hidden=(10, 7, 5, 4, 3), n_classes=2, noise_std=args.beta)
    params = model.init(jax.random.PRNGKey(0), x[:1])["params"]
    print(f"noisy at N = {len(x)}, beta = {args.beta}, n_samples = {n_samples}, n_passes = {n_passes}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("ms/layer-epoch is wall time; cpu ms is the CPU time of all threads (load-independent:"
          " on two idle cores the wall time is between cpu/2 and cpu)")
    print(f"{'layer':>5} {'ms/layer-epoch':>15} {'cpu ms':>7} {'plain numpy ms':>15} {'ratio':>6}"
          "   I(X;T) ± se      (numpy)")
    for layer in range(6):
        key = jax.random.PRNGKey(layer)

        def ours(key=key, layer=layer):
            passes = 1 if layer == 0 else n_passes
            centres = np.asarray(propagate(model, params, x, key, layer=layer, n_passes=passes))
            return sample_information(centres, labels, args.beta, n_samples, key)

        ours()  # compile
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(args.repeats):
            result = ours()
        ms = (time.perf_counter() - start) / args.repeats * 1e3
        cpu_ms = (time.process_time() - cpu) / args.repeats * 1e3
        start = time.perf_counter()
        plain = plain_noisy(params, x, y, layer, args.beta, n_passes, n_samples, np.random.default_rng(layer))
        plain_ms = (time.perf_counter() - start) * 1e3
        print(f"{layer + 1:>5} {ms:>15.1f} {cpu_ms:>7.1f} {plain_ms:>15.1f} {plain_ms / ms:>6.1f}   "
              f"{result[0]:6.3f} ± {result[2]:.3f}   ({plain[0]:6.3f})")


if __name__ == "__main__":
    main()
