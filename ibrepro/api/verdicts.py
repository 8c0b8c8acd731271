"""`ibrepro.judge` (the paper's claims and verdicts as data) and `ibrepro.plot_plane` (a figure)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ibrepro.api.inputs import InvalidInput, user_errors

CLAIMS = {"i": "compression phase", "ii": "compression starts at the drift-to-diffusion transition",
          "iii": "layers end near the IB bound", "iv": "deeper nets compress sooner",
          "v": "with little data I(T;Y) falls late"}


@dataclass(frozen=True)
class Verdicts:
    """The verdicts on one cell: `document` is the claims file's content (DESIGN.md section 7);
    `table` one row per estimate group and claim."""

    document: dict

    @property
    def table(self):
        """A `pandas.DataFrame`: group, estimator, labels, claim, what it says, verdict, reason."""
        import pandas as pd

        rows = [{"group": name, "estimator": group["estimator"], "labels": group["labels"], "claim": claim,
                 "says": CLAIMS.get(claim, ""), "verdict": result.get("verdict"), "reason": result.get("reason", "")}
                for name, group in self.document["groups"].items() for claim, result in group["claims"].items()]
        return pd.DataFrame(rows, columns=["group", "estimator", "labels", "claim", "says", "verdict", "reason"])


@user_errors
def judge(path: str | Path, estimators: tuple[str, ...] | list[str] = (),
          rules: dict[str, float] | None = None) -> Verdicts:
    """Judge the paper's claims on a cell's estimate groups, without writing a file.

    Args:
        path: A run file whose estimates file exists (`ibrepro.stages.analyze` first).
        estimators: Estimator or group names to judge (default: every group).
        rules: Changed rule thresholds by name (e.g. {"compression_share": 0.6}).

    Returns:
        `Verdicts`: `.table` (pandas) and `.document` (what `ibrepro claims` writes to
        `<cell>.claims.json`). Claim iv needs several cells: `ibrepro.stages.claims(directory)`.

    Raises:
        ValueError: for a missing file or an unknown rule.

    References:
        Shwartz-Ziv & Tishby (2017), arXiv:1703.00810 (claims i-v); Saxe et al. (2018),
        ICLR, on the estimator dependence.

    Example:
        >>> import ibrepro, numpy as np, tempfile
        >>> rng = np.random.default_rng(0)
        >>> acts = [np.tanh(rng.normal(size=(3, 4, 32, 3)) * np.linspace(1, 3, 4)[:, None, None]),
        ...         rng.dirichlet([1, 1], size=(3, 4, 32))]
        >>> path = ibrepro.write_run(f"{tempfile.mkdtemp()}/mine.h5", x=np.eye(32), y=np.arange(32) % 2,
        ...                          activations=acts, epochs=[0, 10, 100, 1000])
        >>> _ = ibrepro.stages.analyze(path)
        >>> table = ibrepro.judge(path).table
        >>> table.claim.tolist()
        ['i', 'ii', 'iii', 'iv', 'v']
        >>> set(table.verdict) <= {"supported", "not supported", "inconclusive", "not applicable", "not measurable"}
        True
    """
    from ibrepro.api.stages import rule_set
    from ibrepro.claims.inputs import load_groups
    from ibrepro.claims.judge import judge_cell

    cell, groups = load_groups(Path(path), tuple(estimators))
    if not groups:
        raise InvalidInput(f"path: {path} has no estimates{' of ' + ', '.join(estimators) if estimators else ''}; "
                           f"run ibrepro.stages.analyze({str(path)!r}) first")
    return Verdicts(judge_cell(cell, groups, rule_set(rules)))


@user_errors
def plot_plane(path: str | Path, estimator: str | None = None, *, per_seed: bool = False,
               save: str | Path | None = None) -> Any:
    """Draw a cell's information plane: I(T;Y) against I(X;T) per layer, coloured by epoch.

    Args:
        path: A run file whose estimates file exists.
        estimator: An estimator or group name (default: the first group in the file).
        per_seed: Draw each seed's trace, not the mean over seeds.
        save: Also write the figure here (format from the suffix: .png, .pdf, .svg).

    Returns:
        A `matplotlib.figure.Figure` (not attached to pyplot; a notebook shows it).

    Raises:
        ValueError: when the run has no estimates (of that estimator).

    References:
        Shwartz-Ziv & Tishby (2017), arXiv:1703.00810, Fig. 3.

    Example:
        >>> import ibrepro, numpy as np, tempfile
        >>> rng = np.random.default_rng(0)
        >>> acts = [np.tanh(rng.normal(size=(2, 3, 32, 3))), rng.dirichlet([1, 1], size=(2, 3, 32))]
        >>> path = ibrepro.write_run(f"{tempfile.mkdtemp()}/mine.h5", x=np.eye(32), y=np.arange(32) % 2,
        ...                          activations=acts, epochs=[0, 1, 2])
        >>> _ = ibrepro.stages.analyze(path)
        >>> fig = ibrepro.plot_plane(path, "binning")
        >>> fig.axes[0].get_xlabel()
        'I(X;T) (bits)'
    """
    from ibrepro.analysis.results import load_cell
    from ibrepro.report.plots.infoplane import infoplane_figure
    from ibrepro.report.plots.style import PNG_DPI

    cell = load_cell(Path(path))
    chosen = [e for e in cell.estimates if estimator is None or estimator in (e.estimator, e.group)]
    if not chosen:
        have = ", ".join(e.group for e in cell.estimates) or "none"
        raise InvalidInput(f"estimator: no estimates {estimator or ''} for {path} (groups: {have}); "
                           f"run ibrepro.stages.analyze first")
    fig = infoplane_figure(cell, chosen[0], per_seed)
    if save is not None:
        fig.savefig(save, dpi=PNG_DPI)  # as `ibrepro plot` writes PNGs (vector formats ignore it)
    return fig
