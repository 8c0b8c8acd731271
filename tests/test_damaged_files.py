"""Damaged run and estimates files: every reader (analyze, plot, bound, claims, report) says
what is wrong in one line naming the file, exits 2, and writes no traceback (issue 22)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from ibrepro import config as cfg
from ibrepro.analysis.analyze import analyze_path
from ibrepro.cli import app
from ibrepro.train.loop import train_cell

READERS = ("analyze", "plot", "bound", "claims", "report")
RUN = "cell.h5"
ESTIMATES = "cell.mi.h5"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A complete tiny cell with binning estimates."""
    directory = tmp_path_factory.mktemp("cell")
    config = cfg.resolve({"name": "tiny", "dataset": "tishby12"},
                         ["train.seeds=2", "train.epochs=12", "log.snapshots=6", "model.hidden=[6, 4]"])
    train_cell("cell", config, directory / RUN)
    analyze_path(directory / RUN, progress=False)
    return directory


def _cut(name: str, keep: float):
    def damage(d: Path) -> None:
        data = (d / name).read_bytes()
        (d / name).write_bytes(data[: int(len(data) * keep)])
    return damage


def _heap_signature(d: Path) -> None:
    """Overwrite the signature of the global heap that holds the string attrs (config, ...)."""
    data = bytearray((d / RUN).read_bytes())
    at = data.index(b"GCOL")
    data[at: at + 4] = b"\xa5" * 4
    (d / RUN).write_bytes(bytes(data))


def _attr(name: str, value: str):
    def damage(d: Path) -> None:
        with h5py.File(d / RUN, "a") as f:
            f.attrs[name] = value
    return damage


def _config(edit):
    def damage(d: Path) -> None:
        with h5py.File(d / RUN, "a") as f:
            config = json.loads(f.attrs["config"])
            edit(config)
            f.attrs["config"] = json.dumps(config)
    return damage


def _dataset(name: str, value, file: str = RUN):
    def damage(d: Path) -> None:
        with h5py.File(d / file, "a") as f:
            old = f[name][()]
            del f[name]
            f[name] = value(old)
    return damage


def _estimate_seeds(d: Path) -> None:
    with h5py.File(d / ESTIMATES, "a") as f:
        for group in f.values():
            del group["seeds"]
            group["seeds"] = np.array([0, 7])


# damage -> (what it does, words of the message, the readers it concerns)
DAMAGES = {
    "run truncated": (_cut(RUN, 0.5), "is not a readable HDF5 file (truncated file)", READERS),
    "run empty": (_cut(RUN, 0), "is not a readable HDF5 file (file signature not found)", READERS),
    "run bytes overwritten": (_heap_signature, "cannot be read (bad global heap collection signature)", READERS),
    "config not an object": (_attr("config", "[1, 2]"), "its config is not a JSON object", READERS),
    "config not JSON": (_attr("config", "{not json"), "its config attr is not valid JSON", READERS),
    "config without dataset": (_config(lambda c: c.pop("dataset")), "its config names no dataset", READERS),
    "epochs out of order": (_dataset("epochs", lambda e: e[::-1].copy()), "logged epochs are not increasing",
                            ("analyze", "plot", "claims", "report")),
    "negative labels": (_dataset("data/y", lambda y: y - 1), "data/y holds labels that are not non-negative",
                        READERS),
    "complete_snapshots -1": (_dataset("complete_snapshots", lambda n: np.int64(-1)),
                              "complete_snapshots = -1 is outside 0..6", ("analyze", "plot", "claims", "report")),
    "complete_snapshots beyond": (_dataset("complete_snapshots", lambda n: np.int64(7)),
                                  "complete_snapshots = 7 is outside 0..6", ("analyze", "plot", "claims", "report")),
    "estimates truncated": (_cut(ESTIMATES, 0.5), "cell.mi.h5 is not a readable HDF5 file (truncated file); move it "
                            "away to recompute", READERS),
    "estimate seeds out of range": (_estimate_seeds, "names run seed 7, the run has 2 seeds", ("claims", "report")),
}
CASES = [(damage, reader) for damage, (_, _, readers) in DAMAGES.items() for reader in readers]


def invoke(reader: str, run: Path):
    args = {"analyze": ["--no-progress"]}.get(reader, [])
    return CliRunner().invoke(app, [reader, str(run), *args])


def damaged_copy(trained: Path, tmp_path: Path, damage: str) -> Path:
    directory = tmp_path / "cell"
    shutil.copytree(trained, directory)
    DAMAGES[damage][0](directory)
    return directory


@pytest.mark.parametrize("damage, reader", CASES, ids=[f"{d}-{r}" for d, r in CASES])
def test_a_damaged_file_is_one_line_naming_it(trained, tmp_path, damage, reader):
    directory = damaged_copy(trained, tmp_path, damage)
    result = invoke(reader, directory / RUN)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert len(lines) == 1 and str(directory) in lines[0] and DAMAGES[damage][1] in lines[0], result.output
    assert "sblock" not in lines[0] and "in use by another process" not in lines[0]


def test_after_a_truncated_estimates_file_is_moved_away_analyze_recomputes(trained, tmp_path):
    directory = damaged_copy(trained, tmp_path, "estimates truncated")
    assert "move it away" in invoke("analyze", directory / RUN).output
    (directory / ESTIMATES).rename(directory / "damaged.mi.h5")
    assert invoke("analyze", directory / RUN).exit_code == 0
    with h5py.File(directory / ESTIMATES) as new, h5py.File(trained / ESTIMATES) as old:
        assert set(new) == set(old)
        for name in old:
            np.testing.assert_array_equal(new[name]["ixt"][()], old[name]["ixt"][()])


@pytest.mark.parametrize("table", ["model", "train"])
def test_a_config_without_model_or_train_is_read_with_the_files_own_sizes(trained, tmp_path, table):
    """The layer widths and the seed count come from the arrays; other keys get defaults."""
    from ibrepro.analysis.cell import read_cell

    directory = tmp_path / "cell"
    shutil.copytree(trained, directory)
    _config(lambda c: c.pop(table))(directory)
    cell = read_cell(directory / RUN)
    assert cell.config["model"]["hidden"] == [6, 4] and cell.config["train"]["seeds"] == 2
    result = invoke("claims", directory / RUN)
    assert result.exit_code == 0, result.output
