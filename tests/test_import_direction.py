"""Imports follow the data flow: data -> train -> analysis -> ib -> claims -> report, then the
public API and the command line over them.

Every `import` in the package, at module level, inside a function or for type checkers only,
is read with `ast`; a module may import its own stage or an earlier one, never a later one.
The shared foundation (errors, file helpers, JAX set-up, the experiment file) comes first.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ibrepro"
STAGES = ("foundation", "data", "train", "analysis", "ib", "claims", "report", "api", "cli")
# modules directly under ibrepro/ and their stage; a subpackage's stage is its own name
TOP_LEVEL = {
    "ibrepro": "foundation",
    "ibrepro.errors": "foundation",
    "ibrepro.durable": "foundation",
    "ibrepro.jaxsetup": "foundation",
    "ibrepro.config": "foundation",
    "ibrepro.footprint": "foundation",  # the memory a config needs, checked when it loads
    "ibrepro.dimscales": "foundation",  # HDF5 dimension scales on run and estimates files
    "ibrepro.layout": "foundation",  # where the stages' files lie
    "ibrepro.cli": "cli",
    "ibrepro.cluster": "cli",
    "ibrepro.helplists": "cli",
    "ibrepro.progress": "cli",
    "ibrepro.mallocsetup": "cli",  # glibc's malloc settings for the analyze command
    "ibrepro.reproduce_plan": "cli",
    "ibrepro.__main__": "cli",
}
# (importer, imported): why the edge may run against the flow
EXCEPTIONS: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def stage_of(module: str) -> str:
    if module in TOP_LEVEL:
        return TOP_LEVEL[module]
    stage = module.split(".")[1]
    assert stage in STAGES, f"{module}: give it a stage in tests/test_import_direction.py (TOP_LEVEL)"
    return stage


def _deferred_nodes(tree: ast.Module) -> set[int]:
    """ids of the nodes inside a function or an `if TYPE_CHECKING:` block (not run on import)."""
    roots = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    roots += [n for n in ast.walk(tree) if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)]
    return {id(n) for root in roots for n in ast.walk(root) if n is not root}


def imported_modules(module: str, tree: ast.Module) -> list[tuple[str, int, bool]]:
    """(imported ibrepro module, line, deferred: inside a function or for type checkers only)
    for every import in `tree`; `from PKG import NAME` counts as PKG.NAME when that is a module."""
    package = module if MODULES.get(module, Path()).name == "__init__.py" else module.rpartition(".")[0]
    deferred = _deferred_nodes(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = list(dict.fromkeys(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                                       for a in node.names))
        else:
            continue
        found += [(n, node.lineno, id(node) in deferred) for n in names if n.split(".")[0] == "ibrepro"]
    return found


def import_edges() -> list[tuple[str, str, int, bool]]:
    """(importer, imported, line, deferred) over the whole package."""
    return [(module, imported, line, lazy) for module, path in MODULES.items()
            for imported, line, lazy in imported_modules(module, ast.parse(path.read_text(), str(path)))]


def is_backwards(importer: str, imported: str, deferred: bool) -> bool:
    """Whether an import runs against the data flow. Exception: the package root is the public
    façade, whose deferred imports (names loaded on first use, or for type checkers) may reach
    any stage; its imports run on import stay in the foundation, since `import ibrepro.x` runs them."""
    if importer == "ibrepro" and deferred:
        return False
    return STAGES.index(stage_of(imported)) > STAGES.index(stage_of(importer))


def test_every_module_has_a_stage():
    assert len(MODULES) > 50
    assert {stage_of(m) for m in MODULES} >= {"foundation", "data", "train", "analysis", "ib", "claims", "report"}


def test_no_import_runs_against_the_data_flow():
    backwards = [(a, b, line, deferred) for a, b, line, deferred in import_edges() if is_backwards(a, b, deferred)]
    unexpected = [f"{MODULES[a].relative_to(PACKAGE.parent)}:{line} ({stage_of(a)}) imports {b} ({stage_of(b)})"
                  + (" (deferred)" if deferred else "")
                  for a, b, line, deferred in backwards if (a, b) not in EXCEPTIONS]
    assert not unexpected, "imports against the data flow:\n" + "\n".join(unexpected)
    stale = set(EXCEPTIONS) - {(a, b) for a, b, _, _ in backwards}
    assert not stale, f"exceptions no longer needed, remove them: {sorted(stale)}"


def test_every_ibrepro_import_names_a_module_that_exists():
    """A lazy import of a moved or renamed module fails only when its function runs: catch it here."""
    packages = {m.rsplit(".", 1)[0] for m in MODULES} | set(MODULES)
    missing = [f"{MODULES[a].relative_to(PACKAGE.parent)}:{line} imports {b}"
               for a, b, line, _ in import_edges() if b not in packages]
    assert not missing, "imports of modules that do not exist:\n" + "\n".join(missing)


def test_the_check_sees_lazy_relative_type_only_and_from_package_imports():
    source = ("def f():\n    from ibrepro.report import plots\n"
              "from .. import errors\nfrom ibrepro import config as cfg\n"
              "if TYPE_CHECKING:\n    import ibrepro.cli\n")
    edges = imported_modules("ibrepro.claims.judge", ast.parse(source))
    assert sorted(edges) == [("ibrepro.cli", 6, True), ("ibrepro.config", 4, False), ("ibrepro.errors", 3, False),
                             ("ibrepro.report.plots", 2, True)]
    assert is_backwards("ibrepro.claims.judge", "ibrepro.report.plots", deferred=True)
    assert not is_backwards("ibrepro.report.render", "ibrepro.claims.judge", deferred=False)
    assert is_backwards("ibrepro", "ibrepro.analysis", deferred=False)
    assert not is_backwards("ibrepro", "ibrepro.analysis", deferred=True)
