"""Every critique experiment file trains, is analysed with its own estimators and gets its IB
bound at tiny scale; one of them also goes through `report` (figures are the slow part)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from ibrepro.cli import app
from ibrepro.reproduce_plan import AnalyzeRun, parse_table

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
NAMES = ["tishby12_activation", "tishby12_fullbatch", "tishby12_noisy_labels",
         "tishby12_noise_injected", "tishby12_batchsize", "tishby12_dropout"]
TINY = ["train.seeds=5", "train.epochs=3", "log.snapshots=2", "model.hidden=[5, 3]"]


def cli(*args) -> None:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output


def extra_runs(raw: dict, path: Path) -> tuple[AnalyzeRun, ...]:
    """The extra `analyze` runs an experiment's [reproduce] table asks for (as scripts/reproduce.sh makes them)."""
    return parse_table(raw.get("reproduce", {}), str(path))


@pytest.mark.parametrize("name", NAMES)
def test_experiment_runs_end_to_end_at_tiny_scale(tmp_path, name):
    path = EXPERIMENTS / f"{name}.toml"
    raw = tomllib.loads(path.read_text())
    # one cell: the sweep's last value (the one furthest from the paper's defaults)
    (key, values), = raw["sweep"].items()
    tiny = [*TINY, f"sweep.{key}={json.dumps(values[-1:])}"]
    cli("train", path, "--out", tmp_path, *(a for t in tiny for a in ("--set", t)))
    cells = tmp_path / raw["name"]
    cli("analyze", cells)
    for extra in extra_runs(raw, path):
        cli("analyze", cells, *extra.args)
    cli("bound", cells)
    if name == "tishby12_noise_injected":  # figures take seconds: the report of one file only
        cli("report", cells, "--estimator", "noisy")
        assert (cells / "report.html").is_file()
        assert list((cells / "figures").glob("*_clustering_noisy_*.png"))
        report = (cells / "report.md").read_text()
        # Goldfeld et al.'s values beside the measured ones, one row per hidden layer (2 here)
        assert "| noise_std-0.1 | 1 | 7.76 | " in report and "| noise_std-0.1 | 2 | 7.90 | " in report
    (run,) = [p for p in cells.glob("*.h5") if not p.name.endswith(".mi.h5")]
    with h5py.File(run, "r") as f:
        assert json.loads(f.attrs["config"])[key.split(".")[0]][key.split(".")[1]] == values[-1]
    with h5py.File(cells / run.name.replace(".h5", ".mi.h5"), "r") as f:
        groups = {f[g].attrs.get("estimator", g) for g in f}
        wanted = {"binning", *(e for run in extra_runs(raw, path) for e in run.estimators)}
        assert wanted <= groups
        for g in f:
            if "ixt" in f[g]:
                assert np.isfinite(f[g]["ixt"][..., 0]).all(), g
