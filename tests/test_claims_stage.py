"""`ibrepro claims` end to end on tiny trained cells: the claims file, soft labels for
gamma > 0, self-consistency on the group's partition, a diverged run, CLI errors."""

from __future__ import annotations

import json
import os
import shutil

import h5py
import numpy as np
import pytest
from helpers import tiny_config
from typer.testing import CliRunner

from ibrepro.analysis import estimators
from ibrepro.analysis.analyze import analyze_path
from ibrepro.analysis.estimators import Block, Labels
from ibrepro.analysis.estimators.binning import uniform_edges
from ibrepro.analysis.estimators.discrete import soft_information
from ibrepro.claims import claimsfile
from ibrepro.claims.calibration import fixed_point_encoder
from ibrepro.claims.judge import judge_path
from ibrepro.claims.rules import Rules
from ibrepro.claims.selfconsistency import partition_of, symbols
from ibrepro.claims.verdicts import NOT_APPLICABLE, NOT_SUPPORTED, SUPPORTED, WORDS
from ibrepro.cli import app
from ibrepro.data.tishby12 import tishby12_p_y1
from ibrepro.ib.bound import bound_path
from ibrepro.layout import claims_path
from ibrepro.train.loop import train_cell
from ibrepro.train.runfile import complete_epochs

CLAIM_NAMES = ["i", "ii", "iii", "iv", "v"]


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    """A tiny cell with noisy labels (gamma = 1), trained full batch, with binning estimates
    (drawn and soft labels), soft-label KDE estimates and its IB bound."""
    path = tmp_path_factory.mktemp("claims") / "cell.h5"
    train_cell("cell", tiny_config("data.gamma=1", "train.batch_size=0", "train.epochs=20",
                                   "log.snapshots=8"), path)
    analyze_path(path, ["binning"], progress=False)
    analyze_path(path, ["binning"], {"labels": "soft"}, progress=False)
    analyze_path(path, ["kde"], {"every": "4", "labels": "soft"}, progress=False)
    bound_path(path)
    return path


def test_claims_file_schema_and_soft_labels(noisy):
    with h5py.File(noisy, "r") as run:  # the run file keeps p(y=1|x) of its noisy labels
        np.testing.assert_array_equal(run["data/p_y1"][()], tishby12_p_y1(1.0, 7.6))
    (written,) = judge_path(noisy, rules=Rules(noise_z=2.5))
    assert written == noisy.with_name("cell.claims.json")
    doc = json.loads(written.read_text())  # plain JSON: no NaN or Infinity tokens
    assert doc["schema"] == "ibrepro-claims/1" and doc["run"] == "cell.h5"
    assert doc["rules"]["noise_z"] == 2.5
    assert {name: g["labels"] for name, g in doc["groups"].items()} == {
        "binning_n30_lo-1_hi1": "drawn", "binning_n30_lo-1_hi1_soft": "soft",
        "kde_var0.001_upper_soft_every4": "soft", "kde_var0.001_lower_soft_every4": "soft"}
    for group in doc["groups"].values():
        assert sorted(group["claims"]) == CLAIM_NAMES
        for claim in group["claims"].values():
            assert claim["verdict"] in WORDS and "thresholds" in claim["rule"]
    # claim iii is judged on the soft-label groups only, and the drawn group says where
    drawn, soft = doc["groups"]["binning_n30_lo-1_hi1"], doc["groups"]["binning_n30_lo-1_hi1_soft"]
    assert drawn["claims"]["iii"]["verdict"] == NOT_APPLICABLE
    assert drawn["claims"]["iii"]["reason"].endswith("see its soft-label group binning_n30_lo-1_hi1_soft")
    assert "gap_to_bound" not in drawn["layers"][0]
    assert soft["partition"] == "its own partition (binning)"
    assert soft["claims"]["iii"]["verdict"] != NOT_APPLICABLE
    # soft-label I(T;Y) of a real encoder never lies above the IB bound, nor above I(X;Y);
    # the one draw of labels carries more than p(y|x) allows
    with h5py.File(noisy.with_name("cell.mi.h5"), "r") as f:
        i_xy = f["ib-bound"].attrs["i_xy"]
        soft_ity = f["binning_n30_lo-1_hi1_soft"]["ity"][:, -1, -1]
        drawn_ity = f["binning_n30_lo-1_hi1"]["ity"][:, -1, -1]
    assert np.all(soft_ity <= i_xy + 1e-9) and np.all(drawn_ity > soft_ity)
    gaps = [row["gap_to_bound"] for row in soft["layers"]]
    assert all(claimsfile.number(g[0]) >= -1e-6 for g in gaps)
    kde = doc["groups"]["kde_var0.001_upper_soft_every4"]
    assert kde["claims"]["iii"]["verdict"] != NOT_APPLICABLE
    assert "binning group's partition" in kde["partition"]
    missing = claimsfile.read(judge_path(noisy, ("binning_n30_lo-1_hi1",))[0])
    assert missing["groups"]["binning_n30_lo-1_hi1"]["claims"]["iii"]["reason"].endswith(
        f"run `ibrepro analyze {noisy} --estimator binning --set labels=soft`")


