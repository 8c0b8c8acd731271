"""Packaging: every module the package imports is declared, and the lock file pins each
declared distribution at a version its bounds allow."""

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


def test_lock_pins_each_requirement_of_every_extra_its_header_names():
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    header = " ".join(line for line in lines if line.startswith("#"))
    named = re.findall(r"ibrepro\[([\w,]+)\]", header)
    assert len(named) == 1, f"the lock header should name the extras it pins once: {header!r}"
    extras = named[0].split(",")
    assert sorted(extras) == sorted(PROJECT["optional-dependencies"]), "the lock pins every extra"
    pins = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    pins = {canonicalize_name(name): version for name, version in pins.items()}
    assert "ibrepro" not in pins
    for name, req in requirements(*extras).items():
        assert name in pins, f"{name} is not in requirements.lock"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} not {req.specifier}"


def test_python_m_ibrepro_runs_the_command_line():
    done = subprocess.run([sys.executable, "-m", "ibrepro", "train", "--help"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Usage: python -m ibrepro train" in done.stdout
