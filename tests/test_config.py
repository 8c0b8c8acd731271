import json
import subprocess
import sys

import pytest

from ibrepro import config as cfg
from ibrepro.errors import UserError

BASE = {"name": "x", "dataset": "tishby12"}


def test_defaults_are_the_paper_settings():
    c = cfg.resolve(BASE)
    assert c["model"]["hidden"] == [10, 7, 5, 4, 3]
    assert c["model"]["activation"] == "tanh"
    assert c["train"] == {"optimizer": "adam", "lr": 4e-4, "momentum": 0.0, "batch_size": 256,
                          "epochs": 10000, "seeds": 50, "seed": 0, "train_fraction": 0.85}


def test_overrides_are_typed():
    c = cfg.resolve(BASE, ["train.epochs=100", "model.activation=relu", "model.hidden=[3, 2]",
                           "train.lr=1", "data.gamma=2.5"])
    assert c["train"]["epochs"] == 100
    assert c["model"]["activation"] == "relu"
    assert c["model"]["hidden"] == [3, 2]
    assert c["train"]["lr"] == 1.0 and isinstance(c["train"]["lr"], float)
    assert c["data"]["gamma"] == 2.5


@pytest.mark.parametrize("override, words", [
    ("train.epochs=-1", "train.epochs"),
    ("train.epochs=0", "train.epochs"),
    ("train.seeds=0", "train.seeds"),
    ("train.train_fraction=0", "train_fraction"),
    ("train.train_fraction=1.5", "train_fraction"),
    ("train.epochs=ten", "must be int"),
    ("train.epochs=1.5", "must be int"),
    ("model.activation=foo", "unknown value 'foo'"),
    ("model.hidden=[]", "model.hidden"),
    ("model.hidden=[3, -1]", "model.hidden"),
    ("train.optimiser=sgd", "unknown config key 'train.optimiser'"),
    ("nonsense", "key=value"),
    ("train.lr=nan", "finite"),
])
def test_bad_values_name_the_problem(override, words):
    with pytest.raises(UserError, match=words.replace("[", r"\[").replace("]", r"\]")):
        cfg.resolve(BASE, [override])


def test_unknown_key_in_file_and_missing_required():
    with pytest.raises(UserError, match="unknown config key 'model.widths'"):
        cfg.resolve({**BASE, "model": {"widths": [3]}})
    with pytest.raises(UserError, match="required key 'dataset'"):
        cfg.resolve({"name": "x"})
    with pytest.raises(UserError, match="dataset"):
        cfg.resolve({"name": "x", "dataset": "cifar"})


def test_load_errors(tmp_path):
    with pytest.raises(UserError, match="no experiment file"):
        cfg.load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(UserError, match="not valid TOML"):
        cfg.load(bad)


def test_sweep_expansion():
    c = cfg.resolve({**BASE, "sweep": {"train.train_fraction": [0.05, 0.85], "model.hidden": [[10], [10, 7]]}})
    cells = cfg.cells(c)
    assert [name for name, _ in cells] == [
        "train_fraction-0.05_hidden-10", "train_fraction-0.05_hidden-10x7",
        "train_fraction-0.85_hidden-10", "train_fraction-0.85_hidden-10x7"]
    assert cells[1][1]["model"]["hidden"] == [10, 7] and cells[1][1]["train"]["train_fraction"] == 0.05
    assert cfg.cells(cfg.resolve(BASE))[0][0] == "cell"
    with pytest.raises(UserError, match="sweep"):
        cfg.resolve({**BASE, "sweep": {"train.train_fraction": [0.5, 2.0]}})
    with pytest.raises(UserError, match="sweep"):
        cfg.resolve({**BASE, "sweep": {"train.nothing": [1]}})


def test_differing_keys():
    a, b = cfg.resolve(BASE), cfg.resolve(BASE, ["train.epochs=5", "model.activation=relu"])
    assert cfg.differing_keys(a, b) == ["model.activation", "train.epochs"]
    assert cfg.differing_keys(a, a) == []


