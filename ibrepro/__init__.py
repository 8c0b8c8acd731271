"""ibrepro: the information plane of deep networks, reproduced.

The public API is the flat namespace below (everything else is private); the pipeline's
stages are functions of `ibrepro.stages` (`train`, `analyze`, `bound`, `claims`, `plot`,
`report`: the ones the CLI calls; `ibrepro.train` and the like name subpackages). Importing
`ibrepro` is light: each name loads its module (and JAX, matplotlib, xarray) on first use.

Examples:
    >>> import ibrepro
    >>> sorted(ibrepro.__all__)[:3]
    ['Information', 'Run', 'Verdicts']
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.2.0"  # the one definition: pyproject.toml reads it

_EXPORTS = {
    "open_run": "ibrepro.api.runview",
    "Run": "ibrepro.api.runview",
    "open_estimates": "ibrepro.api.estimates",
    "estimate": "ibrepro.api.mi",
    "Information": "ibrepro.api.mi",
    "judge": "ibrepro.api.verdicts",
    "Verdicts": "ibrepro.api.verdicts",
    "plot_plane": "ibrepro.api.verdicts",
    "write_run": "ibrepro.api.ownrun",
    "stages": "ibrepro.api.stages",  # the module: stages.train, .analyze, .bound, .claims, .plot, .report
}
__all__ = ["Information", "Run", "Verdicts", "__version__", "estimate", "judge", "open_estimates", "open_run",
           "plot_plane", "stages", "write_run"]

if TYPE_CHECKING:  # for type checkers and documentation tools; at run time names load lazily
    from ibrepro.api import stages
    from ibrepro.api.estimates import open_estimates
    from ibrepro.api.mi import Information, estimate
    from ibrepro.api.ownrun import write_run
    from ibrepro.api.runview import Run, open_run
    from ibrepro.api.verdicts import Verdicts, judge, plot_plane


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ibrepro' has no attribute {name!r}")
    value = importlib.import_module(module)
    value = value if name == "stages" else getattr(value, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
