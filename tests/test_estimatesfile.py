"""The estimates file: atomic replacement at every write point, locking, reading back."""

from __future__ import annotations

import errno
import multiprocessing

import h5py
import numpy as np
import pytest

from ibrepro.analysis import estimatesfile as ef
from ibrepro.errors import UserError


def group(value: float, estimator: str = "binning") -> tuple[dict, dict]:
    data = np.full((2, 3, 4), value)
    return {"ixt": data, "ity": data / 2, "epochs": np.arange(3), "seeds": np.arange(2)}, {"estimator": estimator}


def contents(path) -> dict:
    """{group/dataset: array} and {group: attrs} of a file, for exact comparison."""
    out = {}
    with h5py.File(path, "r") as f:
        for name, g in f.items():
            out[name] = ({k: g[k][()] for k in g}, dict(g.attrs))
    return out


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name][1] == b[name][1]
        assert a[name][0].keys() == b[name][0].keys()
        for key in a[name][0]:
            np.testing.assert_array_equal(a[name][0][key], b[name][0][key])


def test_write_read_round_trip_keeps_other_groups(tmp_path):
    path = tmp_path / "c.mi.h5"
    ef.write_groups(path, {"binning_a": group(1.0), "adaptive_b": group(2.0, "adaptive")})
    ef.write_groups(path, {"binning_a": group(3.0)})
    estimates, bound, notes = ef.read_estimates(path)
    by_name = {e.group: e for e in estimates}
    assert set(by_name) == {"binning_a", "adaptive_b"} and bound is None and notes == ()
    np.testing.assert_array_equal(by_name["binning_a"].ixt, np.full((2, 3, 4), 3.0))
    np.testing.assert_array_equal(by_name["adaptive_b"].ity, np.full((2, 3, 4), 1.0))
    np.testing.assert_array_equal(by_name["adaptive_b"].seeds, np.arange(2))
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("fail_at", range(1, 9))
def test_a_failure_at_any_dataset_write_leaves_the_old_file(tmp_path, monkeypatch, fail_at):
    path = tmp_path / "c.mi.h5"
    ef.write_groups(path, {"binning_a": group(1.0), "kde_b": group(2.0, "kde")})
    before = contents(path)
    calls = {"n": 0}
    real = h5py.Group.create_dataset

    def full_disk(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", full_disk)
    with pytest.raises(UserError, match="No space left on device.*unchanged"):
        ef.write_groups(path, {"binning_a": group(5.0), "adaptive_c": group(6.0, "adaptive")})
    assert calls["n"] == fail_at
    assert_same(contents(path), before)
    assert not list(tmp_path.glob("*.tmp"))
    monkeypatch.undo()
    ef.write_groups(path, {"adaptive_c": group(6.0, "adaptive")})  # the next write recovers
    assert set(contents(path)) == {"binning_a", "kde_b", "adaptive_c"}


def test_a_failed_rename_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "c.mi.h5"
    ef.write_groups(path, {"binning_a": group(1.0)})
    before = contents(path)
    monkeypatch.setattr(ef.os, "replace", lambda *a: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(UserError, match="I/O error"):
        ef.write_groups(path, {"binning_a": group(9.0)})
    assert_same(contents(path), before)


def test_a_killed_writers_leftovers_are_cleaned(tmp_path):
    path = tmp_path / "c.mi.h5"
    ef.write_groups(path, {"binning_a": group(1.0)})
    (tmp_path / "c.mi.h5.tmp").write_bytes(b"half a file")  # a writer killed mid-write
    ef.write_groups(path, {"binning_z": group(2.0)})
    assert set(contents(path)) == {"binning_a", "binning_z"}
    assert not (tmp_path / "c.mi.h5.tmp").exists()


def _write_many(path, prefix: str) -> None:
    for k in range(6):
        ef.write_groups(path, {f"{prefix}{k}": group(float(k))})


def test_two_writers_lose_no_group(tmp_path):
    path = tmp_path / "c.mi.h5"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_many, args=(path, p)) for p in ("a", "b")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert [w.exitcode for w in workers] == [0, 0]
    assert set(contents(path)) == {f"{p}{k}" for p in "ab" for k in range(6)}


def test_unreadable_file_is_reported_before_any_work(tmp_path):
    path = tmp_path / "c.mi.h5"
    path.write_bytes(b"not hdf5")
    with pytest.raises(UserError, match="not a readable HDF5 file"):
        ef.check_writable(path)
    with pytest.raises(UserError, match="not a readable HDF5 file"):
        ef.write_groups(path, {"binning_a": group(1.0)})
    assert path.read_bytes() == b"not hdf5"


def test_a_parameter_is_read_under_its_former_name(tmp_path):
    path = tmp_path / "c.mi.h5"
    datasets, attrs = group(1.0, "noisy")
    older = {**attrs, "beta": 0.1, "n_samples": 64, "n_passes": 4, "rng": 3}  # noisy's seed was `rng`
    ef.write_groups(path, {"noisy_old": (datasets, older), "noisy_new": (datasets, {**older, "seed": 5})})
    params = {e.group: e.params for e in ef.read_estimates(path)[0]}
    assert params["noisy_old"] == {"beta": 0.1, "n_samples": 64, "n_passes": 4, "seed": 3}
    assert params["noisy_new"]["seed"] == 5  # the current name wins
