"""Before `make reproduce-all`: estimated time and disk per experiment, and a free-disk check.

Training time per cell: a fixed cost per seed and minibatch step (the small 12-bit networks
are bound by kernel launches, not arithmetic) plus the training FLOPs (6 x parameters x
training rows per seed-epoch) at the rate large matrix products reach; both measured on 2 CPU
cores in `make reproduce-paper` (tishby12 sweeps: ~46 us per seed-step; MNIST sweeps: ~100
GFLOP/s). Analysis time: every `analyze` run of the experiment's plan
(`python -m ibrepro.reproduce_plan`), layer-epochs analysed (seeds x logged epochs / every x
layers) times each estimator's cost per layer-epoch measured on 2 CPU cores at N = 4096 inputs
and width <= 10 (docs/performance.md), scaled by N (binning, exact) or N^2 (KDE, kNN) and by
width beyond 10. Disk from the run files' array shapes (parameters always, activations when
`log.activations` is true).

    python scripts/plan_reproduce.py OUT_DIR EXPERIMENT.toml ... [--ignore-disk]
    python scripts/plan_reproduce.py OUT_DIR EXPERIMENT.toml ... --measured

Exits 1 with one line when the free disk under OUT_DIR is below the total needed. After the
runs, --measured prints the estimate beside the stage times scripts/reproduce.sh recorded in
OUT_DIR/<name>/stage-times.tsv (training, analyses, bound + claims + report, total).
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from ibrepro import config as cfg  # noqa: E402
from ibrepro.analysis.request import epoch_positions  # noqa: E402
from ibrepro.errors import UserError  # noqa: E402
from ibrepro.reproduce_plan import AnalyzeRun, plan  # noqa: E402
from ibrepro.train.schedule import logged_epochs  # noqa: E402

# measured in `make reproduce-paper` on 2 shared CPU cores: tishby12-depth 2028 s for 42 M
# seed-steps (~44 us each after its FLOPs), tishby12-datasize 637 s for 11.5 M (~51 us);
# mnist-depth 101 s for 8.9 TFLOP, mnist-activation 445 s for 53 TFLOP (93-120 GFLOP/s)
SEED_STEP_SECONDS = 46e-6
FLOPS_PER_SECOND = 100e9
INPUTS = {"tishby12": (12, 4096, 2)}  # input width, rows, classes
MNIST = (784, 60000, 10)
# seconds per layer-epoch at N = 4096, width <= 10 (2 CPU cores, activations recomputed from
# parameters included), and the power of N/4096 the cost grows with. binning and kde: measured
# in `make reproduce-paper`'s tishby12-datasize (47 s for 270 000 layer-epochs; 1973 s for
# 67 500, before the KDE kernel was compiled with YNNPACK's fusions: 1.24x faster for a whole
# analyze run since, so 2.3e-2; tishby12-estimators measured 20.4 ms since, on a quiet machine).
# knn and renyi: the benchmarks' 27 and 15 ms times 1.37, what their one `analyze` run took in
# tishby12-estimators (1315 s for 22 800 layer-epochs); the others from the benchmarks
# (docs/performance.md) at the same load.
ESTIMATOR_COST = {"binning": (1.7e-4, 1), "binning-layer": (1.7e-4, 1), "exact": (1.7e-4, 1),
                  "adaptive": (2.7e-4, 1), "kde": (2.3e-2, 2), "knn": (3.7e-2, 2), "renyi": (2.1e-2, 0),
                  "noisy": (4.0e-2, 0)}


def cell_shape(config: dict) -> dict:
    """What the costs of one cell depend on: seeds, logged epochs, N, layer widths, parameters."""
    width_in, rows, classes = INPUTS.get(config["dataset"], MNIST)
    train, log = config["train"], config["log"]
    widths = [*config["model"]["hidden"], classes]
    return {"seeds": train["seeds"], "epochs": train["epochs"], "n_train": rows * train["train_fraction"],
            "snapshots": len(logged_epochs(train["epochs"], log["snapshots"])),
            "n_eval": rows if config["dataset"] == "tishby12" else min(log["eval_samples"], 10000),
            "widths": widths,
            "n_params": sum(a * b + b for a, b in zip([width_in, *widths[:-1]], widths))}


def training_seconds(config: dict) -> float:
    """Estimated training seconds of one cell: per seed-step cost plus FLOPs at the measured rates."""
    c = cell_shape(config)
    steps = math.ceil(c["n_train"] / (config["train"]["batch_size"] or c["n_train"]))  # 0: full batch
    per_seed_epoch = steps * SEED_STEP_SECONDS + 6 * c["n_params"] * c["n_train"] / FLOPS_PER_SECOND
    return c["seeds"] * c["epochs"] * per_seed_epoch


def analysis_seconds(config: dict, run: AnalyzeRun) -> float:
    """Estimated seconds of one `analyze` run on one cell."""
    c = cell_shape(config)
    epochs = len(epoch_positions(c["snapshots"], int(dict(run.settings).get("every", 1))))
    total = 0.0
    for name in run.estimators:
        seconds, power = ESTIMATOR_COST[name]
        per_epoch = sum(seconds * (c["n_eval"] / 4096) ** power * max(1.0, w / 10) for w in c["widths"])
        total += c["seeds"] * epochs * per_epoch
    return total


def disk_bytes(config: dict) -> float:
    """Bytes of one cell's run file: parameters, metrics and (if logged) activations."""
    c, log = cell_shape(config), config["log"]
    size = c["seeds"] * c["snapshots"] * (c["n_params"] * 4 + 7 * 4)
    if log["activations"]:
        size += c["seeds"] * c["snapshots"] * c["n_eval"] * sum(c["widths"]) * (2 if log["dtype"] == "float16" else 4)
    return size


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


