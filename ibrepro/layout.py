"""Where each stage's file lies: beside a run file `<cell>.h5`, its estimates `<cell>.mi.h5`
(analyze, bound) and its claims `<cell>.claims.json` (claims), both of that one run."""

from __future__ import annotations

from pathlib import Path

RUN_SUFFIX = ".h5"
ESTIMATES_SUFFIX = ".mi.h5"
CLAIMS_SUFFIX = ".claims.json"


def _beside(run_path: Path, suffix: str) -> Path:
    run_path = Path(run_path)
    return run_path.with_name(run_path.name[: -len(RUN_SUFFIX)] + suffix)


def estimates_path(run_path: Path) -> Path:
    """The estimates file beside a run file: cell.h5 -> cell.mi.h5."""
    return _beside(run_path, ESTIMATES_SUFFIX)


def claims_path(run_path: Path) -> Path:
    """The claims file beside a run file: cell.h5 -> cell.claims.json."""
    return _beside(run_path, CLAIMS_SUFFIX)


def result_paths(run_path: Path) -> tuple[Path, Path]:
    """What later stages write beside a run file, all of one run: estimates, claims."""
    return estimates_path(run_path), claims_path(run_path)


def is_run_file(path: Path) -> bool:
    """Whether a path names a run file (`*.h5` but not an estimates file)."""
    return path.name.endswith(RUN_SUFFIX) and not path.name.endswith(ESTIMATES_SUFFIX)
