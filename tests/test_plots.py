"""Figures of `ibrepro plot` on synthetic run and estimates files shaped like real ones."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import h5py
import matplotlib.image
import numpy as np
import pytest
from synthetic_files import cell_config, write_estimates, write_run, write_sweep

from ibrepro.analysis.results import load_cell, select_estimates
from ibrepro.claims import claimsfile
from ibrepro.claims.judge import judge_path
from ibrepro.claims.phases import deep_layers, drift_diffusion_epoch
from ibrepro.claims.rules import Rules
from ibrepro.claims.verdicts import interval_text
from ibrepro.errors import UserError
from ibrepro.layout import claims_path
from ibrepro.report.plots import make_figures, plot_path
from ibrepro.report.plots.curves import layer_curves_figure, learning_figure
from ibrepro.report.plots.gradients import gradients_figure
from ibrepro.report.plots.infoplane import infoplane_figure
from ibrepro.report.plots.overfit import overfit_figure
from ibrepro.report.plots.sweep import depth_figure, matching_estimates, order_cells, panel_title

# ---------------------------------------------------------------- fixtures

N_INPUTS = 256
TINY = dict(seeds=2, epochs=600, snapshots=25)


def sha256s(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.glob("*.h5")}


def assert_drawn(png: Path) -> None:
    """The PNG exists with its PDF and is not blank (real pixel variance)."""
    assert png.is_file(), png
    assert png.with_suffix(".pdf").is_file() and png.with_suffix(".pdf").stat().st_size > 1000
    pixels = matplotlib.image.imread(png)[..., :3].mean(axis=-1)
    assert pixels.var() > 0.005, f"{png.name} looks blank"


@pytest.fixture(scope="module")
def cell(tmp_path_factory) -> Path:
    """One analysed cell with binning and KDE groups and an IB bound."""
    path = tmp_path_factory.mktemp("cell") / "tiny.h5"
    config = cell_config("tiny", hidden=(6, 4, 3), **TINY)
    write_run(path, config, n_inputs=N_INPUTS)
    write_estimates(path.with_name("tiny.mi.h5"), config, n_inputs=N_INPUTS, kde=True,
                    ib_bound=True)
    return path


@pytest.fixture(scope="module")
def cell_report(cell):
    before = sha256s(cell.parent)
    report = make_figures(cell)
    return report, before


# ---------------------------------------------------------------- one cell

def test_cell_figures_are_drawn_with_expected_names(cell, cell_report):
    report, _ = cell_report
    assert report.out_dir == cell.parent / "figures"
    pngs = {p.name for p in report.figures if p.suffix == ".png"}
    expected = {"tiny_learning.png", "tiny_gradients.png", "tiny_compare_estimators.png"}
    for group in ("binning_30", "kde_upper"):
        expected |= {f"tiny_infoplane_{group}.png", f"tiny_layers_{group}.png",
                     f"tiny_overfit_{group}.png"}
    assert pngs == expected
    assert len(report.figures) == 2 * len(expected)
    for name in expected:
        assert_drawn(report.out_dir / name)
    assert report.skipped == []


def test_plotting_leaves_run_and_estimates_files_unchanged(cell, cell_report):
    _, before = cell_report
    assert set(before) == {"tiny.h5", "tiny.mi.h5"}
    assert sha256s(cell.parent) == before


def test_index_lists_every_figure(cell_report):
    report, _ = cell_report
    md = (report.out_dir / "index.md").read_text()
    page = (report.out_dir / "index.html").read_text()
    for png in (p for p in report.figures if p.suffix == ".png"):
        assert f"[{png.name}]({png.name})" in md
        assert f'<img src="{png.name}"' in page
    assert md.count("\n- ") == len(report.figures) // 2


def test_estimator_option_selects_by_name_or_group(cell, tmp_path):
    report = make_figures(cell, out=tmp_path / "kde", estimator="kde")
    names = {p.name for p in report.figures if p.suffix == ".png"}
    assert {n for n in names if "infoplane" in n} == {"tiny_infoplane_kde_upper.png"}
    assert "tiny_compare_estimators.png" not in names
    cells = [load_cell(cell)]
    assert [e.group for e in select_estimates(cells, "binning_30")["tiny"]] == ["binning_30"]
    assert len(select_estimates(cells, None)["tiny"]) == 2


def test_infoplane_overlays_ib_bound_and_per_seed_traces(cell):
    loaded = load_cell(cell)
    binning = loaded.estimates[0]
    mean_only = infoplane_figure(loaded, binning)
    per_seed = infoplane_figure(loaded, binning, per_seed=True)
    assert [t.get_text() for t in mean_only.legends[0].get_texts()] == ["IB bound"]
    n_layers = binning.ixt.shape[2]
    seeds = binning.ixt.shape[0]
    # the grey epoch joins, the bound, plus one trace per seed and layer
    assert len(per_seed.axes[0].lines) == len(mean_only.axes[0].lines) + seeds * n_layers
    assert per_seed.axes[0].get_xlim()[1] == pytest.approx(1.02 * np.log2(N_INPUTS))


def test_gradient_figure_marks_the_transition_of_the_seed_mean_curves(cell):
    """The dotted lines sit where claims.drift_diffusion_epoch puts the transition of the
    seed-averaged mean/‖W‖ and std/‖W‖ (averaged here with plain loops)."""
    loaded = load_cell(cell)
    grads = loaded.gradients
    fig = gradients_figure(loaded)
    marked = sorted(line.get_xdata()[0] for line in fig.axes[0].lines
                    if len(line.get_xdata()) == 2 and len(set(line.get_xdata())) == 1)
    seeds, n_epochs, n_layers = grads["mean_norm"].shape
    later = [e for e in range(n_epochs) if loaded.epochs[e] > 0]
    seed_mean = {name: np.array([[sum(grads[name][s, e, k] / grads["weight_norm"][s, e, k]
                                      for s in range(seeds)) / seeds
                                  for k in range(n_layers)] for e in later])
                 for name in ("mean_norm", "std_norm")}
    expected = drift_diffusion_epoch(loaded.epochs[later], seed_mean["mean_norm"][None],
                                     seed_mean["std_norm"][None])[0]
    assert np.isfinite(expected).all()
    assert marked == pytest.approx(sorted(expected))
    assert 100 < min(expected) and max(expected) < 600  # synthetic SNR crosses 1 near epoch 300


def test_gradient_figure_with_zero_std_says_snr_is_undefined(cell):
    loaded = load_cell(cell)
    grads = {**loaded.gradients, "std_norm": np.zeros_like(loaded.gradients["std_norm"])}
    fig = gradients_figure(dataclasses.replace(loaded, gradients=grads))
    assert "undefined" in fig.axes[1].get_title()
    assert fig.axes[0].get_yscale() == "log" and fig.axes[1].get_yscale() == "linear"
    assert len(fig.axes[1].get_xticks()) == 0 and len(fig.axes[1].get_yticks()) == 0  # no scale for nothing
    keys = [text.get_text() for text in fig.legends[0].get_texts()]
    assert "mean" in keys and "std" not in keys and not any("drift" in key for key in keys)
    assert fig.axes[0].get_title() == "mean"


# ---------------------------------------------------------------- missing data

def test_cell_without_estimates_or_gradients_reports_what_is_missing(tmp_path):
    config = cell_config("bare", train_fraction=1.0, **TINY)
    write_run(tmp_path / "bare.h5", config, n_inputs=N_INPUTS, gradients=False)
    before = sha256s(tmp_path)
    report = make_figures(tmp_path / "bare.h5")
    assert {p.name for p in report.figures} == {"bare_learning.png", "bare_learning.pdf"}
    assert_drawn(report.out_dir / "bare_learning.png")
    joined = "\n".join(report.skipped)
    assert "gradient" in joined and "ibrepro analyze" in joined and len(report.skipped) == 2
    fig = learning_figure(load_cell(tmp_path / "bare.h5"))
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[0] == "train" and "train_fraction = 1" in legend[1]
    assert sha256s(tmp_path) == before


def test_all_nan_gradients_and_estimates_are_reported_not_drawn(tmp_path):
    config = cell_config("nan", **TINY)
    write_run(tmp_path / "nan.h5", config, n_inputs=N_INPUTS)
    write_estimates(tmp_path / "nan.mi.h5", config, n_inputs=N_INPUTS)
    with h5py.File(tmp_path / "nan.h5", "r+") as f:
        f["gradients/mean_norm"][...] = np.nan
    with h5py.File(tmp_path / "nan.mi.h5", "r+") as f:
        f["binning_30/ixt"][...] = np.nan
    loaded = load_cell(tmp_path / "nan.h5")
    assert loaded.gradients is None and "all NaN" in loaded.missing["gradients"]
    assert loaded.estimates == () and "no finite estimates" in loaded.notes[0]


def test_run_without_complete_epochs_is_skipped(tmp_path):
    path = tmp_path / "new.h5"
    with h5py.File(path, "w") as f:
        f.attrs.update(schema="ibrepro-run/1", config=json.dumps(cell_config("new")),
                       status="running", ibrepro_version="0.1.0")
        f["epochs"] = np.zeros(0, int)
        f["data/x"] = np.zeros((8, 12), np.float32)
        f["data/y"] = np.arange(8) % 2
        f["data/train_mask"] = np.ones((2, 8), bool)
        for k, width in enumerate([10, 7, 5, 4, 3, 2]):
            f.create_dataset(f"activations/{k}", shape=(2, 0, 8, width), dtype=np.float32)
        f["metrics/train_loss"] = np.zeros((2, 0))
    report = make_figures(path)
    assert report.figures == [] and "no logged epoch" in report.skipped[0]


def test_plot_path_returns_files_logs_skips_and_extends_the_index(tmp_path, caplog):
    for name in ("c", "d"):
        write_run(tmp_path / f"{name}.h5", cell_config(name, **TINY), n_inputs=N_INPUTS,
                  gradients=False)
    files = plot_path(tmp_path / "c.h5", out=tmp_path / "out")
    assert sorted(p.name for p in files) == ["c_learning.pdf", "c_learning.png"]
    assert "ibrepro analyze" in caplog.text and "gradients group" in caplog.text
    plot_path(tmp_path / "d.h5", out=tmp_path / "out")  # the index keeps c's figure
    md = (tmp_path / "out" / "index.md").read_text()
    assert "c_learning.png" in md and "d_learning.png" in md


# ---------------------------------------------------------------- sweeps

def test_train_fraction_sweep(tmp_path):
    sweep = {"train.train_fraction": [0.85, 0.05]}
    write_sweep(tmp_path, "frac", sweep, n_inputs=N_INPUTS, gradients=False, hidden=(5, 3), **TINY)
    before = sha256s(tmp_path)
    report = make_figures(tmp_path)
    assert report.out_dir == tmp_path / "figures"
    assert_drawn(report.out_dir / "frac_sweep_infoplane_binning_30.png")
    for name in ("frac-000", "frac-001"):
        assert_drawn(report.out_dir / f"{name}_infoplane_binning_30.png")
    assert not any("depth" in p.name for p in report.figures)
    assert sha256s(tmp_path) == before
    cells = order_cells([load_cell(p) for p in sorted(tmp_path.glob("frac-00?.h5"))][::-1],
                        list(sweep))
    assert [panel_title(c, list(sweep)) for c in cells] == ["train 85%", "train 5%"]


def test_depth_sweep_with_an_unanalysed_cell(tmp_path):
    sweep = {"model.hidden": [[4], [4, 3], [5, 4, 3]]}
    paths = write_sweep(tmp_path, "deep", sweep, n_inputs=N_INPUTS, gradients=False, **TINY)
    paths[0].with_name(paths[0].stem + ".mi.h5").unlink()
    report = make_figures(tmp_path, out=tmp_path / "plots")
    assert report.out_dir == tmp_path / "plots"
    assert_drawn(report.out_dir / "deep_sweep_infoplane_binning_30.png")
    assert_drawn(report.out_dir / "deep_depth_compression_binning_30.png")
    fig = depth_figure("deep", [load_cell(p) for p in paths],
                       [None] + [load_cell(p).estimates[0] for p in paths[1:]], list(sweep))
    depth, epochs = fig.axes[0].lines[0].get_data()
    assert list(depth) == [2, 3] and epochs[0] > epochs[1]  # more layers compress sooner
    assert any("deep-000" in s and "ibrepro analyze" in s for s in report.skipped)
    assert any("without 'binning_30' estimates: deep-000" in s for s in report.skipped)


# ---------------------------------------------------------------- bad input

def test_bad_inputs_raise_user_error(cell, tmp_path):
    with pytest.raises(UserError, match="no such file"):
        make_figures(tmp_path / "missing.h5")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no run files"):
        make_figures(tmp_path / "empty")
    only_estimates = tmp_path / "only"
    only_estimates.mkdir()
    (only_estimates / "x.mi.h5").write_bytes(cell.with_name("tiny.mi.h5").read_bytes())
    with pytest.raises(UserError, match="no run files"):
        make_figures(only_estimates)
    with pytest.raises(UserError, match="not a run file"):
        make_figures(only_estimates / "x.mi.h5")
    with pytest.raises(UserError, match=r"computed estimators: binning, kde \(groups"):
        make_figures(cell, estimator="adaptive")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match="not a run file"):
        make_figures(tmp_path / "notes.txt")
    (tmp_path / "bad.h5").write_text("not hdf5")
    with pytest.raises(UserError, match="not a readable HDF5"):
        make_figures(tmp_path / "bad.h5")


# ---------------------------------------------------------------- CLI

def test_cli_plot_reports_figures_and_skips(tmp_path):
    from typer.testing import CliRunner

    from ibrepro.cli import app

    write_run(tmp_path / "c.h5", cell_config("c", **TINY), n_inputs=N_INPUTS, gradients=False)
    runner = CliRunner()
    result = runner.invoke(app, ["plot", str(tmp_path / "c.h5"), "--out", str(tmp_path / "f")])
    assert result.exit_code == 0, result.output
    assert "1 figure(s)" in result.output and str(tmp_path / "f") in result.output
    assert "skipped: gradient SNR for c" in result.output and "ibrepro analyze" in result.output
    assert (tmp_path / "f" / "c_learning.png").is_file()
    result = runner.invoke(app, ["plot", str(tmp_path / "nothing")])
    assert result.exit_code != 0 and "no such file or directory" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["plot", str(tmp_path / "c.h5"), "--rule", "min_fall_bits=0.3"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["plot", str(tmp_path / "c.h5"), "--rule", "min_fall=0.3"])
    assert result.exit_code != 0 and "--rule 'min_fall=0.3'" in result.output and "Traceback" not in result.output


# ---------------------------------------------------------------- figures mark the claims' numbers

def marked(fig, prefix: str) -> dict[str, object]:
    """The artists a figure tagged `prefix:<key>` (gid), by key."""
    return {artist.get_gid().split(":", 1)[1]: artist for artist in fig.findobj()
            if isinstance(artist.get_gid(), str) and artist.get_gid().startswith(prefix + ":")}


def test_every_marked_number_is_the_claims_files(tmp_path):
    """Figures and claims of the same synthetic depth sweep (small training set, changed
    rules): each transition, onset, late fall and epochs-to-compression a figure marks is the
    number the claims files record."""
    sweep = {"model.hidden": [[4], [5, 4, 3]]}
    paths = write_sweep(tmp_path, "deep", sweep, train_fraction=0.05, **TINY)  # claims need all 4096 inputs
    rules = Rules(min_fall_bits=0.2, compressed_fraction=0.2)
    judge_path(tmp_path, rules=rules)
    experiment = claimsfile.read(tmp_path / claimsfile.EXPERIMENT_NAME)
    depth_claim = experiment["groups"]["binning_30"]["claims"]["iv"]["measured"]["median_epochs"]
    cells = [load_cell(p) for p in paths]
    checked = 0
    for path, cell in zip(paths, cells):
        layers = claimsfile.read(claims_path(path))["groups"]["binning_30"]["layers"]
        drift = marked(gradients_figure(cell), "drift")
        assert {int(k) for k in drift} == {k for k, row in enumerate(layers) if row["drift_epoch_seed_mean"]}
        for k, line in drift.items():
            assert line.get_xdata()[0] == pytest.approx(layers[int(k)]["drift_epoch_seed_mean"])
        per_seed = marked(gradients_figure(cell), "drift_per_seed")
        assert len(per_seed) == len(layers)
        for k, line in per_seed.items():  # claim ii's per-seed transition, its centre
            assert line.get_xdata()[0] == pytest.approx(layers[int(k)]["drift_epoch"][0])
        onsets = marked(layer_curves_figure(cell, cell.estimates[0], rules), "onset")
        assert {int(k) for k in onsets} == {k for k, row in enumerate(layers) if np.isfinite(row["onset_epoch"][0])}
        for k, line in onsets.items():
            assert line.get_xdata()[0] == pytest.approx(layers[int(k)]["onset_epoch"][0])
        deep = deep_layers(len(cell.config["model"]["hidden"]))
        falls = marked(overfit_figure(cell, cell.estimates[0], deep, rules), "late_fall")
        assert sorted(int(k) for k in falls) == deep
        for k, line in falls.items():
            assert f"late fall {interval_text(layers[int(k)]['ity_late_fall'], 2)} bits" in line.get_label()
        checked += len(drift) + len(per_seed) + len(onsets) + len(falls)
    fig = depth_figure("deep", cells, [c.estimates[0] for c in cells], list(sweep), rules)
    (line,) = marked(fig, "depth").values()
    depths, epochs = line.get_data()
    assert list(depths) == [1, 3]
    assert epochs == pytest.approx([depth_claim["1"][0], depth_claim["3"][0]])
    assert checked > 10
    # the default rules give other numbers: the figures do follow the rules they are given
    default = depth_figure("deep", cells, [c.estimates[0] for c in cells], list(sweep))
    assert not np.allclose(next(iter(marked(default, "depth").values())).get_data()[1], epochs)


# ---------------------------------------------------------------- tied to the run

def test_estimates_of_another_run_are_refused_by_plot_claims_and_report(tmp_path):
    from typer.testing import CliRunner

    from ibrepro.cli import app
    from ibrepro.report.render import write_report

    config = cell_config("c", **TINY)
    path = tmp_path / "c.h5"
    write_run(path, config)
    write_estimates(tmp_path / "c.mi.h5", config)
    with h5py.File(path, "r+") as f:
        f.attrs["run_id"] = "run-b"
    with h5py.File(tmp_path / "c.mi.h5", "r+") as f:
        f["binning_30"].attrs["run_id"] = "run-a"
    refusal = r"'binning_30' was estimated on another run \(run_id run-a, c.h5 has run-b\)"
    for stage in (make_figures, judge_path, write_report):
        with pytest.raises(UserError, match=refusal):
            stage(path)
    result = CliRunner().invoke(app, ["claims", str(path)])
    assert result.exit_code != 0 and "another run" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    with h5py.File(tmp_path / "c.mi.h5", "r+") as f:  # same run_id, an epoch the run never logged
        f["binning_30"].attrs["run_id"] = "run-b"
        f["binning_30/epochs"][-1] = 12345
    with pytest.raises(UserError, match="epoch 12345, which c.h5 has no complete snapshot of"):
        load_cell(path)


def test_partial_estimates_are_labelled_partial_everywhere(tmp_path):
    """Estimates made while the cell trained (its first 15 logged epochs) of a run that went on
    to epoch 599: figures, claims file and report say 'partial: up to epoch N of 599'."""
    from ibrepro.report.render import write_report

    config = cell_config("c", **TINY)
    path = tmp_path / "c.h5"
    write_run(path, config)
    write_estimates(tmp_path / "c.mi.h5", config)
    with h5py.File(tmp_path / "c.mi.h5", "r+") as f:
        group = f["binning_30"]
        for name in ("epochs", "ixt", "ity"):
            data = group[name][()]
            del group[name]
            group[name] = data[..., :15] if name == "epochs" else data[:, :15]
        last = int(group["epochs"][-1])
    label = f"partial: up to epoch {last} of 599"
    cell = load_cell(path)
    assert cell.coverage() == "" and cell.coverage(cell.estimates[0].epochs) == label
    assert label in infoplane_figure(cell, cell.estimates[0]).axes[0].get_title()
    assert label in layer_curves_figure(cell, cell.estimates[0])._suptitle.get_text()
    result = write_report(path)
    group = claimsfile.read(claims_path(path))["groups"]["binning_30"]
    assert group["coverage"] == label and group["last_epoch"] == last
    text = result.markdown.read_text()
    assert f"binning_30 (drawn labels, {label})" in text  # the verdict matrix
    assert f"I(X;T) at epoch {last} (partial)" in text and "final I(X;T)" not in text


def test_sweep_matches_groups_named_after_each_cell(tmp_path):
    """Noise-injected sweeps name each cell's noisy group after its own β: the sweep figure
    still draws every analysed cell (no 'not analysed' panel) in one figure."""
    sweep = {"train.train_fraction": [0.85, 0.5]}
    paths = write_sweep(tmp_path, "noise", sweep, n_inputs=N_INPUTS, gradients=False, hidden=(5, 3), **TINY)
    for i, path in enumerate(paths):
        with h5py.File(path.with_name(path.stem + ".mi.h5"), "r+") as f:
            f.move("binning_30", f"binning_cell{i}")
    report = make_figures(tmp_path)
    sweeps = sorted(p.name for p in report.figures if "sweep_infoplane" in p.name and p.suffix == ".png")
    assert sweeps == ["noise_sweep_infoplane_binning_cell0.png"]
    assert not any("sweep panels without" in s for s in report.skipped)
    cells = order_cells([load_cell(p) for p in paths], list(sweep))
    matched = matching_estimates([c.estimates for c in cells], cells[0].estimates[0])
    assert [e.group for e in matched] == ["binning_cell0", "binning_cell1"]


def test_layers_starting_at_one_point_share_one_tag():
    import matplotlib.pyplot as plt

    from ibrepro.report.plots.infoplane import _tag_layers

    ixt = np.array([[12.0, 11.99, 6.0, 2.0], [12.0, 12.0, 5.0, 1.5]])  # (epochs, layers)
    ity = np.array([[0.99, 0.995, 0.2, 0.01], [1.0, 1.0, 0.4, 0.1]])
    ixt[0, 2] = np.nan  # layer 3's first finite point is the second epoch
    fig, ax = plt.subplots()
    ax.set_xlim(0, 12.24)  # the plane's limits, as draw_infoplane sets them before tagging
    ax.set_ylim(0, 1.1)
    _tag_layers(ax, ixt, ity)
    tags = marked(fig, "layer-tag")
    assert set(tags) == {"1,2", "3", "out"}
    assert tags["3"].xy == (5.0, 0.4)
    plt.close(fig)


def test_tags_that_would_overlap_on_the_page_share_one_tag():
    """Layers starting a few hundredths of a bit apart (MNIST ReLU: 1-4 and the output near
    H(X), H(Y)) are distinct points but within a tag's width at the axes' limits: one tag."""
    import matplotlib.pyplot as plt

    from ibrepro.report.plots.infoplane import _tag_layers

    ixt = np.array([[10.90, 10.95, 10.98, 11.0, 11.02], [4.0, 4.2, 4.4, 4.6, 4.8]])  # (epochs, layers)
    ity = np.array([[3.31, 3.30, 3.32, 3.31, 3.26], [3.1, 3.1, 3.1, 3.1, 3.1]])
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.set_xlim(0, 11.2)
    ax.set_ylim(0, 3.6)
    _tag_layers(ax, ixt, ity)
    assert set(marked(fig, "layer-tag")) == {"1,2,3,4,out"}
    ax.set_xlim(10.85, 11.05)  # zoomed in, the same starts are far apart on the page
    ax.set_ylim(3.2, 3.35)
    for text in list(ax.texts):
        text.remove()
    _tag_layers(ax, ixt, ity)
    assert len(marked(fig, "layer-tag")) == 5
    plt.close(fig)