def experiment_estimate(path: Path) -> tuple[str, int, float, float, float]:
    """(name, cells, training seconds, analysis seconds, bytes) of one experiment file."""
    name, runs = plan(path)
    cells = [cell for _, cell in cfg.cells(cfg.load(path))]
    return (name, len(cells), sum(training_seconds(c) for c in cells),
            sum(analysis_seconds(c, run) for c in cells for run in runs), sum(disk_bytes(c) for c in cells))


def print_measured(out: Path, estimates: list[tuple[str, int, float, float, float]]) -> None:
    """The closing table: estimated minutes beside measured ones, per experiment and in all."""
    print(f"{'':<22} {'estimated':^19}   {'measured':^36}")
    print(f"{'experiment':<22} {'train':>8} {'analyze':>9}   {'train':>8} {'analyze':>8} {'rest':>8} {'total':>8}")
    total_est = total = 0.0
    for name, _, train_s, analysis_s, _ in estimates:
        seconds = stage_seconds(out / name / "stage-times.tsv")
        if not seconds:
            print(f"{name:<22} {train_s / 60:>6.1f} m {analysis_s / 60:>7.1f} m   (no stage times in {out / name})")
            continue
        columns = measured_columns(seconds)
        total_est, total = total_est + train_s + analysis_s, total + sum(columns)
        train, analyses, rest = (c / 60 for c in columns)
        print(f"{name:<22} {train_s / 60:>6.1f} m {analysis_s / 60:>7.1f} m   {train:>6.1f} m {analyses:>6.1f} m "
              f"{rest:>6.1f} m {sum(columns) / 60:>6.1f} m")
    print(f"{'total (measured ones)':<22} {total_est / 60:>16.1f} m   {'':>26} {total / 60:>6.1f} m")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("experiments", nargs="+", type=Path)
    parser.add_argument("--ignore-disk", action="store_true", help="start even when the disk looks too small")
    parser.add_argument("--measured", action="store_true", help="after the runs: estimate beside measured times")
    args = parser.parse_args()
    try:
        estimates = [experiment_estimate(path) for path in args.experiments]
    except UserError as exc:
        sys.exit(f"error: {exc}")
    if args.measured:
        print_measured(args.out, estimates)
        return
    print(f"{'experiment':<22} {'cells':>5} {'train':>8} {'analyze':>9} {'disk':>9}")
    for name, n_cells, train_s, analysis_s, size in estimates:
        print(f"{name:<22} {n_cells:>5} {train_s / 60:>6.1f} m {analysis_s / 60:>7.1f} m {size / 1e9:>6.2f} GB")
    total_s = sum(e[2] + e[3] for e in estimates)
    total_b = sum(e[4] for e in estimates)
    print(f"{'total':<22} {'':>5} {total_s / 60:>16.1f} m {total_b / 1e9:>6.2f} GB")
    args.out.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(args.out).free
    if free < total_b and not args.ignore_disk:
        sys.exit(f"error: {args.out} has {free / 1e9:.2f} GB free and the runs need about "
                 f"{total_b / 1e9:.2f} GB; free space or pass IGNORE_DISK=1")


if __name__ == "__main__":
    main()
