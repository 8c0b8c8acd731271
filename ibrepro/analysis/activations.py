"""The one activation reader: every consumer gets a run file's layer outputs here.

`activation_layers(run)` returns, per layer in order, an array-like of shape (S, E, N, w):
the stored `activations/<k>` dataset when the file has one, else a `RecomputedLayer` that
recomputes the layer from `params/` with the training code's model, compiled, batched over
seed-epochs in fixed-size batches (one program per layer, bounded memory), on JAX's default
device. Recomputed values equal the stored ones bit for bit on the same machine. Both kinds
support `layer[seeds, epochs]` with ints or slices on the first two axes, and h5py's
`read_direct(out, source_sel, dest_sel)`.
"""

from __future__ import annotations

import functools
from pathlib import Path

import h5py
import jax
import numpy as np

from ibrepro.errors import UserError
from ibrepro.train.runfile import check_structure, layer_widths, n_classes, run_config

BATCH_ELEMENTS = 1 << 22  # floats of one compiled batch's output (16 MB as float32)


@functools.lru_cache(maxsize=32)
def _forward(model, layer: int, dtype: str, batch: int):
    """Compiled: params batched (B, ...) and inputs (N, d) -> layer outputs (B, N, w)."""

    def one(params, x):
        layers, _ = model.apply({"params": params}, x)
        return layers[layer].astype(dtype)

    return jax.jit(jax.vmap(one, in_axes=(0, None)))


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
        self.n_layers = len(run["params"])
        self.modules = [str(run[f"params/{k}"].attrs["module"]) for k in range(self.n_layers)]

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

    def _params(self, s0: int, s1: int, e0: int, e1: int) -> dict:
        """Every layer's parameters of seeds s0:s1 x epochs e0:e1, flattened to (B, ...)."""
        tree = {}
        for k, module in enumerate(self.modules):
            group = self.run[f"params/{k}"]
            tree[module] = {leaf: np.asarray(group[leaf][s0:s1, e0:e1], np.float32).reshape(
                (s1 - s0) * (e1 - e0), *group[leaf].shape[2:]) for leaf in group}
        return tree

    def _compute(self, s0: int, s1: int, e0: int, e1: int) -> np.ndarray:
        n, width = self.shape[2:]
        out = np.empty(((s1 - s0) * (e1 - e0), n, width), self.dtype)
        if out.shape[0] == 0:
            return out.reshape(s1 - s0, e1 - e0, n, width)
        params = self._params(s0, s1, e0, e1)
        batch = max(1, min(out.shape[0], BATCH_ELEMENTS // (n * max(self.widest()))))
        forward = _forward(self.model, self.layer, self.dtype.name, batch)
        for lo in range(0, out.shape[0], batch):
            hi = min(lo + batch, out.shape[0])
            take = np.minimum(np.arange(lo, lo + batch), hi - 1)  # pad the last batch by repeating
            part = jax.tree.map(lambda a: a[take], params)
            out[lo:hi] = np.asarray(forward(part, self.x_eval))[: hi - lo]
        return out.reshape(s1 - s0, e1 - e0, n, width)

    def widest(self) -> list[int]:
        """Widths of the layers computed on the way (they bound a batch's memory too)."""
        return [self.run[f"params/{k}/bias"].shape[-1] for k in range(self.layer + 1)]


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
    from ibrepro.train.loop import make_model

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
