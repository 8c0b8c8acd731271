"""A run file as every later stage sees it: the one `RunRecord` type, and finding cells.

A cell is one setting of an experiment, trained into `<cell>.h5`. Later stages write files
beside it: `<cell>.mi.h5` (estimates) and `<cell>.claims.json` (claims). `read_cell` reads
and checks, once, what they all need; the file is only read, and closed again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ibrepro.analysis.activations import activation_layers
from ibrepro.errors import UserError
from ibrepro.layout import RUN_SUFFIX, estimates_path, is_run_file
from ibrepro.train.runfile import complete_epochs, hdf5_reason, open_run, run_config, run_labels, run_status


@dataclass(frozen=True)
class RunRecord:
    """What later stages need from one run file (its complete snapshots only).

    A run file that has not logged a snapshot yet has no epochs. Stages that need one check
    for it.
    """

    path: Path
    config: dict
    status: str  # "running" | "complete" | ...
    run_id: str
    epochs: np.ndarray  # (E,) logged epoch numbers of the complete snapshots
    x: np.ndarray  # (N, d) the evaluation inputs
    y: np.ndarray  # (N,) their labels
    layers: tuple[str, ...]  # layer names in layer order (the last is the softmax output)
    shapes: tuple[tuple[int, ...], ...]  # per layer (S, E_stored, N, width)
    chunks: tuple[tuple[int, ...] | None, ...]  # per layer, HDF5 chunk shape of stored activations
    dtype: np.dtype  # of the stored activations
    p_y1: np.ndarray | None = None  # (N,) p(y=1|x) of noisy labels (data/p_y1), when stored

    @property
    def name(self) -> str:
        return self.path.name[: -len(RUN_SUFFIX)]

    @property
    def n_seeds(self) -> int:
        return self.shapes[0][0]

    @property
    def n_inputs(self) -> int:
        return int(self.y.shape[0])

    @property
    def estimates_path(self) -> Path:
        return estimates_path(self.path)



def find_cells(path: Path) -> list[Path]:
    """The run file itself, or every run file in a directory (UserError if there is none)."""
    path = Path(path)
    if path.is_dir():
        cells = sorted(p for p in path.glob("*" + RUN_SUFFIX) if is_run_file(p))
        if not cells:
            raise UserError(f"no run files (*.h5) in {path}")
        return cells
    if not path.exists():
        raise UserError(f"no such file or directory: {path}")
    if not is_run_file(path):
        raise UserError(f"{path} is not a run file (expected <cell>.h5)")
    return [path]


def read_cell(path: Path) -> RunRecord:
    """Read and check a run file's metadata (UserError when it is unusable)."""
    with open_run(path) as run:
        try:
            config = run_config(run)
            status = run_status(run)
            run_id = run.attrs.get("run_id", "")
            run_id = run_id.decode() if isinstance(run_id, bytes) else str(run_id)
            n_epochs = complete_epochs(run)
            epochs = np.asarray(run["epochs"][:n_epochs])
            x = run["data/x"][()]
            y = run_labels(run)
            p_y1 = run["data/p_y1"][()] if "data/p_y1" in run else None
            layers = _layers(run)
        except (KeyError, OSError, ValueError, TypeError) as exc:
            raise UserError(f"{path} is not a usable run file ({hdf5_reason(exc)}); "
                            "train the cell again") from None
    names = tuple(layers)
    shapes = tuple(shape for shape, _, _ in layers.values())
    bad = [s for s in shapes if len(s) != 4 or s[0] != shapes[0][0] or s[0] < 1 or s[2] != y.shape[0]
           or s[1] < n_epochs]
    if bad or y.ndim != 1 or (p_y1 is not None and p_y1.shape != y.shape):
        raise UserError(f"{path}: layers of shapes {shapes} do not match {y.shape[0]} labels and {n_epochs} epochs")
    _check_epochs(path, epochs)
    if shapes:  # keys a hand-made or damaged config lacks, from the arrays that hold them
        config.setdefault("model", {}).setdefault("hidden", [s[3] for s in shapes[:-1]])
        config.setdefault("train", {}).setdefault("seeds", shapes[0][0])
    dtype = next(iter(layers.values()))[2] if layers else np.dtype(np.float32)
    return RunRecord(path, config, status, run_id, epochs, np.asarray(x), np.asarray(y), names, shapes,
                tuple(chunks for _, chunks, _ in layers.values()),
                dtype if dtype.kind == "f" else np.dtype(np.float64), p_y1)


def _check_epochs(path: Path, epochs: np.ndarray) -> None:
    """UserError naming the file when its logged epochs cannot be right."""
    if epochs.ndim != 1 or epochs.dtype.kind not in "iu" or (epochs.size and epochs[0] < 0) \
            or (np.diff(epochs) <= 0).any():
        raise UserError(f"{path}: its logged epochs are not increasing non-negative integers; "
                        "the file is damaged (train the cell again)")


def _layers(run) -> dict[str, tuple[tuple[int, ...], tuple[int, ...] | None, np.dtype]]:
    """{layer name: (shape (S, E, N, width), chunks, dtype)} in layer order, from the one
    activation reader (stored activations, or their recomputation from `params/`)."""
    return {str(k): (layer.shape, layer.chunks, layer.dtype) for k, layer in enumerate(activation_layers(run))}
