"""`ibrepro report` on tiny real cells: rendered from the claims files, word for word."""

from __future__ import annotations

import os
import re
import shutil

import pytest
from helpers import tiny_config
from typer.testing import CliRunner

from ibrepro.analysis.analyze import analyze_path
from ibrepro.claims import claimsfile
from ibrepro.claims.rules import Rules
from ibrepro.claims.verdicts import NOT_APPLICABLE, interval_text
from ibrepro.cli import app
from ibrepro.errors import UserError
from ibrepro.ib.bound import bound_path
from ibrepro.layout import estimates_path
from ibrepro.report.document import to_markdown
from ibrepro.report.render import ensure_claims, write_report
from ibrepro.report.sections import settings_section, verdict_text
from ibrepro.train.loop import train_experiment

CLAIMS = ["i", "ii", "iii", "iv", "v"]


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """A depth sweep of two tiny trained cells, analysed and bounded; plus an unanalysed copy."""
    root = tmp_path_factory.mktemp("report")
    config = tiny_config("train.epochs=30", "log.snapshots=10", "sweep.model.hidden=[[6], [6, 4]]",
                         name="depth")
    train_experiment(config, root / "runs")
    directory = root / "runs" / "depth"
    raw = root / "raw"
    raw.mkdir()
    for cell in directory.glob("*.h5"):
        shutil.copy(cell, raw / cell.name)
    analyze_path(directory, progress=False)
    bound_path(directory)
    return directory, raw


