"""`ibrepro analyze`: run files in, estimates files out (DESIGN §7 contracts)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from ibrepro.analysis import analyze as an
from ibrepro.analysis import estimators, stream
from ibrepro.analysis.estimators import Block, Labels
from ibrepro.errors import UserError

S, E, N, WIDTHS = 3, 5, 64, (4, 3, 2)


def write_run(path: Path, *, status: str = "complete", dataset: str = "tishby12", n_complete: int = E,
              chunks: bool = True, seed: int = 0) -> dict[str, np.ndarray]:
    """A small run file following DESIGN §7; returns the activations per layer."""
    rng = np.random.default_rng(seed)
    acts = {}
    with h5py.File(path, "w") as f:
        f.attrs.update(schema="ibrepro-run/1", status=status, ibrepro_version="test",
                       config=json.dumps({"name": "t", "dataset": dataset}))
        f["epochs"] = np.array([0, 1, 3, 7, 15])[:n_complete]
        f["data/x"] = rng.integers(0, 2, (N, 12)).astype(np.float32)
        f["data/y"] = rng.integers(0, 2, N).astype(np.int32)
        f["data/train_mask"] = rng.random((S, N)) < 0.8
        for k, w in enumerate(WIDTHS):
            a = np.tanh(rng.normal(size=(S, E, N, w)) * np.linspace(0.2, 3, E)[None, :, None, None])
            acts[k] = a.astype(np.float32)
            f.create_dataset(f"activations/{k}", data=acts[k], chunks=(1, 1, N, w) if chunks else None)
    return acts


def expected(acts: dict[str, np.ndarray], y: np.ndarray, name: str, **params) -> dict[str, tuple]:
    """Estimates computed directly through the estimator interface, one layer-epoch at a time."""
    est = estimators.get(name)
    values = est.resolve(params, {"dataset": "tishby12"})
    labels = Labels.from_labels(y)
    out = {v: (np.zeros((S, E, len(WIDTHS))), np.zeros((S, E, len(WIDTHS)))) for v in est.variants}
    for k, a in acts.items():
        for s in range(S):
            for e in range(E):
                for v, (ixt, ity) in est.estimate(Block(a[s, e][None], np.array([s])), labels, values, None).items():
                    out[v][0][s, e, k], out[v][1][s, e, k] = ixt[0], ity[0]
    return out


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def cell(tmp_path):
    path = tmp_path / "cell.h5"
    acts = write_run(path)
    with h5py.File(path, "r") as f:
        y = f["data/y"][()]
    return path, acts, y


def test_default_binning_group(cell):
    path, acts, y = cell
    before = digest(path)
    written = an.analyze_path(path, progress=False)
    assert written == [path.with_name("cell.mi.h5")]
    assert digest(path) == before
    with h5py.File(written[0], "r") as f:
        assert list(f) == ["binning_n30_lo-1_hi1"]
        g = f["binning_n30_lo-1_hi1"]
        assert g["ixt"].shape == g["ity"].shape == (S, E, len(WIDTHS))
        assert g["ixt"].dtype == np.float64
        np.testing.assert_array_equal(g["epochs"][()], [0, 1, 3, 7, 15])
        np.testing.assert_array_equal(g["seeds"][()], np.arange(S))
        assert g.attrs["estimator"] == "binning"
        assert (g.attrs["n_bins"], g.attrs["lo"], g.attrs["hi"]) == (30, -1.0, 1.0)
        ixt, ity = expected(acts, y, "binning")[""]
        np.testing.assert_allclose(g["ixt"][()], ixt, atol=1e-12)
        np.testing.assert_allclose(g["ity"][()], ity, atol=1e-12)


def test_several_estimators_and_kde_bounds(cell):
    path, acts, y = cell
    an.analyze_path(path, ["binning", "kde", "adaptive"], {"n_bins": "10"}, progress=False)
    with h5py.File(path.with_name("cell.mi.h5"), "r") as f:
        assert set(f) == {"binning_n10_lo-1_hi1", "adaptive_n10", "kde_var0.001_upper", "kde_var0.001_lower"}
        for bound in ("upper", "lower"):
            g = f[f"kde_var0.001_{bound}"]
            assert g.attrs["bound"] == bound and g.attrs["estimator"] == "kde" and g.attrs["sigma2"] == 1e-3
        want = expected(acts, y, "kde", sigma2=1e-3)
        np.testing.assert_allclose(f["kde_var0.001_lower"]["ity"][()], want["lower"][1], rtol=1e-9, atol=1e-12)
        want = expected(acts, y, "adaptive", n_bins=10)[""]
        np.testing.assert_allclose(f["adaptive_n10"]["ixt"][()], want[0], atol=1e-12)


def test_kde_variance_default_from_dataset(tmp_path):
    path = tmp_path / "m.h5"
    write_run(path, dataset="mnist")
    an.analyze_path(path, ["kde"], progress=False)
    with h5py.File(tmp_path / "m.mi.h5", "r") as f:
        assert set(f) == {"kde_var0.1_upper", "kde_var0.1_lower"}


def test_small_blocks_give_the_same_numbers(cell, monkeypatch):
    path, acts, y = cell
    an.analyze_path(path, ["binning-layer"], progress=False)
    with h5py.File(path.with_name("cell.mi.h5"), "r") as f:
        whole = f["binning-layer_n30_layer_intervals"]["ixt"][()]
    monkeypatch.setattr(stream, "BLOCK_BYTES", N * 4 * 4 * 3)  # a few seed-epochs per block, ragged ends
    an.analyze_path(path, ["binning-layer"], progress=False, workers=2)
    with h5py.File(path.with_name("cell.mi.h5"), "r") as f:
        np.testing.assert_array_equal(f["binning-layer_n30_layer_intervals"]["ixt"][()], whole)
    np.testing.assert_allclose(whole, expected(acts, y, "binning-layer")[""][0], atol=1e-12)


def test_contiguous_and_chunked_layouts_agree(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    write_run(a, chunks=True)
    write_run(b, chunks=False)
    an.analyze_path(tmp_path, progress=False)
    with h5py.File(tmp_path / "a.mi.h5", "r") as fa, h5py.File(tmp_path / "b.mi.h5", "r") as fb:
        np.testing.assert_array_equal(fa["binning_n30_lo-1_hi1/ity"][()], fb["binning_n30_lo-1_hi1/ity"][()])


def test_global_range(cell):
    path, acts, y = cell
    an.analyze_path(path, ["binning-layer"], {"range": "global", "n_bins": "12"}, progress=False)
    with h5py.File(path.with_name("cell.mi.h5"), "r") as f:
        got = f["binning-layer_n12_global_intervals"]["ixt"][()]
    labels = Labels.from_labels(y)
    from ibrepro.analysis.estimators.binning import layer_information

    for s in range(S):
        lo = min(float(a[s].min()) for a in acts.values())
        hi = max(float(a[s].max()) for a in acts.values())
        for k, a in acts.items():
            ixt, _ = layer_information(a[s], np.full(E, lo), np.full(E, hi), 12, "intervals", labels)
            np.testing.assert_allclose(got[s, :, k], ixt, atol=1e-12)


def test_rerun_replaces_only_its_own_group(cell):
    path, acts, y = cell
    mi = path.with_name("cell.mi.h5")
    an.analyze_path(path, ["binning", "adaptive"], progress=False)
    with h5py.File(mi, "a") as f:
        f["binning_n30_lo-1_hi1/ixt"][...] = -1.0
        kept = f["adaptive_n30/ity"][()]
        f["adaptive_n30"].attrs["marker"] = "untouched"
    an.analyze_path(path, ["binning"], progress=False)
    with h5py.File(mi, "r") as f:
        assert set(f) == {"binning_n30_lo-1_hi1", "adaptive_n30"}
        np.testing.assert_allclose(f["binning_n30_lo-1_hi1/ixt"][()], expected(acts, y, "binning")[""][0], atol=1e-12)
        assert f["adaptive_n30"].attrs["marker"] == "untouched"
        np.testing.assert_array_equal(f["adaptive_n30/ity"][()], kept)


def test_running_cell_uses_complete_snapshots(tmp_path):
    path = tmp_path / "live.h5"
    acts = write_run(path, status="running", n_complete=3)
    notes = []
    an.analyze_path(path, progress=False, say=notes.append)
    assert len(notes) == 1 and "still training" in notes[0] and "3 complete" in notes[0]
    with h5py.File(tmp_path / "live.mi.h5", "r") as f:
        g = f["binning_n30_lo-1_hi1"]
        assert g["ixt"].shape == (S, 3, len(WIDTHS))
        assert g.attrs["run_status"] == "running"
        with h5py.File(path, "r") as run:
            y = run["data/y"][()]
        np.testing.assert_allclose(g["ixt"][()], expected(acts, y, "binning")[""][0][:, :3], atol=1e-12)


def test_thinning_keeps_the_last_logged_epoch(cell):
    path, acts, y = cell
    an.analyze_path(path, ["binning"], {"every": "3"}, progress=False)
    with h5py.File(path.with_name("cell.mi.h5"), "r") as f:
        g = f["binning_n30_lo-1_hi1_every3"]
        np.testing.assert_array_equal(g["epochs"][()], [0, 7, 15])  # positions 0, 3 and the last, 4
        full = expected(acts, y, "binning")[""][0]
        np.testing.assert_allclose(g["ixt"][()], full[:, [0, 3, 4]], atol=1e-12)


def test_thinning_by_epoch_and_seed(cell):
    path, acts, y = cell
    an.analyze_path(path, ["binning"], {"every": "2", "seeds": "0,2"}, progress=False)
    with h5py.File(path.with_name("cell.mi.h5"), "r") as f:
        g = f["binning_n30_lo-1_hi1_every2_seeds0,2"]
        np.testing.assert_array_equal(g["epochs"][()], [0, 3, 15])
        np.testing.assert_array_equal(g["seeds"][()], [0, 2])
        assert (g.attrs["every"], g.attrs["seeds"]) == (2, "0,2")
        full = expected(acts, y, "binning")[""][1]
        np.testing.assert_allclose(g["ity"][()], full[[0, 2]][:, [0, 2, 4]], atol=1e-12)


def test_directory_analyses_every_cell_and_skips_estimates(tmp_path):
    write_run(tmp_path / "a.h5", seed=1)
    write_run(tmp_path / "b.h5", seed=2)
    first = an.analyze_path(tmp_path, progress=True)
    assert sorted(p.name for p in first) == ["a.mi.h5", "b.mi.h5"]
    again = an.analyze_path(tmp_path, progress=False)  # the .mi.h5 files are not cells
    assert sorted(p.name for p in again) == ["a.mi.h5", "b.mi.h5"]


# ---- bad input -------------------------------------------------------------------------------


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def foreign(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros(3)


@pytest.mark.parametrize("names,settings,damage", [
    (["binnig"], {}, None),
    (["binning"], {"sigma2": "0.1"}, None),
    (["binning"], {"n_bins": "many"}, None),
    (["binning"], {"n_bins": "1"}, None),
    (["binning"], {"lo": "1.5"}, None),
    (["kde"], {"sigma2": "-0.1"}, None),
    (["binning"], {"every": "0"}, None),
    (["binning"], {"seeds": "0-9"}, None),
    (["binning"], {"seeds": "two"}, None),
    (["binning"], {}, truncate),
    (["binning"], {}, foreign),
])
def test_bad_input_is_a_user_error_and_leaves_estimates_alone(cell, names, settings, damage):
    path, _, _ = cell
    mi = path.with_name("cell.mi.h5")
    an.analyze_path(path, ["adaptive"], progress=False)
    before = digest(mi)
    if damage:
        damage(path)
    with pytest.raises(UserError):
        an.analyze_path(path, names, settings, progress=False)
    assert digest(mi) == before


def test_missing_paths_are_user_errors(tmp_path):
    with pytest.raises(UserError):
        an.analyze_path(tmp_path / "nope.h5", progress=False)
    with pytest.raises(UserError):
        an.analyze_path(tmp_path, progress=False)  # a directory without cells


def test_unreadable_estimates_file_is_not_overwritten(cell):
    path, _, _ = cell
    mi = path.with_name("cell.mi.h5")
    mi.write_bytes(b"not hdf5")
    with pytest.raises(UserError):
        an.analyze_path(path, progress=False)
    assert mi.read_bytes() == b"not hdf5"


# ---- command line ----------------------------------------------------------------------------


def test_cli_analyze(cell):
    from typer.testing import CliRunner

    from ibrepro.cli import app

    path, _, _ = cell
    result = CliRunner().invoke(app, ["analyze", str(path), "--estimator", "binning", "--estimator", "kde",
                                      "--set", "n_bins=20", "--set", "sigma2=0.01", "--no-progress"])
    assert result.exit_code == 0, result.output
    with h5py.File(path.with_name("cell.mi.h5"), "r") as f:
        assert set(f) == {"binning_n20_lo-1_hi1", "kde_var0.01_upper", "kde_var0.01_lower"}


@pytest.mark.parametrize("args", [["--estimator", "nope"], ["--set", "n_bins"], ["--set", "n_bins=x"]])
def test_cli_analyze_errors_are_one_line(cell, args):
    from typer.testing import CliRunner

    from ibrepro.cli import app

    path, _, _ = cell
    result = CliRunner().invoke(app, ["analyze", str(path), "--no-progress", *args])
    assert result.exit_code != 0
    assert "error:" in result.output and "Traceback" not in result.output
    assert not path.with_name("cell.mi.h5").exists()
