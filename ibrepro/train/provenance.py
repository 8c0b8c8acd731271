"""Where and with what a run file was made: package versions, git commit, JAX device."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import jax

PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "h5py")


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def git_commit() -> str:
    """The commit of the checkout this package runs from ("" outside a git checkout)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return ""
    try:
        done = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def provenance() -> dict[str, str]:
    """Root attrs of a new run file (DESIGN §7): versions, git_commit, backend, device_kind, started."""
    return {"versions": json.dumps({p: _version(p) for p in PACKAGES}), "git_commit": git_commit(),
            "backend": jax.default_backend(), "device_kind": jax.devices()[0].device_kind,
            "started": now()}
