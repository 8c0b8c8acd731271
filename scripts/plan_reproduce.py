"""Before `make reproduce-all`: estimated time and disk per experiment, and a free-disk check.

Time is estimated from the training FLOPs (6 x parameters x training rows per seed-epoch) at
the rate measured on 2 CPU cores for the paper cell (5.5 MFLOP per seed-epoch in ~0.4 ms,
about 14 GFLOP/s), plus the analysis at ~0.1 ms per layer-epoch; disk from the run files'
array shapes (parameters always, activations when `log.activations` is true).

    python scripts/plan_reproduce.py OUT_DIR EXPERIMENT.toml ... [--ignore-disk]

Exits 1 with one line when the free disk under OUT_DIR is below the total needed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from ibrepro import config as cfg  # noqa: E402
from ibrepro.errors import UserError  # noqa: E402
from ibrepro.train.schedule import logged_epochs  # noqa: E402

FLOPS_PER_SECOND = 14e9
ANALYSIS_SECONDS_PER_LAYER_EPOCH = 1e-4
INPUTS = {"tishby12": (12, 4096, 2)}  # input width, rows, classes
MNIST = (784, 60000, 10)


def cell_cost(config: dict) -> tuple[float, float]:
    """(seconds, bytes) of one cell: training and binning analysis, and its run file."""
    width_in, rows, classes = INPUTS.get(config["dataset"], MNIST)
    train, log = config["train"], config["log"]
    n_eval = rows if config["dataset"] == "tishby12" else min(log["eval_samples"], 10000)
    widths = [*config["model"]["hidden"], classes]
    sizes = list(zip([width_in, *widths[:-1]], widths))
    n_params = sum(a * b + b for a, b in sizes)
    n_train = rows * train["train_fraction"]
    snapshots = len(logged_epochs(train["epochs"], log["snapshots"]))
    seconds = 6 * n_params * n_train * train["seeds"] * train["epochs"] / FLOPS_PER_SECOND
    seconds += train["seeds"] * snapshots * len(widths) * ANALYSIS_SECONDS_PER_LAYER_EPOCH
    size = train["seeds"] * snapshots * (n_params * 4 + 7 * 4)
    if log["activations"]:
        size += train["seeds"] * snapshots * n_eval * sum(widths) * (2 if log["dtype"] == "float16" else 4)
    return seconds, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("experiments", nargs="+", type=Path)
    parser.add_argument("--ignore-disk", action="store_true", help="start even when the disk looks too small")
    args = parser.parse_args()
    total_s = total_b = 0.0
    print(f"{'experiment':<22} {'cells':>5} {'time':>10} {'disk':>10}")
    for path in args.experiments:
        try:
            config = cfg.load(path)
        except UserError as exc:
            sys.exit(f"error: {exc}")
        costs = [cell_cost(c) for _, c in cfg.cells(config)]
        seconds, size = sum(c[0] for c in costs), sum(c[1] for c in costs)
        total_s, total_b = total_s + seconds, total_b + size
        print(f"{config['name']:<22} {len(costs):>5} {seconds / 60:>8.1f} m {size / 1e9:>8.2f} GB")
    print(f"{'total':<22} {'':>5} {total_s / 60:>8.1f} m {total_b / 1e9:>8.2f} GB")
    args.out.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(args.out).free
    if free < total_b and not args.ignore_disk:
        sys.exit(f"error: {args.out} has {free / 1e9:.2f} GB free and the runs need about "
                 f"{total_b / 1e9:.2f} GB; free space or pass IGNORE_DISK=1")


if __name__ == "__main__":
    main()
