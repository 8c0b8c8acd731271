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