def test_a_diverged_run_makes_every_claim_not_applicable(noisy, tmp_path):
    path = tmp_path / "cell.h5"
    for name in ("cell.h5", "cell.mi.h5"):
        shutil.copy(noisy.with_name(name), tmp_path / name)
    with h5py.File(path, "r+") as run:
        run["metrics/train_loss"][:, -1] = np.nan  # the loss blew up
    (written,) = judge_path(path)
    for group in json.loads(written.read_text())["groups"].values():
        for claim in group["claims"].values():
            assert claim["verdict"] == NOT_APPLICABLE
            assert claim["reason"] == "training diverged (final train loss not finite)"


def test_cli_claims_and_its_errors(noisy, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["claims", str(noisy), "--estimator", "binning",
                                 "--rule", "compression_share=0.7"])
    assert result.exit_code == 0, result.output
    doc = claimsfile.read(claims_path(noisy))
    assert list(doc["groups"]) == ["binning_n30_lo-1_hi1", "binning_n30_lo-1_hi1_soft"]
    assert doc["rules"]["compression_share"] == 0.7
    assert "0.7" in doc["groups"]["binning_n30_lo-1_hi1"]["claims"]["i"]["rule"]["text"]
    for args in (["claims", str(tmp_path / "missing.h5")],
                 ["claims", str(noisy), "--rule", "bogus=1"]):
        result = runner.invoke(app, args)
        assert result.exit_code != 0 and len(result.output.strip().splitlines()) == 1


def test_unknown_estimator_name_is_an_error_not_an_empty_file(noisy, tmp_path):
    cell = tmp_path / "cell.h5"
    for name in ("cell.h5", "cell.mi.h5"):
        shutil.copy(noisy.with_name(name), tmp_path / name)
    runner = CliRunner()
    for command in ("claims", "report", "plot"):
        result = runner.invoke(app, [command, str(cell), "--estimator", "binnig"])
        lines = result.output.strip().splitlines()
        assert result.exit_code != 0 and len(lines) == 1, result.output
        assert "'binnig'" in lines[0] and "binning-layer" in lines[0] and "binning_n30_lo-1_hi1_soft" in lines[0]
    assert not (tmp_path / "cell.claims.json").exists() and not (tmp_path / "report.md").exists()
    result = runner.invoke(app, ["claims", str(cell), "--estimator", "binning_n30_lo-1_hi1_soft"])  # a group name
    assert result.exit_code == 0, result.output
    assert list(claimsfile.read(tmp_path / "cell.claims.json")["groups"]) == ["binning_n30_lo-1_hi1_soft"]


def test_staleness(noisy, tmp_path):
    target = tmp_path / "x.claims.json"
    claimsfile.write(target, {"schema": claimsfile.SCHEMA, "rules": Rules().as_dict()})
    assert not claimsfile.is_stale(target, [noisy], Rules().as_dict())
    assert claimsfile.is_stale(target, [noisy], Rules(min_speedup=3).as_dict())
    noisy.touch()
    target.touch()
    estimates = noisy.with_name("cell.mi.h5")
    later = target.stat().st_mtime + 5
    os.utime(estimates, (later, later))
    assert claimsfile.is_stale(target, [noisy, estimates], Rules().as_dict())
    target.write_text("{broken")
    assert claimsfile.is_stale(target, [], Rules().as_dict())


