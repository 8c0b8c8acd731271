"""Every code block of README.md and docs/*.md is executed or checked.

- ```python blocks run, in a directory where the getting-started tour (below) has made
  `runs/tishby12-quick/`. A block that calls a public name `ibrepro.X` this build lacks is
  skipped with that reason (never silently).
- ```toml blocks are parsed and resolved by the config loader, sweep expanded.
- ```json blocks are parsed.
- ```sh blocks run, in document order, in that directory, with `experiments/` linked in and
  every `ibrepro train` given a tiny configuration (TINY); a block marked
  `<!-- long: reason -->` on the line before is not run but checked: each `ibrepro` line is
  parsed by the command's own option parser (as `--help` shows it) and its config, estimator,
  setting and rule values are validated; `make` targets, scripts and their options must exist.
- ```text blocks are listings, not code. Any other language (or none) fails.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

import ibrepro
from ibrepro import config as cfg
from ibrepro import reproduce_plan
from ibrepro.analysis.request import pairs_to_settings, parse_request
from ibrepro.claims.rules import parse_rules
from ibrepro.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# the getting-started tour first: the other files' blocks read the runs it makes
FILES = [ROOT / "README.md", DOCS / "getting-started.md",
         *sorted(p for p in DOCS.glob("*.md") if p.name != "getting-started.md")]
TINY = ["--set", "train.epochs=40", "--set", "train.seeds=2", "--set", "log.snapshots=10"]
INERT = {"text"}
FENCE = re.compile(r"^```(\S*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
LONG = re.compile(r"<!--\s*long:\s*(.+?)\s*-->\s*$")
ASSIGN = re.compile(r"^[A-Za-z_]\w*=")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    lang: str
    code: str
    long_reason: str | None  # set when marked <!-- long: reason -->

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks_of(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file (only fences at the start of a line)."""
    text = path.read_text()
    found = []
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = LONG.search(before)
        found.append(Block(path, line, m.group(1), m.group(2), marker.group(1) if marker else None))
    return found


BLOCKS = [b for path in FILES if path.exists() for b in blocks_of(path)]


def of(lang: str, long: bool | None = None) -> list:
    return [pytest.param(b, id=b.id) for b in BLOCKS
            if b.lang == lang and (long is None or (b.long_reason is not None) == long)]


def test_every_block_has_a_known_language():
    unknown = [b.id for b in BLOCKS if b.lang not in {"python", "toml", "json", "sh"} | INERT]
    assert not unknown, f"code blocks without a tested language: {unknown}"
    assert len(of("sh", long=False)) >= 1 and len(of("python")) >= 1  # the tour and an example exist


# ---------------------------------------------------------------- shell lines


def commands(code: str) -> list[list[str]]:
    """The block's command lines as argument lists: continuations joined, comments dropped,
    `NAME=value` lines remembered and `$NAME` expanded in the lines after them."""
    variables: dict[str, str] = {}
    lines = []
    for line in code.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if len(words) == 1 and ASSIGN.match(words[0]):
            name, _, value = words[0].partition("=")
            variables[name] = value
            continue
        expanded = []
        for word in words:
            value = re.sub(r"\$\{?(\w+)\}?", lambda m: variables.get(m.group(1), m.group(0)), word)
            expanded += value.split() if value != word else [word]
        lines.append(expanded)
    return lines


def is_ibrepro(words: list[str]) -> bool:
    return words[0] in ("ibrepro", ".venv/bin/ibrepro")


def check_ibrepro(args: list[str], where: str) -> None:
    """Parse `ibrepro ARGS` as the CLI would, without running it, and validate the values the
    parser cannot: the experiment file and its --set keys, estimator names and settings, rules."""
    group = typer.main.get_command(app)
    if args[0].startswith("-"):  # a root option such as --version (eager: parsing would exit)
        known = {opt for param in group.params for opt in param.opts}
        assert set(args) <= known, f"{where}: unknown option(s) {set(args) - known}"
        return
    command = group.commands.get(args[0])
    assert command is not None, f"{where}: no command 'ibrepro {args[0]}'"
    ctx = command.make_context(args[0], list(args[1:]))
    params = ctx.params
    if args[0] == "train":
        config = cfg.load(ROOT / params["config_path"], params["set_"])
        assert cfg.cells(config)
    elif args[0] == "analyze":
        parse_request(params["estimator"] or ["binning"], pairs_to_settings(params["set_"]))
    if "rule" in params:
        parse_rules(params["rule"])


