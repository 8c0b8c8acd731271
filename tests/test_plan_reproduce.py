"""scripts/plan_reproduce.py: the estimate before `make reproduce-*` and the measured table after."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
    assert row[3:] == ["10.0", "m", "2.5", "m", "1.0", "m", "13.5", "m"]
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
