"""Test set-up: two host devices (so seed sharding is exercised) and the `tiny` fixture.
Helpers shared by test modules live in tests/helpers.py."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")  # before configure()

import pytest  # noqa: E402
from helpers import tiny_config  # noqa: E402

from ibrepro.jaxsetup import configure  # noqa: E402

configure()


@pytest.fixture
def tiny():
    """`helpers.tiny_config`, for tests that take it as a fixture."""
    return tiny_config