def check_other(words: list[str], where: str) -> None:
    """`make TARGET`, scripts (with the options they accept), pip extras, environment lines."""
    head = words[0]
    if head == "make":
        targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
        assert set(words[1:]) <= targets, f"{where}: unknown make target(s) {set(words[1:]) - targets}"
    elif head in ("export", "source"):
        assert len(words) == 2, where
    elif head.endswith("pip"):
        extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
        for word in words:
            for extra in re.findall(r"^\.\[([\w,]+)\]$", word)[:1]:
                assert set(extra.split(",")) <= set(extras), f"{where}: unknown extra in {word}"
    else:
        script = words[1] if head in ("bash", ".venv/bin/python") else head
        assert script.startswith("scripts/") and (ROOT / script).is_file(), f"{where}: unknown command {words}"
        source = (ROOT / script).read_text()
        for option in (w.split("=")[0] for w in words if w.startswith("--")):
            assert option in source, f"{where}: {script} has no option {option}"
        for arg in words:
            if arg.startswith("experiments/"):
                assert (ROOT / arg).is_file(), f"{where}: no experiment file {arg}"


@pytest.mark.parametrize("block", of("sh", long=True))
def test_long_shell_block_uses_valid_commands_and_options(block):
    for words in commands(block.code):
        if is_ibrepro(words):
            check_ibrepro(words[1:], block.id)
        else:
            check_other(words, block.id)


# ---------------------------------------------------------------- the runnable blocks


@pytest.fixture(scope="module")
def tour(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A directory where every runnable sh block has run in document order; block id -> the
    first failure's output ('' when the whole block ran)."""
    home = tmp_path_factory.mktemp("tour")
    (home / "experiments").symlink_to(ROOT / "experiments")
    outcomes = {}
    runner = CliRunner()
    with contextlib.chdir(home):
        for block in (p.values[0] for p in of("sh", long=False)):
            outcomes[block.id] = ""
            for words in commands(block.code):
                assert is_ibrepro(words), f"{block.id}: a runnable block may only hold ibrepro commands"
                args = words[1:] + (TINY + ["--no-progress"] if words[1] == "train" else [])
                result = runner.invoke(app, args)
                if result.exit_code != 0:
                    outcomes[block.id] = f"{' '.join(words)} -> exit {result.exit_code}\n{result.output}"
                    break
    return home, outcomes


@pytest.mark.parametrize("block", of("sh", long=False))
def test_shell_block_runs(block, tour):
    _, outcomes = tour
    assert outcomes[block.id] == "", outcomes[block.id]


def test_tour_writes_what_the_getting_started_page_promises(tour):
    cells = tour[0] / "runs" / "tishby12-quick"
    for name in ("cell.h5", "cell.mi.h5", "cell.claims.json", "report.html", "figures/index.html"):
        assert (cells / name).is_file(), name
    assert list((cells / "figures").glob("cell_movie_*.gif"))


@pytest.mark.parametrize("block", of("python"))
def test_python_block_runs(block, tour):
    missing = sorted({n for n in re.findall(r"\bibrepro\.(\w+)\(", block.code) if not hasattr(ibrepro, n)})
    if missing:
        pytest.skip(f"this build has no ibrepro.{', ibrepro.'.join(missing)} (the Python API, issue 23)")
    with contextlib.chdir(tour[0]), contextlib.redirect_stdout(io.StringIO()):
        exec(compile(block.code, block.id, "exec"), {"__name__": "__docs__"})


@pytest.mark.parametrize("block", of("toml"))
def test_toml_block_is_a_valid_experiment(block):
    config = cfg.resolve(tomllib.loads(block.code))
    assert cfg.cells(config)
    table = tomllib.loads(block.code).get(reproduce_plan.TABLE)
    if table is not None:  # the analyses scripts/reproduce.sh runs, checked as it checks them
        reproduce_plan.check_runs(reproduce_plan.default_runs(config) + reproduce_plan.parse_table(table, block.id),
                                  block.id)


@pytest.mark.parametrize("block", of("json"))
def test_json_block_parses(block):
    json.loads(block.code)


# ---------------------------------------------------------------- help that stands alone


def help_text(*args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200", "TERM": "dumb"})
    assert result.exit_code == 0, result.output
    return result.output


def test_analyze_help_lists_every_estimator_and_setting_with_its_default():
    from ibrepro.analysis.estimators import REGISTRY
    from ibrepro.analysis.request import COMMON_PARAMS

    text = help_text("analyze")
    for estimator in REGISTRY.values():
        assert f"{estimator.name}: " in text
        for param in estimator.params:
            default = "from the run's config" if param.default is None else param.default
            assert f"{param.name} (default {default})" in text, param.name
    for param in COMMON_PARAMS:
        assert f"{param.name} (default {param.default})" in text


@pytest.mark.parametrize("command", ["claims", "report"])
def test_claims_and_report_help_list_every_rule_with_its_default(command):
    import dataclasses

    from ibrepro.claims.rules import Rules

    text = help_text(command)
    for field in dataclasses.fields(Rules):
        assert re.search(rf"{field.name} \(default {field.default:g}\): \S", text), field.name


def test_version_and_boolean_options_read_as_switches():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"ibrepro {ibrepro.__version__}"
    assert "--no-per-seed" in help_text("plot") and "--no-movie" in help_text("plot")
    assert "--no-force" in help_text("train")

