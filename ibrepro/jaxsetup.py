"""Configure JAX before first use: one host device per core, a persistent compile cache."""

from __future__ import annotations

import os
from pathlib import Path

DEVICE_FLAG = "--xla_force_host_platform_device_count"
CACHE_ENV = "IBREPRO_JAX_CACHE"


def use_all_cores() -> None:
    """Ask XLA for one host device per core unless the user already chose a count.

    Takes effect only if JAX's backend has not started yet.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if DEVICE_FLAG not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {DEVICE_FLAG}={os.cpu_count() or 1}".strip()


def compile_cache_dir() -> Path:
    """Where compiled programs are kept between runs ($IBREPRO_JAX_CACHE, else the XDG cache)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ibrepro" / "jax"


def configure() -> None:
    """Host devices plus the persistent compilation cache (compiling costs seconds per
    function on small CPUs; a cached program loads in milliseconds)."""
    use_all_cores()
    import jax

    jax.config.update("jax_compilation_cache_dir", str(compile_cache_dir()))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
