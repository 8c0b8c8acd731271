"""Test set-up: two host devices (so seed sharding is exercised) and shared helpers."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")  # before configure()

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from ibrepro import config as cfg  # noqa: E402
from ibrepro.jaxsetup import configure  # noqa: E402

configure()

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def tiny_config(*overrides: str, name: str = "tiny") -> dict:
    """A small, fast tishby12 config with the given --set overrides."""
    raw = {"name": name, "dataset": "tishby12"}
    base = ["train.seeds=2", "train.epochs=12", "log.snapshots=6", "model.hidden=[6, 4]",
            "train.lr=0.01"]
    return cfg.resolve(raw, [*base, *overrides])


@pytest.fixture
def tiny():
    return tiny_config
