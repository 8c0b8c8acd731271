"""Helpers shared by the test modules (import them from here, not from conftest)."""

from __future__ import annotations

import os
from pathlib import Path

from ibrepro import config as cfg

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def mnist_data_dir() -> Path | None:
    """The MNIST IDX files: ../shared/data/mnist, else $IBREPRO_DATA_DIR(/mnist); None if absent."""
    candidates = [SHARED_MNIST]
    if os.environ.get("IBREPRO_DATA_DIR"):
        base = Path(os.environ["IBREPRO_DATA_DIR"])
        candidates += [base / "mnist", base]
    return next((d for d in candidates if (d / "train-images-idx3-ubyte.gz").is_file()), None)


def tiny_config(*overrides: str, name: str = "tiny") -> dict:
    """A small, fast tishby12 config with the given --set overrides."""
    raw = {"name": name, "dataset": "tishby12"}
    base = ["train.seeds=2", "train.epochs=12", "log.snapshots=6", "model.hidden=[6, 4]",
            "train.lr=0.01"]
    return cfg.resolve(raw, [*base, *overrides])
