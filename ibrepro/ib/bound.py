"""`ibrepro bound`: the Information Bottleneck curve of a cell's data, stored beside its estimates.

The curve depends only on the data distribution p(x, y) the information plane is measured on
(X uniform over the evaluation inputs, DESIGN §4):

- tishby12: p(x) uniform over the 4096 inputs, p(y=1|x) = `tishby12_p_y1(gamma, theta)` from
  the cell's `data.gamma` and `data.theta`. With gamma = 0 the labels are deterministic and the
  curve is exactly I(T;Y) = min(I(X;T), H(Y)); gamma > 0 gives a curve strictly below that.
- mnist / fashion-mnist: each evaluation row is one input with weight 1/N and its label
  `data/y` (a deterministic function of the row), so the curve is min(I(X;T), H(Y)) with H(Y)
  the entropy of the evaluation labels. It is computed through the same `ib.ib_curve`.

The curve is written as group `ib-bound` of `<cell>.mi.h5` (attr `estimator` = "ib-bound";
tishby12: `gamma`, `theta` say where p(y|x) came from; no `labels` attr, a name kept for
estimate groups):
datasets `beta`, `ixt`, `ity` (bits), one point per beta, sorted by I(X;T). It runs on from the
end point of `ib_curve` flat to I(X;T) = H(X) = log2 N (beta = inf there too: any refinement of
the sufficient statistic keeps I(T;Y) = I(X;Y)), so a plot spans the whole I(X;T) axis. The run
file is only read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import ibrepro
from ibrepro.analysis.cell import find_cells
from ibrepro.analysis.estimatesfile import check_writable, write_groups
from ibrepro.data.labels import label_distribution
from ibrepro.data.tishby12 import N_PATTERNS
from ibrepro.errors import UserError
from ibrepro.ib.curve import IBCurve, ib_curve
from ibrepro.layout import estimates_path
from ibrepro.train.runfile import open_run, run_config, run_labels

GROUP = "ib-bound"
ESTIMATOR = "ib-bound"


def data_distribution(config: dict, y_eval: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(p_x (N,), p_y_given_x (N, |Y|)) of a cell's evaluation inputs (see the module doc).

    tishby12 needs the 4096 canonical rows (N must be 4096); image datasets use the
    evaluation labels as deterministic p(y|x).
    """
    y_eval = np.asarray(y_eval)
    n = y_eval.shape[0]
    if config["dataset"] == "tishby12" and n != N_PATTERNS:
        raise UserError(f"a tishby12 run file must hold all {N_PATTERNS} inputs, this one has {n}")
    p_y_given_x = label_distribution(config, y_eval)
    return np.full(n, 1.0 / n), p_y_given_x


def bound_curve(p_x: np.ndarray, p_y_given_x: np.ndarray) -> IBCurve:
    """The IB curve of p(x) p(y|x), continued flat at I(X;Y) up to I(X;T) = H(X)."""
    curve = ib_curve(p_x[:, None] * p_y_given_x)
    nonzero = p_x[p_x > 0]
    h_x = float(-(nonzero * np.log2(nonzero)).sum())
    if h_x <= curve.ixt[-1]:
        return curve
    return IBCurve(beta=np.append(curve.beta, np.inf), ixt=np.append(curve.ixt, h_x),
                   ity=np.append(curve.ity, curve.ity[-1]))


def bound_group(run_path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Datasets and attrs of the `ib-bound` group for one run file."""
    with open_run(run_path) as run:
        config = run_config(run)
        y_eval = run_labels(run)
        run_id = run.attrs.get("run_id", "")
    p_x, p_y_given_x = data_distribution(config, y_eval)
    curve = bound_curve(p_x, p_y_given_x)
    attrs = {"estimator": ESTIMATOR, "dataset": config["dataset"], "n_inputs": p_x.size,
             "i_xy": float(curve.ity[-1]), "source": run_path.name,
             "run_id": run_id.decode() if isinstance(run_id, bytes) else str(run_id),
             "ibrepro_version": ibrepro.__version__}
    if config["dataset"] == "tishby12":  # p(y|x): the rule (gamma = 0) or sigmoid(gamma (f(x) - theta))
        attrs.update(gamma=config["data"]["gamma"], theta=config["data"]["theta"])
    return {"beta": curve.beta, "ixt": curve.ixt, "ity": curve.ity}, attrs


def bound_path(path: str | Path) -> list[Path]:
    """Write the IB curve into the estimates file of a cell, or of every cell of a directory.

    Replaces an earlier `ib-bound` group; other groups and the run file are left alone.
    Returns the estimates files written. Raises UserError before writing anything when a
    run file is missing or unusable, or an estimates file is unreadable.
    """
    cells = find_cells(Path(path))
    planned = []
    for run_path in cells:
        mi_path = estimates_path(run_path)
        check_writable(mi_path)
        planned.append((mi_path, bound_group(run_path)))
    for mi_path, (datasets, attrs) in planned:
        write_groups(mi_path, {GROUP: (datasets, attrs)})
    return [mi_path for mi_path, _ in planned]
