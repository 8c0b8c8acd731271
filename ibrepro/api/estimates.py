"""`ibrepro.open_estimates`: an estimates file (`<cell>.mi.h5`) as xarray Datasets by group."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ibrepro.api.inputs import InvalidInput, user_errors

BOUND_GROUP = "ib-bound"


@user_errors
def open_estimates(path: str | Path) -> dict:
    """Read every estimate group of a cell, and its IB bound, as `xarray.Dataset`s.

    Args:
        path: The estimates file (`<cell>.mi.h5`) or the run file beside it (`<cell>.h5`).

    Returns:
        {group name: Dataset}. Estimate groups hold `ixt` and `ity` in bits (and any further
        per-layer results, e.g. noisy's `ixt_se`) with dims (seed, epoch, layer): coordinates
        the run's seed ids, the logged epoch numbers and layer positions; the group's settings
        and provenance are its attrs (`estimator`, `n_bins`, `labels`, `source`, ...). The
        group "ib-bound", when computed (`ibrepro.stages.bound`), holds the IB curve `ixt`,
        `ity` along dim `point`, ordered by I(X;T).

    Raises:
        ValueError: for a missing or unreadable file.

    References:
        DESIGN.md section 7, "Estimates file"; Tishby, Pereira & Bialek (1999) for the bound.

    Example:
        >>> import ibrepro, numpy as np, tempfile
        >>> path = f"{tempfile.mkdtemp()}/own.h5"
        >>> acts = [np.tanh(np.random.default_rng(0).normal(size=(2, 3, 16, 4))).astype(np.float32)]
        >>> _ = ibrepro.write_run(path, x=np.eye(16), y=np.arange(16) % 2, activations=acts, epochs=[0, 5, 9])
        >>> _ = ibrepro.stages.analyze(path)
        >>> groups = ibrepro.open_estimates(path)
        >>> list(groups)
        ['binning_n30_lo-1_hi1']
        >>> groups["binning_n30_lo-1_hi1"].ixt.dims
        ('seed', 'epoch', 'layer')
    """
    import xarray as xr

    from ibrepro.analysis.estimatesfile import read_estimates
    from ibrepro.layout import estimates_path, is_run_file

    path = Path(path)
    target = estimates_path(path) if is_run_file(path) else path
    if not target.is_file():
        hint = f"; run ibrepro.stages.analyze({str(path)!r}) first" if is_run_file(path) else ""
        raise InvalidInput(f"path: no estimates file at {target}{hint}")
    estimates, curve, _ = read_estimates(target)
    groups = {}
    for est in estimates:
        n_seeds, n_epochs, n_layers = est.ixt.shape
        seeds = est.seeds if est.seeds is not None else np.arange(n_seeds)
        data = {name: (("seed", "epoch", "layer"), values)
                for name, values in {"ixt": est.ixt, "ity": est.ity, **est.extras}.items()}
        groups[est.group] = xr.Dataset(data, coords={"seed": seeds, "epoch": est.epochs,
                                                     "layer": np.arange(n_layers)},
                                       attrs={"group": est.group, **est.attrs})
    if curve is not None:
        groups[BOUND_GROUP] = xr.Dataset({"ixt": ("point", curve.ixt), "ity": ("point", curve.ity)},
                                         attrs={"group": BOUND_GROUP, "estimator": BOUND_GROUP})
    return groups
