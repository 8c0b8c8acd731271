"""The one activation reader: every consumer gets a run file's layer outputs here.

`activation_layers(run)` returns, per layer in order, an array-like of shape (S, E, N, w):
the stored `activations/<k>` dataset when the file has one, else a `RecomputedLayer` that
recomputes the layer from `params/` on JAX's default device with the function training
records activations with (`ibrepro.train.recorded.layer_outputs`: one compiled program, each
seed-epoch computed alone). Recomputed values equal the stored ones bit for bit on the same
machine, and a seed-epoch's values do not depend on the block it is recomputed in. Both kinds
support `layer[seeds, epochs]` with ints or slices on the first two axes, and h5py's
`read_direct(out, source_sel, dest_sel)`.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ibrepro.errors import UserError
from ibrepro.train.recorded import layer_outputs
from ibrepro.train.runfile import check_structure, layer_widths, n_classes, run_config


def _as_range(index, size: int) -> tuple[range, bool]:
    """A slice or int on one axis as a range, and whether the axis is kept."""
    if isinstance(index, (int, np.integer)):
        i = int(index) + (size if index < 0 else 0)
        if not 0 <= i < size:
            raise IndexError(f"index {index} out of range for size {size}")
        return range(i, i + 1), False
    if isinstance(index, slice):
        r = range(*index.indices(size))
        if r.step != 1:
            raise IndexError("recomputed activations take slices with step 1")
        return r, True
    raise IndexError(f"unsupported index {index!r} for recomputed activations")


class RecomputedLayer:
    """Layer `layer` of a run file without stored activations, recomputed on demand."""

    chunks = None
    ndim = 4

    def __init__(self, run: h5py.File, layer: int, model, x_eval: np.ndarray, dtype: str, width: int):
        self.run, self.layer, self.model, self.x_eval = run, layer, model, x_eval
        self.dtype = np.dtype(dtype)
        kernel = run["params/0/kernel"]
        self.shape = (kernel.shape[0], kernel.shape[1], x_eval.shape[0], width)

    def __getitem__(self, index) -> np.ndarray:
        index = index if isinstance(index, tuple) else (index,)
        if any(i != slice(None) for i in index[2:]):
            raise IndexError("recomputed activations take indices on the seed and epoch axes only")
        (seeds, keep_s), (epochs, keep_e) = (_as_range(i, n) for i, n in zip(
            (*index, slice(None))[:2], self.shape[:2]))
        out = self._compute(seeds.start, seeds.stop, epochs.start, epochs.stop)
        return out[(slice(None) if keep_s else 0, slice(None) if keep_e else 0)]

    def read_direct(self, out: np.ndarray, source_sel=None, dest_sel=None) -> None:
        """h5py's Dataset.read_direct for a selection on the seed and epoch axes."""
        out[dest_sel if dest_sel is not None else ()] = self[source_sel if source_sel is not None else np.s_[:, :]]

    def _compute(self, s0: int, s1: int, e0: int, e1: int) -> np.ndarray:
        return recompute(self.run, self.model, self.x_eval, self.dtype, (self.layer,), s0, s1, e0, e1)[0]


def recompute(run: h5py.File, model, x_eval: np.ndarray, dtype: np.dtype, layers: tuple[int, ...],
              s0: int, s1: int, e0: int, e1: int, on_device: bool = False) -> list:
    """Outputs (s1-s0, e1-e0, N, w) of `layers` for seeds s0:s1 x epochs e0:e1, from params/.

    Computed by `ibrepro.train.recorded.layer_outputs`, the function training records with:
    the same compiled program, each seed-epoch alone, so a seed-epoch's values do not depend
    on the range asked for. With `on_device` the outputs stay where they were computed (jax
    arrays), else numpy arrays.
    """
    modules = [str(run[f"params/{k}"].attrs["module"]) for k in range(len(run["params"]))]
    count = (s1 - s0) * (e1 - e0)
    tree = {}
    for k, module in enumerate(modules):
        group = run[f"params/{k}"]
        tree[module] = {leaf: np.asarray(group[leaf][s0:s1, e0:e1], np.float32).reshape(count, *group[leaf].shape[2:])
                        for leaf in group}
    outputs = layer_outputs(model, tree, x_eval, np.dtype(dtype).name, on_device)
    return [outputs[k].reshape(s1 - s0, e1 - e0, *outputs[k].shape[1:]) for k in layers]


def activation_layers(run: h5py.File) -> list:
    """Per layer, in order: the stored activations or their recomputation (see module doc).

    UserError (naming the dataset) when the file's structure does not match its config.
    Kept on the handle: later calls with the same open file cost nothing.
    """
    cached = getattr(run, "_ibrepro_activation_layers", None)
    if cached is None:
        cached = _layers(run)
        run._ibrepro_activation_layers = cached
    return cached


def _layers(run: h5py.File) -> list:
    path = Path(run.filename)
    check_structure(run, path)
    config = run_config(run)
    if "activations" in run:
        return [run[f"activations/{k}"] for k in range(len(run["activations"]))]
    from ibrepro.train.model import make_model

    try:
        classes = n_classes(config)
        widths = layer_widths(config, classes)
        model = make_model(config, classes)
        x_eval = np.asarray(run["data/x"][()], np.float32)
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: cannot rebuild its network to recompute activations ({exc})") from None
    dtype = config.get("log", {}).get("dtype", "float32")
    return [RecomputedLayer(run, k, model, x_eval, dtype if dtype in ("float32", "float16") else "float32", w)
            for k, w in enumerate(widths)]


def block_layers(run: h5py.File, seeds: slice, epochs: slice, on_device: bool = False) -> list:
    """Every layer's outputs (S', E', N, w) on seeds x epochs (slices with step 1) at once:
    one read per stored layer, or one forward pass for all layers (a consumer that goes
    block by block rather than layer by layer recomputes each layer once). With `on_device`,
    recomputed outputs stay on JAX's device (`recompute`)."""
    layers = activation_layers(run)
    if not isinstance(layers[0], RecomputedLayer):
        return [layer[seeds, epochs] for layer in layers]
    first = layers[0]
    (s0, s1, _), (e0, e1, _) = seeds.indices(first.shape[0]), epochs.indices(first.shape[1])
    return recompute(run, first.model, first.x_eval, first.dtype, tuple(range(len(layers))), s0, s1, e0, e1,
                     on_device)
