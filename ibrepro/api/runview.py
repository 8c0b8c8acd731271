"""`ibrepro.open_run`: a read-only view of a run file (`<cell>.h5`) as xarray and numpy.

Only complete snapshots are shown, so a cell that is still training can be opened at any time;
each property reads the file when asked (and closes it again).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ibrepro.api.inputs import InvalidInput, user_errors


@dataclass(frozen=True)
class Run:
    """One trained cell. Open it with `ibrepro.open_run(path)`.

    Attributes:
        path: The run file.
        config: The resolved experiment config it was trained with (dict).
        status: "running" or "complete".
        epochs: (E,) logged epoch numbers of the complete snapshots.
        seeds: (S,) seed ids (positions in the file).
        layers: Layer names, in order; the last is the softmax output.
        widths: Units per layer.
        x: (N, d) the recorded (evaluation) inputs.
        y: (N,) their labels.
    """

    path: Path
    config: dict
    status: str
    epochs: np.ndarray
    seeds: np.ndarray
    layers: tuple[str, ...]
    widths: tuple[int, ...]
    x: np.ndarray
    y: np.ndarray

    @property
    def metrics(self):
        """Train/test loss and accuracy, an `xarray.Dataset` with dims (seed, epoch)."""
        from ibrepro.train.runfile import METRIC_NAMES

        return self._dataset("metrics", METRIC_NAMES, ("seed", "epoch"))

    @property
    def gradients(self):
        """Gradient mean and std norms and weight norms (DESIGN.md section 5), an
        `xarray.Dataset` with dims (seed, epoch, layer)."""
        from ibrepro.train.runfile import GRADIENT_NAMES

        return self._dataset("gradients", GRADIENT_NAMES, ("seed", "epoch", "layer"))

    @property
    @user_errors
    def params(self) -> dict[str, dict[str, np.ndarray]]:
        """{layer name: {"kernel": (S, E, in, out), "bias": (S, E, out)}} as trained (float32);
        empty for files without `params/` (version 1, or written by `ibrepro.write_run`)."""
        from ibrepro.train.runfile import open_run as open_file

        with open_file(self.path) as run:
            group = run.get("params", {})
            n = len(self.epochs)
            return {self.layers[int(k)]: {leaf: np.asarray(group[k][leaf][:, :n]) for leaf in group[k]}
                    for k in sorted(group, key=int)}

    @user_errors
    def activations(self, layer: int | str, epoch: int | None = None, seed: int | None = None):
        """One layer's outputs on the recorded inputs, stored or recomputed from `params/`.

        Args:
            layer: Position (0 = first hidden layer, -1 = output) or name (`layers`).
            epoch: A logged epoch number (see `epochs`); None: every complete one.
            seed: A seed id; None: every seed.

        Returns:
            An `xarray.DataArray` with dims (seed, epoch, input, unit), the axes given as
            numbers dropped; `.values` is the numpy array that `ibrepro.estimate` takes.
        """
        import xarray as xr

        from ibrepro.analysis.activations import activation_layers
        from ibrepro.train.runfile import open_run as open_file

        k = self._layer_index(layer)
        e = self._epoch_position(epoch)
        s = self._seed_position(seed)
        with open_file(self.path) as run:
            values = np.asarray(activation_layers(run)[k][s, e])
        dims = [d for d, index in (("seed", s), ("epoch", e)) if isinstance(index, slice)] + ["input", "unit"]
        coords = {"seed": self.seeds[s], "epoch": self.epochs[e]}
        return xr.DataArray(values, dims=dims, coords=coords, name=self.layers[k],
                            attrs={"layer": k, "width": self.widths[k]})

    @user_errors
    def _dataset(self, group: str, names: tuple[str, ...], dims: tuple[str, ...]):
        import xarray as xr

        from ibrepro.train.runfile import open_run as open_file

        shape = (len(self.seeds), len(self.epochs), len(self.layers))[: len(dims)]
        data = {}
        with open_file(self.path) as run:
            found = run.get(group, {})
            for name in (n for n in names if n in found):
                values = np.asarray(found[name][:, : shape[1]])
                try:  # files written by hand may hold one row for every seed
                    data[name] = (dims, np.broadcast_to(values, shape))
                except ValueError:
                    raise InvalidInput(f"{self.path}: {group}/{name} has shape {values.shape}, "
                                       f"not {shape} ({', '.join(dims)})") from None
        return xr.Dataset(data, coords=self._coords(dims), attrs={"source": self.path.name, "status": self.status})

    def _coords(self, dims: tuple[str, ...]) -> dict:
        """Seed ids and epoch numbers; with a layer axis, its positions, names and widths."""
        coords = {"seed": self.seeds, "epoch": self.epochs}
        if "layer" in dims:
            coords |= {"layer": np.arange(len(self.layers)), "layer_name": ("layer", list(self.layers)),
                       "width": ("layer", list(self.widths))}
        return coords

    def _layer_index(self, layer: int | str) -> int:
        if isinstance(layer, str):
            if layer not in self.layers:
                raise InvalidInput(f"layer must be one of {', '.join(self.layers)} (or a position), got {layer!r}")
            return self.layers.index(layer)
        if not -len(self.layers) <= int(layer) < len(self.layers):
            raise InvalidInput(f"layer must be a position in 0..{len(self.layers) - 1} or a name, got {layer!r}")
        return int(layer) % len(self.layers)

    def _epoch_position(self, epoch: int | None) -> int | slice:
        if epoch is None:
            return slice(0, len(self.epochs))
        where = np.flatnonzero(self.epochs == epoch)
        if where.size == 0:
            shown = ", ".join(str(int(e)) for e in self.epochs[:8]) + (", ..." if len(self.epochs) > 8 else "")
            raise InvalidInput(f"epoch must be a logged epoch of {self.path.name} ({shown}), got {epoch!r}")
        return int(where[0])

    def _seed_position(self, seed: int | None) -> int | slice:
        if seed is None:
            return slice(0, len(self.seeds))
        if seed not in self.seeds:
            raise InvalidInput(f"seed must be one of 0..{len(self.seeds) - 1}, got {seed!r}")
        return int(seed)


@user_errors
def open_run(path: str | Path) -> Run:
    """Open a run file (`<cell>.h5`) read-only; its complete snapshots only.

    Args:
        path: The run file of one cell (written by `ibrepro train` or `ibrepro.write_run`).

    Returns:
        A `Run`: `.config`, `.epochs`, `.metrics` and `.gradients` (xarray, dims seed, epoch,
        layer), `.activations(layer, epoch=, seed=)`, `.params`.

    Raises:
        ValueError: for a missing, foreign or malformed file.

    References:
        DESIGN.md section 7, "Run file".

    Example:
        >>> import ibrepro, numpy as np, tempfile
        >>> path = f"{tempfile.mkdtemp()}/own.h5"
        >>> acts = [np.zeros((2, 5, 8, 3), np.float32), np.full((2, 5, 8, 2), 0.5, np.float32)]
        >>> _ = ibrepro.write_run(path, x=np.eye(8), y=np.arange(8) % 2, activations=acts, epochs=[0, 1, 2, 4, 8])
        >>> run = ibrepro.open_run(path)
        >>> run.epochs.tolist(), run.layers, run.widths
        ([0, 1, 2, 4, 8], ('layer0', 'output'), (3, 2))
        >>> run.activations("output", epoch=4, seed=1).shape
        (8, 2)
    """
    from ibrepro.analysis.cell import read_cell

    path = Path(path)
    cell = read_cell(path)
    names = _layer_names(path, len(cell.layers))
    return Run(path=path, config=cell.config, status=cell.status, epochs=cell.epochs,
               seeds=np.arange(cell.n_seeds), layers=names, widths=tuple(int(s[3]) for s in cell.shapes),
               x=cell.x, y=cell.y)


def _layer_names(path: Path, count: int) -> tuple[str, ...]:
    """Each layer's `name` attr (files from `write_run`), else its flax module name, else
    layer<k>; the last layer is the output."""
    from ibrepro.train.runfile import open_run as open_file

    with open_file(path) as run:
        names = []
        for k in range(count):
            stored = run.get(f"activations/{k}")
            module = run.get(f"params/{k}")
            name = (stored.attrs.get("name") if stored is not None else None) or (
                module.attrs.get("module") if module is not None else None) or f"layer{k}"
            names.append(name.decode() if isinstance(name, bytes) else str(name))
    if count and names[-1] == f"layer{count - 1}":
        names[-1] = "output"
    return tuple(names)
