"""The estimates file and the run file's metrics/gradients open in xarray through h5netcdf
alone (netCDF-4 dimension scales), with the same numbers as the API; older files still read."""

from __future__ import annotations

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest
from helpers import tiny_config

import ibrepro
from ibrepro.analysis.estimatesfile import write_groups

# runs in a fresh interpreter: xarray + h5netcdf only, ibrepro never imported
READER = """
import json, sys
import xarray as xr
run, estimates = sys.argv[1], sys.argv[2]
tree = xr.open_datatree(estimates, engine="h5netcdf")
out = {"groups": {}}
for node in tree.children.values():
    ds = node.to_dataset()
    out["groups"][node.name] = {
        "dims": {k: list(v.dims) for k, v in ds.data_vars.items()},
        "coords": {k: ds[k].values.tolist() for k in ds.coords},
        "ixt": ds["ixt"].values.tolist(), "attrs": {k: str(v) for k, v in ds.attrs.items()}}
for group in ("metrics", "gradients"):
    ds = xr.open_dataset(run, group=group, engine="h5netcdf")
    out[group] = {"dims": {k: list(v.dims) for k, v in ds.data_vars.items()},
                  "epoch": ds["epoch"].values.tolist(), "seed": ds["seed"].values.tolist(),
                  "values": {k: v.values.tolist() for k, v in ds.data_vars.items()}}
assert not any(m.split(".")[0] == "ibrepro" for m in sys.modules)
print(json.dumps(out))
"""


def read_without_ibrepro(run, estimates) -> dict:
    done = subprocess.run([sys.executable, "-c", READER, str(run), str(estimates)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    [(path, _)] = ibrepro.stages.train(tiny_config("train.seeds=2"), tmp_path_factory.mktemp("runs"))
    ibrepro.stages.analyze(path, ["binning", "kde"])
    ibrepro.stages.bound(path)
    return path


def test_xarray_alone_reads_what_the_api_reads(analysed):
    found = read_without_ibrepro(analysed, analysed.with_name("cell.mi.h5"))
    api = ibrepro.open_estimates(analysed)
    assert set(found["groups"]) == set(api)
    for name, ds in api.items():
        group = found["groups"][name]
        assert not any(d.startswith("phony") for dims in group["dims"].values() for d in dims)
        if name == "ib-bound":
            assert group["dims"]["ixt"] == ["point"]
            assert sorted(group["ixt"]) == ds.ixt.values.tolist()
            continue
        assert group["dims"]["ixt"] == ["seed", "epoch", "layer"]
        assert group["coords"]["epoch"] == ds.epoch.values.tolist()
        assert group["coords"]["seed"] == ds.seed.values.tolist() == [0, 1]
        assert group["coords"]["layer"] == [0, 1, 2]
        np.testing.assert_array_equal(np.array(group["ixt"]), ds.ixt.values)
        assert group["attrs"]["estimator"] == ds.attrs["estimator"]
    run = ibrepro.open_run(analysed)
    for group, view in (("metrics", run.metrics), ("gradients", run.gradients)):
        assert found[group]["epoch"] == run.epochs.tolist() and found[group]["seed"] == [0, 1]
        for name, values in found[group]["values"].items():
            assert found[group]["dims"][name] == list(view[name].dims)
            np.testing.assert_array_equal(np.array(values, np.float32), view[name].values)


def test_older_files_without_scales_are_read_and_labelled_when_rewritten(tmp_path):
    path = tmp_path / "old.mi.h5"
    ixt = np.arange(24, dtype=float).reshape(2, 4, 3)
    with h5py.File(path, "w") as f:  # as versions before dimension scales wrote it
        g = f.create_group("binning_n30_lo-1_hi1")
        g["ixt"], g["ity"], g["epochs"], g["seeds"] = ixt, ixt / 10, np.array([0, 1, 3, 7]), np.array([0, 1])
        g.attrs.update(estimator="binning", n_bins=30, lo=-1.0, hi=1.0)
    old = ibrepro.open_estimates(path)["binning_n30_lo-1_hi1"]
    np.testing.assert_array_equal(old.ixt.values, ixt)
    assert old.epoch.values.tolist() == [0, 1, 3, 7]
    write_groups(path, {"kde_var0.1_upper": ({"ixt": ixt + 1, "ity": ixt, "epochs": np.array([0, 1, 3, 7]),
                                              "seeds": np.array([0, 1])}, {"estimator": "kde", "sigma2": 0.1})})
    import xarray as xr

    tree = xr.open_datatree(path, engine="h5netcdf")
    for name, expected in (("binning_n30_lo-1_hi1", ixt), ("kde_var0.1_upper", ixt + 1)):
        ds = tree[name].to_dataset()
        assert ds.ixt.dims == ("seed", "epoch", "layer")
        np.testing.assert_array_equal(ds.ixt.values, expected)
        assert ds.epoch.values.tolist() == [0, 1, 3, 7]
