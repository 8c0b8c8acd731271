"""scripts/plan_reproduce.py: the estimate before `make reproduce-*` and the measured table after."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import tiny_config

from ibrepro.reproduce_plan import AnalyzeRun

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "plan_reproduce.py"
QUICK = ROOT / "experiments" / "tishby12_quick.toml"


def plan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False)


def test_measured_table_sums_train_analyses_and_the_rest(tmp_path):
    cells = tmp_path / "tishby12-quick"
    cells.mkdir()
    # an analysis run twice counts its last time; bound, claims and report make up the rest
    (cells / "stage-times.tsv").write_text("train\t600\nbinning\t30\nkde\t60\nbinning\t90\nbound\t6\nclaims\t6\n"
                                           "report\t48\n")
    done = plan(str(tmp_path), str(QUICK), "--measured")
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("tishby12-quick")).split()
    assert row[5:] == ["10.0", "m", "2.5", "m", "1.0", "m", "13.5", "m"]
    total = next(line for line in done.stdout.splitlines() if line.startswith("total")).split()
    assert total[-2:] == ["13.5", "m"]


def test_measured_table_names_an_experiment_without_stage_times(tmp_path):
    done = plan(str(tmp_path), str(QUICK), "--measured")
    assert done.returncode == 0, done.stderr
    assert "no stage times" in done.stdout


def test_estimate_lists_each_experiment_with_its_number_of_cells(tmp_path):
    done = plan(str(tmp_path), str(QUICK))
    assert done.returncode == 0, done.stderr
    assert next(line for line in done.stdout.splitlines() if line.startswith("tishby12-quick")).split()[1] == "1"


def load_script():
    spec = importlib.util.spec_from_file_location("plan_reproduce", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_analysis_estimate_counts_the_layer_epochs_each_run_analyses():
    script = load_script()
    config = tiny_config("train.seeds=4", "train.epochs=1000", "log.snapshots=41", "model.hidden=[6, 4]")
    kde = script.analysis_seconds(config, AnalyzeRun("kde", ("kde",)))
    kde4 = script.analysis_seconds(config, AnalyzeRun("kde", ("kde",), (("every", "4"),)))
    binning = script.analysis_seconds(config, AnalyzeRun("b", ("binning",)))
    snapshots = script.cell_shape(config)["snapshots"]
    cost = script.ESTIMATOR_COST
    assert binning == pytest.approx(4 * snapshots * 3 * cost["binning"][0], rel=1e-12)  # seeds x epochs x layers
    assert kde == pytest.approx(4 * snapshots * 3 * cost["kde"][0], rel=1e-12)
    assert snapshots == 41
    # every=4 of 41 logged epochs: positions 0, 4, ..., 40
    assert kde4 == pytest.approx(4 * 11 * 3 * cost["kde"][0], rel=1e-12)
    wider = tiny_config("train.seeds=4", "train.epochs=1000", "log.snapshots=41", "model.hidden=[60, 4]")
    wide_binning = script.analysis_seconds(wider, AnalyzeRun("b", ("binning",)))
    # 60 units cost 6 of width 10
    assert wide_binning == pytest.approx(binning + 4 * snapshots * 5 * cost["binning"][0], rel=1e-12)


def test_training_estimate_counts_steps_for_small_networks_and_flops_for_large_ones():
    script = load_script()
    small = tiny_config("train.seeds=2", "train.epochs=10", "train.batch_size=256", "model.hidden=[10, 7]")
    shape = script.cell_shape(small)
    steps = -(-shape["n_train"] // 256)
    flops = 6 * shape["n_params"] * shape["n_train"]
    expected = 2 * 10 * (steps * script.SEED_STEP_SECONDS + flops / script.FLOPS_PER_SECOND)
    assert script.training_seconds(small) == pytest.approx(expected, rel=1e-12)
    assert steps * script.SEED_STEP_SECONDS > 10 * flops / script.FLOPS_PER_SECOND  # launch-bound
    halved = tiny_config("train.seeds=2", "train.epochs=10", "train.batch_size=512", "model.hidden=[10, 7]")
    assert script.training_seconds(halved) < 0.6 * expected  # half the steps, same FLOPs
    full = tiny_config("train.seeds=2", "train.epochs=10", "train.batch_size=0", "model.hidden=[10, 7]")
    assert script.training_seconds(full) == pytest.approx(
        2 * 10 * (script.SEED_STEP_SECONDS + flops / script.FLOPS_PER_SECOND), rel=1e-12)
