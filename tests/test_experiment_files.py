"""Every experiment file shipped, `make reproduce-all`'s and the accelerator ones, is valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from ibrepro import config as cfg

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted((ROOT / "experiments").rglob("*.toml"))


def test_the_accelerator_files_are_found():
    names = {p.name for p in FILES}
    assert {"mnist_activation_paper.toml", "mnist_depth_paper.toml", "mnist_datasize_paper.toml"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT / "experiments")))
def test_experiment_file_resolves_into_cells(path):
    config = cfg.load(path, [])
    cells = cfg.cells(config)
    assert cells and len({name for name, _ in cells}) == len(cells)
    for _, cell in cells:
        assert cell["name"] == config["name"]


def test_accelerator_files_are_paper_scale_and_store_parameters_only():
    for path in (ROOT / "experiments" / "accelerator").glob("*.toml"):
        config = cfg.load(path, [])
        assert config["train"]["epochs"] == 10000 and config["log"]["activations"] is False
        assert config["train"]["optimizer"] == "sgd" and config["train"]["batch_size"] == 128
