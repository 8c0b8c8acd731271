"""The claims file (`<cell>.claims.json`, and `claims.json` of an experiment; DESIGN §7):
names, atomic writing, reading, and whether a file is out of date.

JSON has no NaN or infinity: NaN is written as null and ±inf as the strings "inf" / "-inf";
`number` reads them back.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ibrepro.durable import write_atomically
from ibrepro.errors import UserError

SCHEMA = "ibrepro-claims/1"
EXPERIMENT_NAME = "claims.json"


def write(path: Path, document: dict) -> Path:
    """Write a claims document atomically (a reader never sees half a file)."""
    path = Path(path)
    try:
        write_atomically(path, (json.dumps(_clean(document), indent=1, allow_nan=False) + "\n").encode())
    except OSError as exc:
        raise UserError(f"cannot write {path} ({exc.strerror or exc}); the claims file is unchanged") from None
    return path


def read(path: Path) -> dict:
    """A claims document; UserError for an unreadable file or another schema."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable claims file ({exc.__class__.__name__}); "
                        f"run `ibrepro claims` again") from None
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise UserError(f"{path} is not an {SCHEMA} claims file; run `ibrepro claims` again")
    return document


def is_stale(path: Path, sources: list[Path], rules: dict) -> bool:
    """Whether a claims file is missing, unreadable, older than any existing source file
    (run file, estimates file), or judged with other rules."""
    path = Path(path)
    if not path.exists():
        return True
    mtime = path.stat().st_mtime
    if any(Path(s).exists() and Path(s).stat().st_mtime > mtime for s in sources):
        return True
    try:
        document = read(path)
    except UserError:
        return True
    return document.get("rules") != _clean(rules)


def number(value) -> float:
    """A number as written by `write` (null = NaN, "inf" = infinity)."""
    if value is None:
        return math.nan
    return float(value)


def _clean(value):
    """NaN -> None, inf -> "inf"; numpy scalars and arrays to plain Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "tolist"):
        return _clean(value.tolist())
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    return value
