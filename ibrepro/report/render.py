"""`ibrepro report`: the paper's five claims (DESIGN §1) as Markdown and HTML, rendered from
the claims files (`ibrepro claims`, run here first for any cell whose `<cell>.claims.json` is
missing, older than its run or estimates file, or judged with other rules) and the figures
(`ibrepro.report.plots`). The report, its figures and their index, and claims files brought up
to date are the only files written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import ibrepro
from ibrepro.analysis.cell import find_cells
from ibrepro.analysis.results import load_cell
from ibrepro.claims import claimsfile
from ibrepro.claims.judge import judge_path, sources
from ibrepro.claims.rules import Rules
from ibrepro.durable import write_file
from ibrepro.errors import UserError
from ibrepro.layout import claims_path
from ibrepro.report import sections
from ibrepro.report.document import Heading, Image, Para, to_html, to_markdown
from ibrepro.report.literature import literature_section
from ibrepro.report.plots import draw_figures, style


@dataclass
class ReportResult:
    """Files `write_report` wrote, and figures it could not draw."""

    markdown: Path
    html: Path
    figures: Path
    skipped: list[str] = field(default_factory=list)
    judged: list[Path] = field(default_factory=list)  # claims files (re)computed on the way


def ensure_claims(path: Path, rules: Rules, run_ids: dict[str, str] | None = None
                  ) -> tuple[list[dict], dict | None, list[Path]]:
    """The claims documents of a cell or experiment (running the claims stage where they are
    stale, or judged on another run than `run_ids` {run file name: run_id} names) and the
    experiment document (None for a single cell); plus the files rewritten."""
    runs = find_cells(path)
    stale = any(claimsfile.is_stale(claims_path(run), sources(run), rules.as_dict())
                or _other_run(claims_path(run), (run_ids or {}).get(run.name)) for run in runs)
    experiment_file = path / claimsfile.EXPERIMENT_NAME if path.is_dir() else None
    if experiment_file is not None and not experiment_file.exists():
        stale = True
    judged = judge_path(path, rules=rules) if stale else []
    documents = [claimsfile.read(claims_path(run)) for run in runs]
    experiment = claimsfile.read(experiment_file) if experiment_file is not None else None
    return documents, experiment, judged


def write_report(path: str | Path, estimator: str | None = None, out: str | Path | None = None,
                 rules: Rules = Rules()) -> ReportResult:
    """Write report.md and report.html for a cell file or an experiment directory.

    OUT defaults to the cell's directory or the experiment directory; figures go to
    OUT/figures. ESTIMATOR keeps only the estimate groups of that estimator (or group name).
    UserError for a missing path, a directory without run files, a foreign file, or an
    ESTIMATOR computed for no cell.
    """
    path = Path(path)
    find_cells(path)  # bad paths fail before anything is written
    out_dir = Path(out) if out is not None else (path if path.is_dir() else path.parent)
    try:
        if out_dir.exists() and not out_dir.is_dir():
            raise UserError(f"output path {out_dir} exists and is not a directory")
    except OSError as exc:
        raise UserError(f"cannot use output path {out_dir}: {exc.strerror}") from None
    cells = [load_cell(run) for run in find_cells(path)]  # refuses estimates of another run
    documents, experiment, judged = ensure_claims(path, rules, {c.path.name: c.run.run_id for c in cells})
    if estimator is not None:
        documents, experiment = _only(documents, experiment, estimator)
    figures_dir = out_dir / "figures"
    plotted = draw_figures(path, cells, out=figures_dir, estimator=estimator, rules=rules)
    captions = dict(plotted.captions)
    figures_rel = os.path.relpath(figures_dir, out_dir)
    doc: list = [Heading(1, f"ibrepro report: {path}"), Para(
        f"Claims of Shwartz-Ziv & Tishby (2017), judged on {len(documents)} cell(s) by ibrepro "
        f"{ibrepro.__version__}, from the claims files (`<cell>.claims.json`"
        + (", `claims.json`" if experiment else "") + ") and the estimate groups of each "
        "`<cell>.mi.h5`. Every number is a value over all seeds with its 95 % bootstrap "
        "interval over seeds in brackets; a verdict needs the whole interval on one side of "
        "its threshold, otherwise it is inconclusive.")]
    doc += sections.verdict_matrix(documents, experiment)
    doc += sections.depth_section(experiment)
    doc += literature_section(str(cells[0].config.get("name", "")), cells)
    by_cell = _assign_figures(captions, [d["cell"] for d in documents])
    for document in documents:
        figures = [(png, captions[png]) for png in by_cell.get(document["cell"], [])]
        doc += sections.cell_section(document, figures, figures_rel)
    if by_cell.get(""):
        doc.append(Heading(2, "Figures across cells"))
        doc += [Image(f"{figures_rel}/{png}", captions[png]) for png in by_cell[""]]
    if plotted.skipped:
        doc.append(Heading(2, "Figures not drawn"))
        doc += [Para(f"- {line}") for line in plotted.skipped]
    doc += sections.settings_section(documents)
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    write_file(md_path, to_markdown(doc).encode())
    write_file(html_path, to_html(doc, title=f"ibrepro report: {path.name}").encode())
    return ReportResult(md_path, html_path, figures_dir, list(plotted.skipped), judged)


def _other_run(claims_file: Path, run_id: str | None) -> bool:
    """Whether an existing claims file names a run_id other than RUN_ID (when both are known)."""
    if not run_id or not claims_file.exists():
        return False
    return claimsfile.read(claims_file).get("run_id") not in (None, run_id)


def _only(documents: list[dict], experiment: dict | None, name: str) -> tuple[list[dict], dict | None]:
    """Keep the estimate groups of estimator (or group) NAME; UserError when no cell has one."""
    def keep(groups: dict) -> dict:
        return {k: g for k, g in groups.items() if name in (g["estimator"], k, g.get("group"))}

    kept = [{**d, "groups": keep(d["groups"])} for d in documents]
    if not any(d["groups"] for d in kept):
        have = sorted({k for d in documents for k in d["groups"]})
        raise UserError(f"no estimates for {name!r} in any cell (groups present: "
                        f"{', '.join(have) or 'none'}); run `ibrepro analyze` first")
    if experiment is not None:
        experiment = {**experiment, "groups": keep(experiment["groups"])}
    return kept, experiment


def _assign_figures(captions: dict[str, str], names: list[str]) -> dict[str, list[str]]:
    """PNG names per cell (longest cell-name prefix wins); '' for figures across cells."""
    prefixes = sorted(((style.safe_name(n) + "_", n) for n in names), key=lambda p: -len(p[0]))
    out: dict[str, list[str]] = {}
    for png in sorted(captions):
        owner = next((n for prefix, n in prefixes if png.startswith(prefix)), "")
        out.setdefault(owner, []).append(png)
    return out
