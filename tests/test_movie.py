"""`ibrepro plot --movie`: the information-plane animation, on a synthetic run."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.animation import FFMpegWriter
from PIL import Image
from synthetic_files import cell_config, write_estimates, write_run
from typer.testing import CliRunner

from ibrepro.analysis.results import load_cell
from ibrepro.cli import app
from ibrepro.report.plots.movie import frame_indices, movie_figure, write_movie

N_INPUTS = 256


@pytest.fixture(scope="module")
def cell(tmp_path_factory):
    path = tmp_path_factory.mktemp("movie") / "tiny.h5"
    config = cell_config("tiny", hidden=(6, 4, 3), seeds=2, epochs=600, snapshots=25)
    write_run(path, config, n_inputs=N_INPUTS)
    write_estimates(path.with_name("tiny.mi.h5"), config, n_inputs=N_INPUTS, kde=True, ib_bound=True)
    return path


def test_frame_indices_keep_first_and_last_and_thin_evenly():
    assert frame_indices(10, 120).tolist() == list(range(10))
    frames = frame_indices(1000, 50)
    assert frames[0] == 0 and frames[-1] == 999 and len(frames) == 50
    assert np.ptp(np.diff(frames)) <= 1


def test_each_frame_moves_every_layer_to_its_mean_position(cell):
    results = load_cell(cell)
    estimate = results.estimates[0]
    _, plane = movie_figure(results, estimate)
    i = 7
    plane.show(i)
    mean_ixt, mean_ity = estimate.ixt.mean(axis=0), estimate.ity.mean(axis=0)
    for k, head in enumerate(plane.heads):
        x, y = head.get_data()
        assert np.allclose([x[0], y[0]], [mean_ixt[i, k], mean_ity[i, k]])
        assert len(plane.paths[k].get_xdata()) == i + 1  # the path so far
    assert plane.counter.get_text().split() == ["epoch", str(int(estimate.epochs[i]))]
    assert len({h.get_color() for h in plane.heads}) == estimate.ixt.shape[2]  # coloured by layer


def test_gif_has_one_frame_per_logged_epoch_and_frames_differ(cell, tmp_path):
    results = load_cell(cell)
    written = write_movie(results, results.estimates[0], tmp_path / "m", max_frames=10)
    gif = tmp_path / "m.gif"
    assert written == [gif, tmp_path / "m.mp4"] if FFMpegWriter.isAvailable() else [gif]
    assert all(p.stat().st_size > 1000 for p in written)
    with Image.open(gif) as im:
        assert im.n_frames == 10
        first = np.asarray(im.convert("RGB"), float)
        im.seek(im.n_frames - 1)
        last = np.asarray(im.convert("RGB"), float)
    assert np.abs(first - last).mean() > 0.5  # the layers moved


def test_cli_plot_movie_writes_one_animation_per_estimate_group(cell, tmp_path):
    result = CliRunner().invoke(app, ["plot", str(cell), "--out", str(tmp_path), "--movie"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.glob("*.gif")) == ["tiny_movie_binning_30.gif",
                                                               "tiny_movie_kde_upper.gif"]
    assert "animation file(s)" in result.output
