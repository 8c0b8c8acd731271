"""HDF5 dimension scales (netCDF-4 conventions), so that xarray opens our files without ibrepro.

A group's (seed, epoch[, layer]) arrays get coordinate variables named `seed`, `epoch` and
`layer` (datasets marked as dimension scales and attached to each axis), which is what
`xarray.open_dataset(path, group=..., engine="h5netcdf")` and `xarray.open_datatree` read
as named dimensions with coordinates. A 1-D group such as the IB curve gets a `point` axis.
"""

from __future__ import annotations

import h5py
import numpy as np

# attributes HDF5's dimension-scale API keeps; copied between files they point nowhere
SCALE_LINKS = ("DIMENSION_LIST", "REFERENCE_LIST")


def _scale(group: h5py.Group, name: str, values: np.ndarray) -> h5py.Dataset:
    """The coordinate variable `name` of `group` (made when absent), as a dimension scale."""
    if name not in group:
        group.create_dataset(name, data=np.asarray(values))
    scale = group[name]
    if not scale.is_scale:
        scale.make_scale(name)
    return scale


def attach(dataset: h5py.Dataset, scales: tuple[h5py.Dataset, ...]) -> None:
    """Attach one scale per axis (the dataset's shape must match the scales' lengths)."""
    for axis, scale in enumerate(scales):
        dataset.dims[axis].attach_scale(scale)


def label_seed_epoch_layer(group: h5py.Group, seeds: np.ndarray, epochs: np.ndarray,
                           n_layers: int | None = None) -> None:
    """Name the axes of every (S, E) or (S, E, L) dataset of `group` seed, epoch[, layer];
    a dataset named `seeds` or `epochs` gets the seed or epoch axis."""
    shape3 = (len(seeds), len(epochs), n_layers)
    datasets = [(name, d) for name, d in group.items() if isinstance(d, h5py.Dataset)
                and name not in ("seed", "epoch", "layer")]
    seed = _scale(group, "seed", seeds)
    epoch = _scale(group, "epoch", epochs)
    layer = _scale(group, "layer", np.arange(n_layers)) if n_layers is not None else None
    for name, data in datasets:
        if data.shape == shape3[:2]:
            attach(data, (seed, epoch))
        elif layer is not None and data.shape == shape3:
            attach(data, (seed, epoch, layer))
        elif name == "epochs" and data.shape == (len(epochs),):
            attach(data, (epoch,))
        elif name == "seeds" and data.shape == (len(seeds),):
            attach(data, (seed,))


def label_estimate_group(group: h5py.Group) -> None:
    """Dimension scales for one estimates group: (seed, epoch, layer) on `ixt`, `ity` and the
    datasets of the same shape; a 1-D curve (the IB bound: `beta`, `ixt`, `ity`) gets `point`.
    Groups of other layouts are left as they are."""
    if "ixt" not in group:
        return
    shape = group["ixt"].shape
    if len(shape) == 3 and "epochs" in group and group["epochs"].shape == (shape[1],):
        seeds = group["seeds"][()] if "seeds" in group and group["seeds"].shape == (shape[0],) else np.arange(shape[0])
        label_seed_epoch_layer(group, seeds, group["epochs"][()], shape[2])
    elif len(shape) == 1:
        point = _scale(group, "point", np.arange(shape[0]))
        for data in group.values():
            if isinstance(data, h5py.Dataset) and data.shape == shape and data.name != point.name:
                attach(data, (point,))


def drop_scale_links(group: h5py.Group) -> None:
    """Remove the dimension-scale links of a group copied from another file (HDF5 copies them
    as references into the old file), so that they can be attached again."""
    for data in group.values():
        if isinstance(data, h5py.Dataset):
            for name in SCALE_LINKS:
                if name in data.attrs:
                    del data.attrs[name]
