"""Issue 10's budgets on a paper-shaped cell: run-file size and binning from parameters.

Builds a paper cell (12-10-7-5-4-3-2 tanh, Adam 4e-4, batch 256, 85 %, --seeds seeds, 300
snapshots) by real training with the epochs scaled down to 299 (one snapshot per epoch: the
same file shape as 10^4 epochs with 300 snapshots; the full run takes minutes that a shared
machine may not have), once with `log.activations = false` and once with true. Then times
`ibrepro analyze --estimator binning` (a fresh process: start-up included) on each, and a
plain-numpy reference (np.digitize, then np.unique over rows viewed as one void scalar each,
for the layer and for each class) per layer-epoch on the stored activations.

    python scripts/bench_paper_cell.py [--seeds 50] [--stored-seeds 10] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = """name = "paper"
dataset = "tishby12"
[model]
hidden = [10, 7, 5, 4, 3]
[train]
optimizer = "adam"
lr = 4e-4
batch_size = 256
epochs = 299
seeds = {seeds}
train_fraction = 0.85
[log]
snapshots = 300
activations = {activations}
"""


def cli(*args: str) -> tuple[float, int]:
    """Run `ibrepro ARGS` in a fresh process: (wall seconds, peak RSS in MB of the children)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "ibrepro.cli", *args], cwd=ROOT, env=env, check=True,
                   capture_output=True, text=True)
    return time.monotonic() - started, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024


def build(work: Path, seeds: int, activations: bool) -> Path:
    config = work / f"paper-{seeds}-{activations}.toml"
    config.write_text(EXPERIMENT.format(seeds=seeds, activations=str(activations).lower()))
    out = work / f"runs-{seeds}-{activations}"
    wall, _ = cli("train", str(config), "--out", str(out), "--no-progress")
    path = out / "paper" / "cell.h5"
    print(f"trained {seeds} seeds x 300 snapshots, activations={activations}: {wall:.1f} s, "
          f"file {path.stat().st_size / 1e6:.1f} MB ({os.stat(path).st_blocks * 512 / 1e6:.1f} MB on disk)",
          flush=True)
    return path


def plain_reference(path: Path, samples: int) -> float:
    """Seconds per layer-epoch of the plain-numpy binning (30 bins on [-1, 1])."""
    import h5py

    edges = np.linspace(-1, 1, 30)
    with h5py.File(path, "r") as f:
        y = f["data/y"][()]
        names = sorted(f["activations"], key=int)
        rng = np.random.default_rng(0)
        picks = [(names[rng.integers(len(names))], rng.integers(f["activations/0"].shape[0]),
                  rng.integers(f["activations/0"].shape[1])) for _ in range(samples)]
        blocks = [f[f"activations/{k}"][s, e] for k, s, e in picks]
    started = time.perf_counter()
    for t in blocks:
        symbols = np.ascontiguousarray(np.digitize(t, edges))
        rows = symbols.view(np.dtype((np.void, symbols.dtype.itemsize * symbols.shape[1]))).ravel()
        np.unique(rows, return_counts=True)
        for c in (0, 1):
            np.unique(rows[y == c], return_counts=True)
    return (time.perf_counter() - started) / samples


def recompute_seconds(path: Path) -> tuple[float, float]:
    """Seconds to recompute every layer of the whole cell from params/: layer by layer (each
    layer's forward pass from the input, as a layer-major reader does) and block by block
    (one pass gives all layers), in blocks of 200 seed-epochs, compiled programs warmed up."""
    sys.path.insert(0, str(ROOT))
    from ibrepro.jaxsetup import configure

    configure()
    from ibrepro.analysis.activations import activation_layers, block_layers
    from ibrepro.train.runfile import open_run

    with open_run(path) as run:
        layers = activation_layers(run)
        n_seeds, n_epochs = layers[0].shape[:2]
        blocks = [(np.s_[s:s + 1], np.s_[e:min(e + 200, n_epochs)]) for s in range(n_seeds)
                  for e in range(0, n_epochs, 200)]
        for layer in layers:
            layer[blocks[0]]
        block_layers(run, *blocks[0])
        started = time.perf_counter()
        for layer in layers:
            for block in blocks:
                layer[block]
        by_layer = time.perf_counter() - started
        started = time.perf_counter()
        for block in blocks:
            block_layers(run, *block)
        return by_layer, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=50, help="seeds of the params-only cell")
    parser.add_argument("--stored-seeds", type=int, default=10,
                        help="seeds of the pair compared side by side (stored vs recomputed)")
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ibrepro-paper-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    bare = build(work, args.seeds, False)
    wall, rss = cli("analyze", str(bare), "--estimator", "binning", "--no-progress")
    layer_epochs = args.seeds * 300 * 6
    print(f"analyze binning from params, {args.seeds} seeds: {wall:.1f} s wall "
          f"({wall / layer_epochs * 1e3:.3f} ms per layer-epoch), peak RSS {rss} MB", flush=True)
    by_layer, by_block = recompute_seconds(bare)
    print(f"recomputing all layers of the {args.seeds}-seed cell: {by_layer:.1f} s layer by layer, "
          f"{by_block:.1f} s block by block", flush=True)
    if args.stored_seeds:
        pair = {flag: build(work, args.stored_seeds, flag) for flag in (False, True)}
        walls = {flag: cli("analyze", str(path), "--estimator", "binning", "--no-progress")[0]
                 for flag, path in pair.items()}
        per = plain_reference(pair[True], 300)
        n = args.stored_seeds * 300 * 6
        print(f"{args.stored_seeds} seeds side by side: binning from params {walls[False]:.1f} s, "
              f"from stored activations {walls[True]:.1f} s (ratio {walls[False] / walls[True]:.2f}); "
              f"plain numpy {per * 1e3:.2f} ms per layer-epoch -> {per * n:.1f} s for the cell; "
              f"speed-up from params {per * n / walls[False]:.1f}x, from stored {per * n / walls[True]:.1f}x")
    if args.keep is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