def test_claim_iii_verdict_follows_the_layers_self_consistency(noisy, tmp_path):
    """The noisy cell with its last snapshot's layers replaced by activations that bin into
    fixed-point partitions of the 12-bit inputs (every input in its KL-closest cluster), then
    into random ones, and its soft-label I(T;Y) set on the IB bound: claim iii is supported,
    then not, on the self-consistency alone."""
    group = "binning_n30_lo-1_hi1_soft"
    centres = uniform_edges(-1.0, 1.0, 30)[:-1] + 1.0 / 29  # one per bin
    found = {}
    for kind in ("fixed point", "random"):
        cell = tmp_path / kind.replace(" ", "_") / "cell.h5"
        cell.parent.mkdir()
        for name in ("cell.h5", "cell.mi.h5"):
            shutil.copy(noisy.with_name(name), cell.with_name(name))
        rng = np.random.default_rng(0)
        with h5py.File(cell, "r+") as run:
            p_y1 = run["data/p_y1"][()]
            p_y = np.stack([1 - p_y1, p_y1], axis=1)
            last = complete_epochs(run) - 1
            for layer in run["activations"].values():
                for s in range(layer.shape[0]):
                    clusters = (fixed_point_encoder(rng, p_y, 8) if kind == "fixed point"
                                else rng.integers(0, 8, p_y.shape[0]))
                    acts = np.zeros(layer.shape[2:], np.float32)
                    acts[:, 0] = centres[clusters]
                    layer[s, last] = acts
        with h5py.File(cell.with_name("cell.mi.h5"), "r+") as estimates:
            bound, soft = estimates["ib-bound"], estimates[group]
            ity = soft["ity"][()]
            ity[:, -1] = np.interp(soft["ixt"][:, -1], bound["ixt"][()], bound["ity"][()])
            soft["ity"][...] = ity
        found[kind] = claimsfile.read(judge_path(cell, (group,))[0])["groups"][group]
    fixed, shuffled = found["fixed point"], found["random"]
    assert fixed["claims"]["iii"]["verdict"] == SUPPORTED
    assert shuffled["claims"]["iii"]["verdict"] == NOT_SUPPORTED
    assert shuffled["claims"]["iii"]["reason"] == "gap to the IB bound passes; self-consistency fails"
    assert all(row["sc_share"][0] == 1.0 for row in fixed["layers"])
    assert all(abs(row["sc_excess"][0]) < 0.2 for row in shuffled["layers"])


def test_full_batch_makes_claim_ii_not_applicable(noisy):
    doc = claimsfile.read(judge_path(noisy)[0])
    claim = doc["groups"]["binning_n30_lo-1_hi1"]["claims"]["ii"]
    assert claim["verdict"] == NOT_APPLICABLE
    assert claim["reason"] == ("gradient SNR undefined: one minibatch per epoch (full-batch "
                               "gradient descent), so the gradient std is 0")


@pytest.mark.parametrize("name, params", [
    ("binning", {}), ("binning-layer", {}), ("binning-layer", {"range": "global"}),
    ("adaptive", {"n_bins": 8})])
def test_partition_reproduces_the_estimators_own_information(name, params):
    """Self-consistency runs on each group's own partition: the estimator's soft-label numbers
    are those of the partition's clusters."""
    rng = np.random.default_rng(6)
    acts = np.tanh(rng.normal(size=(3, 500, 3)) * 1.5).astype(np.float32)
    y = rng.integers(0, 3, 500)
    p_y = rng.dirichlet(np.ones(3), 500)
    est = estimators.get(name)
    values = est.resolve(params, {"dataset": "tishby12"})
    block = Block(acts, np.arange(3))
    context = est.prepare(iter([block]), values) if est.prepare else None
    ixt, ity = est.estimate(block, Labels.from_labels(y, p_y), values, context)[""]
    partition = partition_of(name, dict(values), None)
    clusters = np.stack([symbols(partition, acts[s], None if context is None else context[s]) for s in range(3)])
    got = soft_information(clusters, p_y)
    np.testing.assert_allclose(got[0], ixt, atol=1e-12)
    np.testing.assert_allclose(got[1], ity, atol=1e-12)


def test_claims_do_not_load_the_report_stage():
    """Claims read results from the analysis stage: importing the judge loads no matplotlib."""
    import subprocess
    import sys

    code = ("import sys, ibrepro.claims.judge; "
            "print(sorted(m for m in sys.modules if m.startswith(('matplotlib', 'ibrepro.report'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_claim_iii_places_only_bit_scale_estimates_against_the_bound(noisy, tmp_path):
    """kNN's I(X;T) is a differential entropy: no gap to the IB bound is computed for it (the
    figures draw no bound on its panel either), and the reason says why."""
    cell = tmp_path / "cell.h5"
    for name in ("cell.h5", "cell.mi.h5"):
        shutil.copy(noisy.with_name(name), cell.with_name(name))
    analyze_path(cell, ["knn"], {"every": "4"}, progress=False)
    doc = claimsfile.read(judge_path(cell)[0])
    (knn,) = [g for g in doc["groups"].values() if g["estimator"] == "knn"]
    assert "cannot be placed against the IB curve" in knn["claims"]["iii"]["reason"]
    assert "gap_to_bound" not in knn["layers"][0]
    assert "cannot be placed" not in doc["groups"]["binning_n30_lo-1_hi1_soft"]["claims"]["iii"]["reason"]


def test_self_consistency_reads_the_activations_of_the_groups_last_epoch(noisy):
    from ibrepro.claims.inputs import activations_at

    with h5py.File(noisy, "r") as run:
        epochs = run["epochs"][: complete_epochs(run)]
        stored = run["activations/1"][()]
    seeds = np.arange(stored.shape[0])
    for index in (0, len(epochs) // 2, len(epochs) - 1):
        np.testing.assert_array_equal(activations_at(noisy, seeds, int(epochs[index]))[1], stored[:, index])
    assert activations_at(noisy, seeds, int(epochs[-1]) + 1) is None
