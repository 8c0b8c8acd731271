"""Before `make reproduce-all`: estimated time and disk per experiment, and a free-disk check.

Time is estimated from the training FLOPs (6 x parameters x training rows per seed-epoch) at
the rate measured on 2 CPU cores for the paper cell (5.5 MFLOP per seed-epoch in ~0.4 ms,
about 14 GFLOP/s), plus the analysis at ~0.1 ms per layer-epoch; disk from the run files'
array shapes (parameters always, activations when `log.activations` is true).

    python scripts/plan_reproduce.py OUT_DIR EXPERIMENT.toml ... [--ignore-disk]
    python scripts/plan_reproduce.py OUT_DIR EXPERIMENT.toml ... --measured

Exits 1 with one line when the free disk under OUT_DIR is below the total needed. After the
runs, --measured prints the estimate beside the stage times scripts/reproduce.sh recorded in
OUT_DIR/<name>/stage-times.tsv (training, analyses, bound + claims + report, total).
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


def stage_seconds(path: Path) -> dict[str, int]:
    """Seconds per stage from a stage-times.tsv; a stage run again counts its last time."""
    if not path.is_file():
        return {}
    rows = (line.split("\t") for line in path.read_text().splitlines() if line.strip())
    return {stage: int(seconds) for stage, seconds in rows}


def measured_columns(seconds: dict[str, int]) -> tuple[int, int, int]:
    """(training, analyses, bound + claims + report) seconds of one experiment's stages."""
    rest = sum(seconds.get(stage, 0) for stage in ("bound", "claims", "report"))
    analyses = sum(s for stage, s in seconds.items() if stage not in ("train", "bound", "claims", "report"))
    return seconds.get("train", 0), analyses, rest


def print_measured(out: Path, experiments: list[tuple[str, float]]) -> None:
    """The closing table: estimated minutes beside measured ones, per experiment and in all."""
    print(f"{'experiment':<22} {'estimated':>10} {'train':>8} {'analyze':>8} {'rest':>8} {'measured':>9}")
    total_est = total = 0.0
    for name, estimated in experiments:
        seconds = stage_seconds(out / name / "stage-times.tsv")
        if not seconds:
            print(f"{name:<22} {estimated / 60:>8.1f} m  (no stage times in {out / name})")
            continue
        columns = measured_columns(seconds)
        total_est, total = total_est + estimated, total + sum(columns)
        train, analyses, rest = (c / 60 for c in columns)
        print(f"{name:<22} {estimated / 60:>8.1f} m {train:>6.1f} m {analyses:>6.1f} m {rest:>6.1f} m "
              f"{sum(columns) / 60:>7.1f} m")
    print(f"{'total':<22} {total_est / 60:>8.1f} m {'':>26} {total / 60:>7.1f} m")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("experiments", nargs="+", type=Path)
    parser.add_argument("--ignore-disk", action="store_true", help="start even when the disk looks too small")
    parser.add_argument("--measured", action="store_true", help="after the runs: estimate beside measured times")
    args = parser.parse_args()
    total_s = total_b = 0.0
    estimates = []
    for path in args.experiments:
        try:
            config = cfg.load(path)
        except UserError as exc:
            sys.exit(f"error: {exc}")
        costs = [cell_cost(c) for _, c in cfg.cells(config)]
        seconds, size = sum(c[0] for c in costs), sum(c[1] for c in costs)
        total_s, total_b = total_s + seconds, total_b + size
        estimates.append((config["name"], len(costs), seconds, size))
    if args.measured:
        print_measured(args.out, [(name, seconds) for name, _, seconds, _ in estimates])
        return
    print(f"{'experiment':<22} {'cells':>5} {'time':>10} {'disk':>10}")
    for name, n_cells, seconds, size in estimates:
        print(f"{name:<22} {n_cells:>5} {seconds / 60:>8.1f} m {size / 1e9:>8.2f} GB")
    print(f"{'total':<22} {'':>5} {total_s / 60:>8.1f} m {total_b / 1e9:>8.2f} GB")
    args.out.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(args.out).free
    if free < total_b and not args.ignore_disk:
        sys.exit(f"error: {args.out} has {free / 1e9:.2f} GB free and the runs need about "
                 f"{total_b / 1e9:.2f} GB; free space or pass IGNORE_DISK=1")


if __name__ == "__main__":
    main()
