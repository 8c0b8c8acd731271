"""The [reproduce] table of experiment files and the analyze runs scripts/reproduce.sh makes."""

from __future__ import annotations

from pathlib import Path

import pytest

from ibrepro import config as cfg
from ibrepro import reproduce_plan as rp
from ibrepro.errors import UserError

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
HEAD = 'name = "t"\ndataset = "tishby12"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "t.toml"
    path.write_text(HEAD + text)
    return path


def test_a_table_entry_becomes_one_analyze_run_after_the_defaults(tmp_path):
    path = write(tmp_path, '[[reproduce.analyze]]\nestimators = ["noisy"]\nset = { every = 4, seeds = "0-4" }\n'
                           '[[reproduce.analyze]]\nestimators = ["knn", "renyi"]\n')
    name, runs = rp.plan(path)
    assert name == "t"
    assert [r.stage for r in runs] == ["analyze-binning", "analyze-kde", "analyze-noisy-every-4-seeds-0-4",
                                       "analyze-knn-renyi"]
    assert runs[2].args == ["--estimator", "noisy", "--set", "every=4", "--set", "seeds=0-4"]
    assert runs[3].args == ["--estimator", "knn", "--estimator", "renyi"]


def test_the_defaults_follow_the_cells(tmp_path):
    quantized = rp.default_runs(cfg.resolve({"name": "q", "dataset": "tishby12"},
                                            ["sweep.model.quantize_bits=[4, 8]"]))
    assert [r.stage for r in quantized] == ["analyze-binning", "analyze-exact", "analyze-kde"]
    noisy = rp.default_runs(cfg.resolve({"name": "n", "dataset": "tishby12"}, ["sweep.data.gamma=[0.0, 1.0]"]))
    assert noisy[-1].args == ["--estimator", "kde", "--set", "every=4", "--set", "labels=soft"]
    mnist = rp.default_runs(cfg.resolve({"name": "m", "dataset": "mnist"}, ["sweep.model.quantize_bits=[0, 8]"]))
    assert [r.args[1] for r in mnist] == ["binning-layer", "kde"]


@pytest.mark.parametrize("text, message", [
    ('[reproduce]\nanalyse = []\n', "takes one key, analyze"),
    ('[reproduce]\nanalyze = "kde"\n', "array of tables"),
    ('[[reproduce.analyze]]\nestimator = ["kde"]\n', "entry 1 takes the keys estimators and set"),
    ('[[reproduce.analyze]]\nestimators = []\n', "non-empty list of estimator names"),
    ('[[reproduce.analyze]]\nestimators = ["kde"]\nset = { every = [4] }\n', "set every must be a number"),
    ('[[reproduce.analyze]]\nestimators = ["kdee"]\n', "--estimator kdee"),
    ('[[reproduce.analyze]]\nestimators = ["kde"]\nset = { n_bins = 30 }\n', "unknown parameter 'n_bins'"),
    ('[[reproduce.analyze]]\nestimators = ["kde"]\nset = { every = 0 }\n', "every"),
    ('[[reproduce.analyze]]\nestimators = ["kde"]\nset = { every = 4 }\n', "asks twice"),
])
def test_a_bad_table_is_refused_naming_the_file(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(UserError, match=message) as caught:
        rp.plan(path)
    assert str(path) in str(caught.value)


def test_the_table_is_not_part_of_a_cells_config():
    with_table = cfg.resolve({"name": "t", "dataset": "tishby12", "reproduce": {"analyze": []}})
    assert with_table == cfg.resolve({"name": "t", "dataset": "tishby12"})


def test_every_shipped_experiment_has_a_valid_plan():
    planned = {path.name: rp.plan(path)[1] for path in sorted(EXPERIMENTS.rglob("*.toml"))}
    assert len(planned) > 15
    assert planned["tishby12_noise_injected.toml"][-1].estimators == ("noisy",)
    assert planned["tishby12_estimators.toml"][-1].estimators == ("knn", "renyi")
    assert not any("# reproduce:" in path.read_text() for path in EXPERIMENTS.rglob("*.toml"))


def test_main_prints_the_name_then_tab_separated_runs(tmp_path, capsys):
    path = write(tmp_path, '[[reproduce.analyze]]\nestimators = ["binning-layer"]\nset = { range = "global" }\n')
    assert rp.main([str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "t"
    assert lines[-1].split("\t") == ["analyze-binning-layer-range-global", "--estimator", "binning-layer",
                                     "--set", "range=global"]
    assert rp.main([str(tmp_path / "missing.toml")]) == 1
    assert capsys.readouterr().err.startswith("error: no experiment file at")
