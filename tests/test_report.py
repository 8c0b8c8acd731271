"""`ibrepro report` on tiny real cells: claims table, verdict words, figures, missing inputs."""

from __future__ import annotations

import re
import shutil

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import tiny_config
from ibrepro.claims import rules as claims
from ibrepro.analysis.analyze import analyze_path
from ibrepro.analysis.cell import estimates_path
from ibrepro.ib.bound import bound_path, data_distribution
from ibrepro.cli import app
from ibrepro.errors import UserError
from ibrepro.ib.selfconsistency import self_consistency, symbols_to_encoder
from ibrepro.report.render import SC_BETAS, layer_self_consistency, write_report
from ibrepro.train.runfile import open_run, run_config
from ibrepro.train.loop import train_experiment

VERDICT_WORDS = (claims.SUPPORTED, claims.NOT_SUPPORTED, claims.NOT_APPLICABLE)


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


def verdict_rows(text: str) -> dict[str, str]:
    """Claim -> verdict cell of each Markdown claims row ('| i. ... | verdict |')."""
    rows = {}
    for line in text.splitlines():
        match = re.match(r"\| (i|ii|iii|iv|v)\. .*\| ([^|]+) \|$", line)
        if match:
            rows.setdefault(match.group(1), match.group(2).strip())
    return rows


def cell_section(text: str, name: str) -> str:
    return text.split(f"## Cell {name}\n", 1)[1].split("\n## ", 1)[0]


def test_each_cell_has_every_claim_a_verdict_and_its_figures(experiment, report):
    directory, _ = experiment
    text = (report / "report.md").read_text()
    for name, n_layers in (("hidden-6", 2), ("hidden-6x4", 3)):
        section = cell_section(text, name)
        rows = verdict_rows(section)
        assert sorted(rows) == ["i", "ii", "iii", "iv", "v"]
        assert all(row.startswith(VERDICT_WORDS) for row in rows.values()), rows
        assert rows["iv"].startswith(claims.NOT_APPLICABLE) and "depth section" in rows["iv"]
        assert rows["v"].startswith(claims.NOT_APPLICABLE) and "0.85" in rows["v"]  # not small data
        assert "group `ib-bound`" in section
        images = re.findall(r"!\[[^]]*\]\(([^)]+\.png)\)", section)
        assert any("infoplane" in i for i in images) and any("overfit" in i for i in images)
        assert all(name in i for i in images)
        # the per-layer final I(X;T) is the estimates file's, seed mean of the last epoch
        with h5py.File(estimates_path(directory / f"{name}.h5"), "r") as f:
            ixt = f["binning_n30_lo-1_hi1/ixt"][()]
        for k in range(n_layers):
            assert f"{ixt[:, -1, k].mean():.3f} ± {ixt[:, -1, k].std():.3f}" in section
    images = re.findall(r"!\[[^]]*\]\(([^)]+\.png)\)", text)
    assert all((report / image).is_file() for image in images)
    html = (report / "report.html").read_text()
    assert html.count("<img ") == len(images) and "</html>" in html


def test_experiment_report_judges_depth(report):
    text = (report / "report.md").read_text()
    assert "## Claim iv: depth" in text
    assert re.search(r"Verdict: (supported|not supported|not applicable)", text)
    table = re.search(r"\| cell \| claim i \| claim ii \| claim iii \| claim iv \| claim v \|\n\|.*\|\n"
                      r"((?:\|.*\|\n)+)", text)
    body = [line.split(" | ") for line in table.group(1).strip().splitlines()]
    assert sorted(cells[0].strip("| ") for cells in body) == ["hidden-6", "hidden-6x4"]
    assert all(word.strip("| ") in VERDICT_WORDS for cells in body for word in cells[1:])


def test_cell_without_estimates_says_what_is_missing(experiment):
    _, raw = experiment
    cell = raw / "hidden-6x4.h5"
    text = write_report(cell).markdown.read_text()
    rows = verdict_rows(text)
    for claim in ("i", "ii", "iii", "v"):
        assert rows[claim].startswith(claims.NOT_APPLICABLE)
        assert f"run `ibrepro analyze {cell}`" in rows[claim]
    assert f"ibrepro bound {cell}" in text
    assert "drift→diffusion" in text
    assert not estimates_path(cell).exists()  # the report writes no estimates


def test_self_consistency_merge_is_exact(experiment):
    """The merged small encoder gives what the full (N, |T|) encoder gives."""
    directory, _ = experiment
    cell = directory / "hidden-6x4.h5"
    with open_run(cell) as run:
        config = run_config(run)
        y = run["data/y"][()]
        acts = [run[f"activations/{k}"][:, -1] for k in range(3)]
    beta, residual, note = layer_self_consistency(cell, config)
    assert note == "" and beta.shape == residual.shape == (2, 3)
    p_x, p_y_given_x = data_distribution(config, y)
    edges = np.linspace(-1, 1, 30)
    for k in range(3):
        encoder = symbols_to_encoder(np.digitize(acts[k][1], edges))
        want = self_consistency(p_x, p_y_given_x, encoder, SC_BETAS)
        assert (beta[1, k], residual[1, k]) == pytest.approx(want, abs=1e-9)


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
                 ["report", str(estimates_path(directory / "hidden-6.h5"))]):
        result = runner.invoke(app, args)
        assert result.exit_code != 0 and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1 and "error" in result.output


def test_default_estimate_falls_back_to_per_layer_binning(experiment, tmp_path):
    """A cell analysed only with binning-layer (the MNIST recipe) is judged on that group."""
    _, raw = experiment
    cell = tmp_path / "hidden-6.h5"
    shutil.copy(raw / "hidden-6.h5", cell)
    analyze_path(cell, ["binning-layer"], progress=False)
    text = write_report(cell).markdown.read_text()
    assert "Estimates: group `binning-layer_n30_layer`" in text
    assert not verdict_rows(text)["i"].startswith(claims.NOT_APPLICABLE)
