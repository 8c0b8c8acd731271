"""Packaging: every module the package and its tests import is declared; the lock file pins
exactly what its header says, each declared distribution within its bounds; `python -m ibrepro`."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def requirements(*extras: str) -> dict[str, Requirement]:
    """The declared requirements by canonical name: the dependencies plus the given extras
    (every extra when none is named)."""
    optional = PROJECT.get("optional-dependencies", {})
    chosen = [r for name, reqs in optional.items() if not extras or name in extras for r in reqs]
    return {canonicalize_name(Requirement(r).name): Requirement(r) for r in PROJECT["dependencies"] + chosen}


def imported_modules(folder: str = "ibrepro") -> set[str]:
    """Top-level names of the modules imported anywhere in `folder`, less the standard library
    and the folder's own modules."""
    names = set()
    paths = list((ROOT / folder).rglob("*.py"))
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"ibrepro"} - {p.stem for p in paths}


def test_every_imported_module_is_declared():
    modules = imported_modules()
    assert {"jax", "jaxlib", "numpy", "pooch", "requests", "rich", "typer"} <= modules
    owners = metadata.packages_distributions()
    declared = set(requirements())
    undeclared = {m for m in modules if not {canonicalize_name(d) for d in owners.get(m, [m])} & declared}
    assert not undeclared, f"imported but not in pyproject.toml: {sorted(undeclared)}"


def test_every_module_the_tests_import_is_declared_in_the_test_extra():
    modules = imported_modules("tests")
    assert {"pytest", "packaging", "numpy"} <= modules and "helpers" not in modules
    owners = metadata.packages_distributions()
    declared = set(requirements("test"))
    undeclared = {m for m in modules if not {canonicalize_name(d) for d in owners.get(m, [m])} & declared}
    assert not undeclared, f"imported by tests but not in pyproject.toml: {sorted(undeclared)}"


def test_every_requirement_has_lower_and_upper_bounds():
    for name, req in requirements().items():
        operators = {spec.operator for spec in req.specifier}
        assert operators & {">=", ">", "~=", "=="} and operators & {"<", "<=", "~=", "=="}, name


def dependency_closure(extras: set[str]) -> set[str]:
    """Canonical names of every distribution ibrepro[extras] needs, directly or not (from the
    installed metadata, which `make install` takes from the lock)."""
    todo, seen = [("ibrepro", frozenset(extras))], set()
    while todo:
        name, wanted = todo.pop()
        for req in map(Requirement, metadata.requires(name) or []):
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in (wanted or {""})):
                continue
            key = (canonicalize_name(req.name), frozenset(req.extras))
            if key not in seen:
                seen.add(key)
                todo.append((req.name, frozenset(req.extras)))
    return {name for name, _ in seen}


def test_lock_pins_exactly_the_closure_of_the_extras_its_header_names():
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    header = " ".join(line for line in lines if line.startswith("#"))
    named = re.findall(r"ibrepro\[([\w,-]+)\]", header)
    assert len(named) == 1, f"the lock header should name the extras it pins, once: {header!r}"
    extras = set(named[0].split(","))
    assert {"test"} <= extras <= set(PROJECT["optional-dependencies"])
    pins = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    pins = {canonicalize_name(name): version for name, version in pins.items()}
    assert set(pins) == dependency_closure(extras) - {"pip", "setuptools", "wheel"}
    for name, req in requirements(*extras).items():
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} not {req.specifier}"


def test_python_m_ibrepro_runs_the_command_line():
    done = subprocess.run([sys.executable, "-m", "ibrepro", "train", "--help"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Usage: python -m ibrepro train" in done.stdout
