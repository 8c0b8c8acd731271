"""Configure JAX before first use: one host device per core, a persistent compile cache."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from ibrepro.errors import UserError

DEVICE_FLAG = "--xla_force_host_platform_device_count"
# XLA's YNNPACK fusions make the many tiny batched dots of a small MLP ~30% slower than its
# Eigen path on these CPUs (measured by scripts/bench_train.py); leave them off unless the
# user sets the flag.
YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
# The first jaxlib whose XLA knows YNN_FLAG (0.8.0 lacks it and aborts on it: "Unknown flag in
# XLA_FLAGS"); older ones have no YNNPACK fusions to turn off.
YNN_FLAG_SINCE = (0, 8, 1)
CACHE_ENV = "IBREPRO_JAX_CACHE"
# The YNNPACK fusions the KDE kernel is compiled with whatever the process flag says: its tile
# loop (distances, one exp per pair, row and column sums) runs 1.1-1.45x faster with them, a
# whole KDE analysis 1.24x (docs/performance.md), while training and the kNN kernel run slower
# (scripts/bench_kde.py, bench_train.py), so they are chosen per function.
YNN_KDE_FUSIONS = ",".join(f"LIBRARY_FUSION_TYPE_{kind}" for kind in ("DOT", "ELTWISE", "REDUCE"))


def jaxlib_version() -> tuple[int, ...]:
    """The installed jaxlib's version as numbers, e.g. (0, 10, 2)."""
    from jaxlib import version

    return tuple(int(part) for part in re.findall(r"\d+", version.__version__)[:3])


def use_all_cores() -> None:
    """Ask XLA for one host device per core and the Eigen dot path, unless the user already
    set those flags. Takes effect only if JAX's backend has not started yet. A jaxlib too old
    for the YNN flag gets a one-line note instead (XLA would abort on the unknown flag)."""
    flags = os.environ.get("XLA_FLAGS", "")
    check_device_count(flags)
    if DEVICE_FLAG not in flags:
        flags = f"{flags} {DEVICE_FLAG}={os.cpu_count() or 1}"
    if YNN_FLAG not in flags:
        if jaxlib_version() >= YNN_FLAG_SINCE:
            flags = f"{flags} {YNN_FLAG}="
        else:
            since = ".".join(map(str, YNN_FLAG_SINCE))
            print(f"note: jaxlib {'.'.join(map(str, jaxlib_version()))} predates XLA's {YNN_FLAG} "
                  f"(jaxlib >= {since}); not setting it. ibrepro needs jax >= {since}: "
                  f"pip install -U 'jax>={since}' (or make install: the locked versions)", file=sys.stderr)
    os.environ["XLA_FLAGS"] = flags.strip()


def ynn_fusions() -> dict[str, str]:
    """XLA compiler options for one jitted function (`jax.jit(..., compiler_options=...)`) that
    turn YNNPACK's dot, elementwise and reduction fusions on; empty on a jaxlib without them."""
    if jaxlib_version() < YNN_FLAG_SINCE:
        return {}
    return {YNN_FLAG.removeprefix("--"): YNN_KDE_FUSIONS}


def check_device_count(flags: str) -> None:
    """UserError when XLA_FLAGS asks for a host device count that is not a whole number >= 1
    (XLA would print 90 lines of flag help and abort, or fail to start its CPU backend)."""
    for value in re.findall(rf"{DEVICE_FLAG}(?:=(\S*))?(?:\s|$)", flags):
        if not (value.isdigit() and int(value) >= 1):
            raise UserError(f"XLA_FLAGS has {DEVICE_FLAG}={value}: the host device count must be a whole "
                            "number >= 1; fix it or leave it out of XLA_FLAGS")


def compile_cache_dir() -> Path:
    """Where compiled programs are kept between runs ($IBREPRO_JAX_CACHE, else the XDG cache)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ibrepro" / "jax"


def one_blas_thread() -> None:
    """One OpenBLAS thread per process unless the user chose otherwise. Analysis runs its own
    worker threads; OpenBLAS's threads on small matrices (the Rényi estimator's 100 x 100
    eigenvalue problems, LAPACK under JAX's CPU eigvalsh) made them 10-20x slower on a shared
    2-core machine (measured). Takes effect only if numpy and scipy are not loaded yet."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def configure() -> None:
    """Host devices, one BLAS thread, and the persistent compilation cache (compiling costs
    seconds per function on small CPUs; a cached program loads in milliseconds)."""
    use_all_cores()
    one_blas_thread()
    import jax

    jax.config.update("jax_compilation_cache_dir", str(compile_cache_dir()))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
