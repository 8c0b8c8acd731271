"""`ibrepro.write_run`: a run file from activations recorded on any network ("bring your own").

The file follows the run-file schema (DESIGN.md section 7) with activations stored and no
parameters, so `ibrepro analyze | bound | claims | plot | report` read it like a trained cell.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from ibrepro.api.inputs import InvalidInput, float_array, label_vector, user_errors

DATASET = "custom"


@user_errors
def write_run(path: str | Path, x: ArrayLike, y: ArrayLike,
              activations: Sequence[ArrayLike] | Mapping[str, ArrayLike], epochs: ArrayLike, *,
              metrics: Mapping[str, ArrayLike] | None = None, gradients: Mapping[str, ArrayLike] | None = None,
              train_mask: ArrayLike | None = None, train_fraction: float = 1.0, name: str | None = None,
              overwrite: bool = False) -> Path:
    """Write a run file from your own network's activations, for the whole ibrepro pipeline.

    Args:
        path: Where to write (`<cell>.h5`; the estimates go to `<cell>.mi.h5` beside it).
        x: The N inputs the activations were recorded on, (N, ...) (flattened to (N, d)).
        y: Their class labels, integers (N,).
        activations: Per layer in order, the last the softmax output, each (S, E, N, width)
            over S seeds (repeats) and E logged epochs, or (E, N, width) for one seed; a dict
            {layer name: array} names the layers.
        epochs: (E,) the epoch numbers at which they were recorded, increasing (0 = before training).
        metrics: Optional {"train_loss" | "test_loss" | "train_acc" | "test_acc": (S, E) or (E,)}.
        gradients: Optional {"mean_norm" | "std_norm" | "weight_norm": (S, E, L hidden + output)}
            (DESIGN.md section 5), for the gradient figure and claim ii.
        train_mask: Optional (N,) or (S, N) bool: which of the N inputs were training examples.
        train_fraction: The share of the data set trained on (claim v is about small ones).
        name: The cell's name (default: the file name without .h5).
        overwrite: Replace an existing file.

    Returns:
        The path written.

    Raises:
        ValueError: naming the argument whose shape or values do not fit.

    References:
        DESIGN.md section 7 ("Run file"); docs/bring-your-own-network.md.

    Example:
        >>> import ibrepro, numpy as np, tempfile
        >>> rng = np.random.default_rng(0)
        >>> acts = {"fc1": rng.normal(size=(4, 32, 5)), "out": rng.random((4, 32, 2))}
        >>> path = ibrepro.write_run(f"{tempfile.mkdtemp()}/mine.h5", x=rng.normal(size=(32, 3)),
        ...                          y=np.arange(32) % 2, activations=acts, epochs=[0, 1, 3, 7])
        >>> ibrepro.open_run(path).layers
        ('fc1', 'out')
    """
    import h5py

    import ibrepro
    from ibrepro.dimscales import label_seed_epoch_layer
    from ibrepro.layout import is_run_file
    from ibrepro.train.runfile import GRADIENT_NAMES, METRIC_NAMES, SCHEMA

    path = Path(path)
    if not is_run_file(path):
        raise InvalidInput(f"path must name a run file <cell>.h5 (not .mi.h5), got {path}")
    if path.exists() and not overwrite:
        raise InvalidInput(f"path: {path} exists; pass overwrite=True to replace it")
    inputs = float_array("x", x, 1)
    inputs = inputs.reshape(inputs.shape[0], -1)
    n = inputs.shape[0]
    labels = label_vector("y", y, n, "x")
    schedule = _epochs(epochs)
    names, layers = _layers(activations, len(schedule), n)
    n_seeds = layers[0].shape[0]
    mask = _train_mask(train_mask, n_seeds, n)
    metric_arrays = _named("metrics", metrics, METRIC_NAMES, (n_seeds, len(schedule)))
    gradient_arrays = _named("gradients", gradients, GRADIENT_NAMES, (n_seeds, len(schedule), len(layers)))
    if not 0 < train_fraction <= 1:
        raise InvalidInput(f"train_fraction must lie in (0, 1], got {train_fraction!r}")
    widths = [a.shape[-1] for a in layers]
    config = {"name": name or path.name[: -len(".h5")], "dataset": DATASET,
              "model": {"hidden": widths[:-1], "classes": widths[-1], "activation": "external"},
              "train": {"seeds": n_seeds, "epochs": int(schedule[-1]), "train_fraction": float(train_fraction)},
              "log": {"snapshots": len(schedule), "activations": True}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".creating")
    with h5py.File(tmp, "w") as h:
        h.attrs.update(schema=SCHEMA, config=json.dumps(config), ibrepro_version=ibrepro.__version__,
                       run_id=uuid.uuid4().hex, device_count=1, written_by="ibrepro.write_run")
        h.attrs.create("status", "complete", dtype=h5py.string_dtype("ascii", 16))
        h.create_dataset("epochs", data=schedule)
        h.create_dataset("complete_snapshots", data=np.int64(len(schedule)))
        h.create_dataset("data/x", data=inputs, compression="gzip", shuffle=True)
        h.create_dataset("data/y", data=labels.astype(np.int32))
        h.create_dataset("data/train_mask", data=mask)
        for k, (layer_name, acts) in enumerate(zip(names, layers)):
            stored = h.create_dataset(f"activations/{k}", data=acts, chunks=(1, 1, n, acts.shape[-1]))
            stored.attrs["name"] = layer_name
        for group, arrays in (("metrics", metric_arrays), ("gradients", gradient_arrays)):
            for key, values in arrays.items():
                h.create_dataset(f"{group}/{key}", data=values)
            if arrays:
                label_seed_epoch_layer(h[group], np.arange(n_seeds), schedule, len(layers))
    os.replace(tmp, path)
    return path


def _epochs(epochs: ArrayLike) -> np.ndarray:
    schedule = np.asarray(epochs)
    if schedule.ndim != 1 or schedule.size == 0 or schedule.dtype.kind not in "iuf":
        raise InvalidInput(f"epochs must be a non-empty 1-D array of epoch numbers, got shape {schedule.shape}")
    if np.any(schedule != np.round(schedule)) or np.any(schedule < 0) or np.any(np.diff(schedule) <= 0):
        raise InvalidInput("epochs must be increasing non-negative integers")
    return schedule.astype(np.int64)


def _layers(activations, n_epochs: int, n: int) -> tuple[list[str], list[np.ndarray]]:
    """Layer names and (S, E, N, w) float32 arrays, checked against the epochs and inputs."""
    if isinstance(activations, Mapping):
        names, arrays = [str(k) for k in activations], list(activations.values())
    else:
        arrays = list(activations)
        names = [f"layer{k}" for k in range(len(arrays) - 1)] + ["output"]
    if not arrays:
        raise InvalidInput("activations must hold at least one layer (the last is the output)")
    layers = []
    for name, values in zip(names, arrays):
        acts = float_array(f"activations[{name!r}]", values, 3)
        acts = acts[None] if acts.ndim == 3 else acts
        if acts.ndim != 4 or acts.shape[1:3] != (n_epochs, n) or acts.shape[0] != (layers or [acts])[0].shape[0]:
            raise InvalidInput(f"activations[{name!r}] must be (seeds, {n_epochs} epochs, {n} inputs, width) "
                               f"or ({n_epochs}, {n}, width), with the same seeds in every layer; "
                               f"got shape {np.shape(values)}")
        layers.append(acts.astype(np.float32))
    return names, layers


def _train_mask(mask, n_seeds: int, n: int) -> np.ndarray:
    if mask is None:
        return np.zeros((n_seeds, n), bool)
    mask = np.asarray(mask, bool)
    if mask.shape == (n,):
        mask = np.broadcast_to(mask, (n_seeds, n))
    if mask.shape != (n_seeds, n):
        raise InvalidInput(f"train_mask must be ({n},) or ({n_seeds}, {n}), got {mask.shape}")
    return np.ascontiguousarray(mask)


def _named(argument: str, arrays: Mapping[str, ArrayLike] | None, known: tuple[str, ...],
           shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Optional per-(seed, epoch[, layer]) arrays by name, broadcast over a missing seed axis."""
    out = {}
    for key, values in (arrays or {}).items():
        if key not in known:
            raise InvalidInput(f"{argument} takes {', '.join(known)}; got {key!r}")
        array = np.asarray(values, np.float32)
        if array.shape == shape[1:]:
            array = np.broadcast_to(array, shape)
        if array.shape != shape:
            raise InvalidInput(f"{argument}[{key!r}] must have shape {shape} (seeds, epochs"
                               f"{', layers' if len(shape) == 3 else ''}), got {np.shape(values)}")
        out[key] = np.ascontiguousarray(array)
    return out
