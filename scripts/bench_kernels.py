"""Issue 14: the device path of the estimators against the host path, side by side.

Builds a synthetic paper-shaped cell (`bench_mi.make_run_file`: --seeds x --epochs logged
epochs, layers 10,7,5,4,3,2, N = --n) and a quantized twin (8 bits, for `exact`), then for
each of binning, adaptive, exact and KDE runs `analyze_path` with $IBREPRO_KERNELS = host and
then device: once to compile, once timed. Prints wall seconds for each, the ratio host/device,
and the largest difference between the two paths' estimates (discrete: bits; KDE: relative).
The plain reference is each estimator's readable version (`binning_reference`,
`adaptive_reference`, `plugin_reference` on the levels, `kde_reference`: np.digitize, np.unique
over rows, plain pairwise numpy), one layer-epoch at a time on a sample of layer-epochs.
KDE takes --kde-seeds seeds and every --kde-every-th logged epoch (its cost is quadratic in N).

On a CPU machine, `host` is what `auto` uses; on an accelerator `device` is. Run there as
    python scripts/bench_kernels.py --seeds 50 --epochs 300
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

from bench_mi import make_run_file  # noqa: E402

from ibrepro.jaxsetup import configure  # noqa: E402

configure()  # as the command line does: one host device per core

from ibrepro.analysis.analyze import analyze_path  # noqa: E402
from ibrepro.analysis.estimators.adaptive import adaptive_reference  # noqa: E402
from ibrepro.analysis.estimators.binning import binning_reference  # noqa: E402
from ibrepro.analysis.estimators.discrete import plugin_reference  # noqa: E402
from ibrepro.analysis.estimators.kde import kde_reference  # noqa: E402
from ibrepro.analysis.estimators.placement import KERNELS_ENV  # noqa: E402

REFERENCES = {
    "binning": lambda t, y: binning_reference(t, -1.0, 1.0, 30, y),
    "adaptive": lambda t, y: adaptive_reference(t, 30, y),
    "exact": lambda t, y: plugin_reference(t, y),  # rows of a quantized layer are its symbols
    "kde": lambda t, y: kde_reference(t, y, 1e-3),
}


def plain_seconds(path: Path, name: str, samples: int) -> float:
    """Seconds per layer-epoch of the readable reference on `samples` random layer-epochs."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "r") as f:
        y, n_layers = f["data/y"][()], len(f["activations"])
        shape = f["activations/0"].shape
        picks = [(rng.integers(shape[0]), rng.integers(shape[1]), rng.integers(n_layers)) for _ in range(samples)]
        layers = [f[f"activations/{k}"][s, e] for s, e, k in picks]
    t0 = time.perf_counter()
    for t in layers:
        REFERENCES[name](t, y)
    return (time.perf_counter() - t0) / samples


def timed(path: Path, estimator: str, settings: dict, kernels: str, workers: int) -> tuple[float, dict]:
    """Warm wall seconds of one analysis on one path, and its groups {name: (ixt, ity)}."""
    os.environ[KERNELS_ENV] = kernels
    analyze_path(path, [estimator], settings, progress=False, workers=workers)  # compile
    t0 = time.perf_counter()
    written = analyze_path(path, [estimator], settings, progress=False, workers=workers)[0]
    wall = time.perf_counter() - t0
    with h5py.File(written, "r") as f:
        groups = {g: (f[g]["ixt"][()], f[g]["ity"][()]) for g in f if g.startswith(estimator.split("-")[0])}
    return wall, groups


def difference(host: dict, device: dict, relative: bool) -> float:
    """Largest difference between two paths' estimates (NaN-aware; relative for KDE)."""
    worst = 0.0
    for name, arrays in host.items():
        for a, b in zip(arrays, device[name]):
            ok = ~np.isnan(a)
            gap = np.abs(a[ok] - b[ok]) / (np.abs(a[ok]) + 1e-300 if relative else 1.0)
            worst = max(worst, float(gap.max(initial=0.0)))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--widths", default="10,7,5,4,3,2")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kde-seeds", default="0")
    parser.add_argument("--kde-every", type=int, default=30)
    parser.add_argument("--only", default="binning,adaptive,exact,kde", help="estimators to time")
    parser.add_argument("--host-only", action="store_true", help="skip the device path (slow on a CPU)")
    parser.add_argument("--plain-samples", type=int, default=30, help="layer-epochs the plain reference takes")
    args = parser.parse_args()
    import jax

    print(f"backend {jax.default_backend()}, devices {jax.devices()}, cpus {len(os.sched_getaffinity(0))}, "
          f"load average {os.getloadavg()[0]:.2f}")
    widths = [int(w) for w in args.widths.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        plain, quantized = Path(tmp) / "plain" / "cell.h5", Path(tmp) / "quantized" / "cell.h5"
        for path, bits in ((plain, 0), (quantized, 8)):
            path.parent.mkdir()
            make_run_file(path, args.seeds, args.epochs, args.n, widths, bits=bits)
        layer_epochs = args.seeds * args.epochs * len(widths)
        kde_settings = {"seeds": args.kde_seeds, "every": str(args.kde_every)}
        cases = {"binning": (plain, {}), "adaptive": (plain, {}), "exact": (quantized, {}),
                 "kde": (plain, kde_settings)}
        hosts = {}
        for name in args.only.split(","):
            path, settings = cases[name]
            host, host_groups = timed(path, name, settings, "host", args.workers)
            count = next(iter(host_groups.values()))[0]
            count = int(np.count_nonzero(~np.isnan(count))) if name == "kde" else layer_epochs
            plain_s = plain_seconds(path, name, args.plain_samples if name != "kde" else 3)
            print(f"{name:9s} {count} layer-epochs: host {host:7.2f} s ({host / count * 1e3:.3f} ms per layer-epoch); "
                  f"plain reference {plain_s * 1e3:.2f} ms per layer-epoch (one thread): plain/host "
                  f"{plain_s * count / host:.0f}x")
            hosts[name] = host
            if args.host_only:
                continue
            device, device_groups = timed(path, name, settings, "device", args.workers)
            gap = difference(host_groups, device_groups, relative=name == "kde")
            print(f"{'':9s} device {device:7.2f} s ({device / count * 1e3:.3f} ms); host/device {host / device:.2f}x; "
                  f"plain/device {plain_s * count / device:.1f}x; largest difference {gap:.1e}"
                  f"{' relative' if name == 'kde' else ' bits'}")
        if {"binning", "adaptive"} <= set(hosts):
            print(f"adaptive/binning on the host path: {hosts['adaptive'] / hosts['binning']:.2f}x (target <= 2x)")


if __name__ == "__main__":
    main()