@pytest.mark.parametrize("raw, words", [
    ({"model": {"hidden": [True, 4]}}, "model.hidden.*not true/false"),
    ({"model": {"binary_weights": 1}}, "model.binary_weights' must be bool"),
    ({"train": {"epochs": True}}, "train.epochs' must be int"),
    ({"train": {"epochs": 9223372036854775807}}, "train.epochs' must be at most 2147483647"),
    ({"train": {"seed": 2**64}}, "train.seed' must be at most 4294967295"),
    ({"data": {"seed": 2**32}}, "data.seed' must be at most 4294967295"),
    ({"log": {"snapshots": 10**9}}, "log.snapshots' must be at most"),
    ({"train": {"seeds": 100000000000}}, r"needs about [\d.]+ PB of memory \(train.seeds = 100000000000"),
    ({"model": {"hidden": [100000000000]}}, r"needs about [\d.]+ PB of memory .*lower train.seeds or model.hidden"),
    ({"train": {"momentum": 0.9}}, "train.momentum = 0.9 has no effect with train.optimizer = 'adam'"),
    ({"sweep": {"train.lr": [0.1, 0.1]}}, r"\[sweep\] 'train.lr' lists 0.1 twice"),
    ({"sweep": {"train.epochs": [10, 10, 20]}}, r"\[sweep\] 'train.epochs' lists 10 twice"),
    ({"sweep": {"model.hidden": [[10, 7], [10, 7]]}}, r"lists \[10, 7\] twice"),
    ({"sweep": {"train.lr": [1, 1.0]}}, "lists 1.0 twice"),
])
def test_bad_configs_are_refused_in_one_line(raw, words):
    """Each value is refused before anything runs, in one line that names the key."""
    with pytest.raises(UserError, match=words) as caught:
        cfg.cells(cfg.resolve({**BASE, **raw}))
    assert "\n" not in str(caught.value)


def test_momentum_with_sgd_and_sizes_that_fit_are_accepted():
    c = cfg.resolve(BASE, ["train.optimizer=sgd", "train.momentum=0.9", "train.seeds=50", "train.seed=4294967295"])
    assert cfg.cells(c)[0][1]["train"]["momentum"] == 0.9
    cfg.cells(cfg.resolve({"name": "m", "dataset": "mnist", "model": {"hidden": [1024, 20, 20, 20]}}))


def test_one_set_parser_for_train_and_analyze():
    from ibrepro.analysis.request import pairs_to_settings

    assert cfg.parse_override(" train.lr = 0.5 ") == ("train.lr", 0.5)
    assert pairs_to_settings([" n_bins = 30 ", "n_bins=40"]) == {"n_bins": "40"}
    for parse in (cfg.parse_override, lambda text: pairs_to_settings([text])):
        with pytest.raises(UserError, match="--set expects key=value, got '=3'"):
            parse("=3")


def test_one_name_rule():
    assert cfg.checked_name("tishby12-depth_1.5") == "tishby12-depth_1.5"
    for bad in (".hidden", "a/b", ""):
        with pytest.raises(UserError, match="not usable as a file name"):
            cfg.checked_name(bad)
        with pytest.raises(UserError, match="'name'"):
            cfg.resolve({**BASE, "name": bad})


def test_activation_names_are_the_models():
    from ibrepro.train.model import ACTIVATIONS

    assert cfg.ACTIVATIONS == tuple(ACTIVATIONS)


def test_importing_the_config_loads_no_jax_or_numpy():
    code = "import sys, ibrepro.config; print(sorted(m for m in ('jax', 'flax', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_stored_config_gets_the_defaults_of_keys_it_predates():
    current = cfg.resolve(BASE, ["train.seeds=3", "model.hidden=[4, 3]"])
    old = json.loads(json.dumps(current))
    del old["model"]["dropout"], old["log"]["dtype"]
    filled = cfg.stored_config(old, "old.h5")
    assert filled["model"]["dropout"] == 0.0 and filled["log"]["dtype"] == "float32"
    assert cfg.differing_keys(filled, current) == []
    bare = cfg.stored_config({"name": "t", "dataset": "tishby12"}, "bare.h5")
    assert "hidden" not in bare["model"] and "seeds" not in bare["train"]  # the file's arrays say
    assert bare["train"]["epochs"] == 10000


@pytest.mark.parametrize("raw, words", [
    ([1, 2], "old.h5: its config is not a JSON object"),
    ({"name": "t"}, "old.h5: its config names no dataset"),
    ({"dataset": "tishby12", "model": 3}, "old.h5: its config holds a value at 'model'"),
])
def test_a_damaged_stored_config_is_one_line(raw, words):
    with pytest.raises(UserError, match=words):
        cfg.stored_config(raw, "old.h5")


def test_names_fit_a_file_system_with_every_suffix():
    assert cfg.checked_name("a" * 200)
    with pytest.raises(UserError, match="at most 200 characters"):
        cfg.checked_name("a" * 201)
    deep = cfg.resolve(BASE, ["sweep.model.hidden=[[" + ", ".join(["7"] * 100) + "]]"])
    [(name, _)] = cfg.cells(deep)  # hidden-7x7x...: 206 characters
    with pytest.raises(UserError, match="at most 200 characters"):
        cfg.checked_name(name)


def test_the_memory_estimate_knows_the_tishby12_data():
    from ibrepro.data.tishby12 import tishby12_inputs
    from ibrepro.footprint import DATASET_SHAPES, training_bytes

    shape = DATASET_SHAPES["tishby12"]
    assert tishby12_inputs().shape == (shape.pool, shape.width) and shape.pool == shape.eval
    paper = cfg.cells(cfg.resolve(BASE))[0][1]
    assert 10e6 < training_bytes(paper) < 1e9  # 50 seeds of the paper's network: tens of MB
