"""The exact estimator: brute-force agreement, the hash's exactness, refusals, config levels."""

import math
from collections import Counter

import numpy as np
import pytest
from helpers import tiny_config
from test_analyze import write_run

from ibrepro.analysis import estimators
from ibrepro.analysis.analyze import analyze_path
from ibrepro.analysis.estimators import exact
from ibrepro.analysis.estimators.base import Block, Labels
from ibrepro.analysis.estimators.placement import KERNELS_ENV
from ibrepro.errors import UserError


def brute_force(rows: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(H(T), I(T;Y)) in bits by counting tuples: the obvious reference."""
    n = len(y)
    symbols = [tuple(0.0 if v == 0 else float(v) for v in row) for row in rows]

    def entropy(counter):
        return -sum(c / n * math.log2(c / n) for c in counter.values())

    h_t = entropy(Counter(symbols))
    return h_t, h_t + entropy(Counter(y.tolist())) - entropy(Counter(zip(symbols, y.tolist())))


def random_discrete(rng, b, n, w, values_per_unit, dtype):
    """Each unit draws from its own small set of arbitrary values (incl. -0.0 and +0.0)."""
    sets = [np.append(rng.normal(size=values_per_unit - 2), [0.0, -0.0]) for _ in range(w)]
    picks = rng.integers(0, values_per_unit, size=(b, n, w))
    return np.stack([sets[j][picks[:, :, j]] for j in range(w)], axis=2).astype(dtype)


@pytest.mark.parametrize("dtype,w,classes", [(np.float32, 3, 2), (np.float64, 9, 3), (np.float16, 14, 10)])
def test_exact_matches_brute_force(dtype, w, classes):
    rng = np.random.default_rng(w)
    acts = random_discrete(rng, 4, 300, w, 4, dtype)
    acts[1, 150:] = acts[1, :150]  # many repeated rows
    acts[2] = acts[2, :, :1]  # rows that differ in no unit but the first
    y = rng.integers(0, classes, 300)
    ixt, ity = exact.exact_information(Block(acts, np.arange(4)), Labels.from_labels(y), levels=4)
    for k in range(4):
        want = brute_force(acts[k], y)
        assert abs(ixt[k] - want[0]) < 1e-12 and abs(ity[k] - want[1]) < 1e-12, (k, ixt[k], ity[k], want)


@pytest.mark.parametrize("kernels", ["host", "device"])
@pytest.mark.parametrize("on_grid", [False, True])
def test_hash_collisions_are_detected_and_recounted(monkeypatch, on_grid, kernels):
    """With a hash that collides nearly always, every seed-epoch takes the exact slow path
    (sorted and compared on the host, or on the device)."""
    weak = lambda bits: (bits[:, :, 0] & 3).astype(np.uint64) << 61  # noqa: E731
    monkeypatch.setattr(exact, "row_hash", weak)
    monkeypatch.setenv(KERNELS_ENV, kernels)
    exact._kernel.clear_cache()
    exact._hashed_rows.clear_cache()
    rng = np.random.default_rng(1)
    if on_grid:  # 16 units on a 16-level grid: too wide for a key of levels, so hashed
        symbols = rng.integers(0, 16, size=(3, 200, 16))
        acts = (symbols * (1 / 15)).astype(np.float32)
    else:
        acts = symbols = random_discrete(rng, 3, 200, 5, 5, np.float32)
    y = rng.integers(0, 2, 200)
    try:
        ixt, ity = exact.exact_information(Block(acts, np.arange(3)), Labels.from_labels(y), levels=16)
    finally:
        exact._kernel.clear_cache()
        exact._hashed_rows.clear_cache()
    for k in range(3):
        want = brute_force(symbols[k], y)
        assert abs(ixt[k] - want[0]) < 1e-12 and abs(ity[k] - want[1]) < 1e-12


@pytest.mark.parametrize("width", [3, 20])  # keys: the levels themselves; a hash of the levels
def test_on_grid_rows_are_read_as_their_levels(width):
    """A layer on its quantizer's grid is read as its levels: a value an ulp off a level is that
    level (float rounding cannot split a level); the counts are those of the level rows."""
    rng = np.random.default_rng(3)
    levels = rng.integers(0, 16, size=(3, 400, width))
    acts = (levels * (2 / 15) - 1).astype(np.float32)
    acts[0, ::7, 1] = np.nextafter(acts[0, ::7, 1], np.float32(2))
    y = rng.integers(0, 2, 400)
    mode = exact.key_mode(16, width, 1, on_grid=True)
    assert mode == ("codes32" if width == 3 else "hash-levels")
    ixt, ity = exact.exact_information(Block(acts, np.arange(3)), Labels.from_labels(y), levels=16)
    for k in range(3):
        want = brute_force(levels[k], y)
        assert abs(ixt[k] - want[0]) < 1e-12 and abs(ity[k] - want[1]) < 1e-12, k


def test_quantized_grid_passes_and_too_many_values_are_refused():
    rng = np.random.default_rng(2)
    grid = rng.integers(0, 16, size=(2, 500, 4)) * (1.7 / 15) - 0.6  # 16 levels on [-0.6, 1.1]
    labels = Labels.from_labels(rng.integers(0, 2, 500))
    ixt, _ = exact.exact_information(Block(grid.astype(np.float32), np.arange(2), layer=3), labels, levels=16)
    assert np.all(ixt > 0)
    with pytest.raises(UserError) as err:
        exact.exact_information(Block(grid.astype(np.float32), np.array([4, 7]), layer=3), labels, levels=8)
    message = str(err.value)
    assert "\n" not in message and "layer 3" in message and "16 distinct values" in message and "seed 4" in message


def test_levels_from_config():
    levels = exact.config_levels
    assert levels(tiny_config("model.quantize_bits=8"))["levels"] == "256,256,256"
    assert levels(tiny_config('model.activation="sign"'))["levels"] == "2,2,16"  # output: 2^4 rows of layer 1
    assert levels(tiny_config('model.activation="sign"', "model.quantize_bits=4"))["levels"] == "2,2,16"
    assert levels(tiny_config())["levels"] == "0,0,0"
    assert exact.layer_levels("2,2,16", 2) == 16 and exact.layer_levels("7", 5) == 7
    with pytest.raises(UserError):
        exact.layer_levels("2,x", 0)
    assert estimators.get("exact").group_name({"levels": "2,2,16"}, "") == "exact"


def test_float_run_is_refused_in_one_line(tmp_path):
    path = tmp_path / "float.h5"
    write_run(path)  # float tanh layers, no quantizer in the config
    pattern = r"^float.h5: exact: layer \d is not discrete: a unit takes \d+ distinct values[^\n]*$"
    with pytest.raises(UserError, match=pattern):
        analyze_path(path, ["exact"], progress=False)
    assert not (tmp_path / "float.mi.h5").exists()