@pytest.fixture(scope="module")
def report(experiment, tmp_path_factory):
    """The experiment's report, written through the CLI into its own directory."""
    directory, _ = experiment
    out = tmp_path_factory.mktemp("report_out")
    result = CliRunner().invoke(app, ["report", str(directory), "--estimator", "binning", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def table_rows(text: str, header: str) -> list[list[str]]:
    """The body rows of the Markdown table whose header line starts with `header`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


def cell_section(text: str, name: str) -> str:
    """The Markdown of a cell's section (its heading names the run file)."""
    return text.split(f" · `{name}.h5`\n", 1)[1].split("\n## ", 1)[0]


def link_target(cell: str) -> tuple[str, str]:
    """(text, anchor) of a Markdown link `[text](#anchor)`."""
    match = re.fullmatch(r"\[(.+)\]\(#(.+)\)", cell)
    assert match, cell
    return match.group(1), match.group(2)


def documents(directory):
    return {p.name[: -len(".claims.json")]: claimsfile.read(p) for p in directory.glob("*.claims.json")}


def test_verdict_matrix_is_the_claims_files_word_for_word(experiment, report):
    directory, _ = experiment
    text = (report / "report.md").read_text()
    docs = documents(directory)
    depth = claimsfile.read(directory / "claims.json")["groups"]
    rows = table_rows(text, "| cell | estimate group | claim i |")
    assert sorted(link_target(r[0])[0] for r in rows) == ["hidden-6", "hidden-6x4"]
    html = (report / "report.html").read_text()
    for link, group, *words in rows:
        cell, anchor = link_target(link)
        assert f'<a href="#{anchor}">{cell}</a>' in html  # the matrix links to the cell's section
        assert re.search(f'<h2 id="{anchor}">[^<]*<code>{cell}.h5</code>', html)
        name = group.split(" (")[0]
        claims = docs[cell]["groups"][name]["claims"]
        want = [claims[c]["verdict"] for c in CLAIMS]
        want[3] = depth[name]["claims"]["iv"]["verdict"]
        assert words == want


def test_each_cell_section_shows_every_claim_with_its_reason_and_numbers(experiment, report):
    directory, _ = experiment
    text = (report / "report.md").read_text()
    for name, doc in documents(directory).items():
        section = cell_section(text, name)
        group = doc["groups"]["binning_n30_lo-1_hi1"]
        rows = table_rows(section, "| claim | measured | rule | verdict |")
        assert [r[0].split(".")[0] for r in rows] == CLAIMS
        assert [r[3] for r in rows] == [verdict_text(group["claims"][c]).replace("|", "\\|")
                                        for c in CLAIMS]
        assert rows[3][3] == f"{NOT_APPLICABLE}: judged across the cells of the depth sweep: see claims.json"
        assert rows[4][3].startswith(f"{NOT_APPLICABLE}: train fraction 0.85 > 0.1")
        layers = table_rows(section, "| layer | final I(X;T) |")
        for row, layer in zip(layers, group["layers"]):
            assert row[1].removesuffix(" ⚠") == interval_text([claimsfile.number(v) for v in layer["final_ixt"]])
            assert row[2].endswith(" ⚠") == any(c["quantity"] == "ity" for c in layer["caveats"])
            for caveat in layer["caveats"]:
                assert f"{layer['layer']}: {caveat['text']}" in section
        images = re.findall(r"!\[[^]]*\]\(([^)]+\.png)\)", section)
        assert any("infoplane" in i for i in images) and all(name in i for i in images)
    html = (report / "report.html").read_text()
    assert html.count("<img ") == len(re.findall(r"!\[[^]]*\]\(([^)]+\.png)\)", text))


def test_experiment_report_judges_depth(experiment, report):
    directory, _ = experiment
    text = (report / "report.md").read_text()
    (row,) = table_rows(text, "| estimate group | median epochs to compressed state |")
    claim = claimsfile.read(directory / "claims.json")["groups"]["binning_n30_lo-1_hi1"]["claims"]["iv"]
    assert row[0] == "binning_n30_lo-1_hi1" and row[-1] == verdict_text(claim)
    assert "1 hidden:" in row[1] and "2 hidden:" in row[1]
    assert "last hidden layer and the output" in text


def test_cell_without_estimates_says_what_is_missing(experiment, tmp_path):
    _, raw = experiment
    cell = tmp_path / "hidden-6x4.h5"
    shutil.copy(raw / "hidden-6x4.h5", cell)
    text = write_report(cell).markdown.read_text()
    (row,) = table_rows(text, "| cell | estimate group | claim i |")
    assert row == ["[hidden-6x4](#cell-hidden-6x4)", "none", *[NOT_APPLICABLE] * 5]
    assert f"no estimates: run `ibrepro analyze {cell}`" in text
    assert not estimates_path(cell).exists()  # the report writes no estimates


def test_report_updates_stale_claims_and_takes_rules(experiment, report):
    directory, _ = experiment
    assert ensure_claims(directory, Rules())[2] == []  # the report fixture brought them up to date
    mi = estimates_path(directory / "hidden-6.h5")
    later = (directory / "hidden-6.claims.json").stat().st_mtime + 5
    os.utime(mi, (later, later))
    docs, _, judged = ensure_claims(directory, Rules(compression_share=0.9))
    assert directory / "hidden-6.claims.json" in judged
    assert docs[0]["rules"]["compression_share"] == 0.9
    assert "compression_share = 0.9" in to_markdown(settings_section(docs))
    assert ensure_claims(directory, Rules())[2]  # back to the default rules for other tests


def test_unknown_estimator_and_bad_paths(experiment, tmp_path):
    directory, _ = experiment
    with pytest.raises(UserError, match="kde"):
        write_report(directory, estimator="kde", out=tmp_path)
    with pytest.raises(UserError, match="not a run file"):
        write_report(estimates_path(directory / "hidden-6.h5"), out=tmp_path)
    assert not (tmp_path / "report.md").exists()


def test_cli_errors(experiment, tmp_path):
    directory, _ = experiment
    runner = CliRunner()
    for args in (["report", str(tmp_path / "missing")],
                 ["report", str(directory), "--estimator", "adaptive"],
                 ["report", str(directory), "--rule", "min_speedup=fast"],
                 ["report", str(estimates_path(directory / "hidden-6.h5"))]):
        result = runner.invoke(app, args)
        assert result.exit_code != 0 and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1 and "error" in result.output


def test_only_per_layer_binning_is_judged_on_that_group(experiment, tmp_path):
    """A cell analysed only with binning-layer (the MNIST recipe) is judged on that group."""
    _, raw = experiment
    cell = tmp_path / "hidden-6.h5"
    shutil.copy(raw / "hidden-6.h5", cell)
    analyze_path(cell, ["binning-layer"], progress=False)
    text = write_report(cell).markdown.read_text()
    (row,) = table_rows(text, "| cell | estimate group | claim i |")
    assert row[1] == "binning-layer_n30_layer_intervals (drawn labels)"
    # deterministic labels: self-consistency is not applicable, so no partition is named
    assert "self-consistency is not applicable" in text and "Self-consistency (SC) on" not in text


def test_caveats_stand_beside_their_numbers(experiment, report):
    """A layer whose I(T;Y) breaks an inequality gets ⚠ beside that number and the reason
    under the table; a clean layer gets neither."""
    from ibrepro.report.sections import cell_section as render_cell

    directory, _ = experiment
    doc = documents(directory)["hidden-6x4"]
    group = doc["groups"]["binning_n30_lo-1_hi1"]
    for layer in group["layers"]:
        layer["caveats"] = []
    reason = "I(T;Y) ends 0.2 bits above layer 1's: a deeper layer cannot carry more"
    group["layers"][1]["caveats"] = [{"quantity": "ity", "kind": "depth", "text": reason}]
    text = to_markdown(render_cell(doc, [], "figures"))
    rows = table_rows(text, "| layer | final I(X;T) |")
    assert rows[1][2].endswith(" ⚠") and not rows[1][1].endswith(" ⚠")
    assert not any(cell.endswith(" ⚠") for row in (rows[0], rows[2]) for cell in row)
    assert f"layer 2: {reason}" in text
