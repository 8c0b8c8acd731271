"""Claim rules on synthetic runs with known answers, their calibration, bootstrap verdicts."""

import numpy as np
import pytest

from ibrepro.claims import calibration, verdicts
from ibrepro.claims import rules as claim_rules
from ibrepro.claims.calibration import EPOCHS, SCENARIOS
from ibrepro.claims.rules import Rules, parse_rules
from ibrepro.claims.verdicts import INCONCLUSIVE, NOT_APPLICABLE, NOT_MEASURABLE, NOT_SUPPORTED, SUPPORTED
from ibrepro.errors import UserError
from ibrepro.ib.fixedpoint import nearest_decoder_share

RULES = Rules()


@pytest.mark.parametrize("claim", sorted(SCENARIOS))
def test_each_rule_is_calibrated_on_null_and_effect_runs(claim):
    """Null: "supported" in at most 5 % of draws; effect: in at least 80 % (fixed RNG seed)."""
    for name, (effect, scenario) in SCENARIOS[claim].items():
        rate = calibration.supported_rate(scenario, draws=20, seed=11)
        assert (rate >= 0.8) if effect else (rate <= 0.05), (claim, name, rate)


def test_exact_words_on_the_issue_examples():
    rng = np.random.default_rng(0)
    assert calibration.i_null_last_dip(rng, RULES).verdict == NOT_SUPPORTED  # was "supported"
    assert calibration.v_null_trendless(rng, RULES).verdict == NOT_SUPPORTED  # was "supported"
    above = claim_rules.bound(np.full((5, 6), -0.7), "", None, "drawn", True, RULES)  # above the bound
    assert above.verdict == NOT_SUPPORTED
    assert above.measured["abs_gap_bits"][0] == pytest.approx(0.7)
    assert calibration.i_effect(rng, RULES).verdict == SUPPORTED


def test_layers_at_the_ceiling_are_not_measurable_and_not_counted():
    rng = np.random.default_rng(1)
    ixt = calibration.hump(rng, np.full((10, 3), 50.0), np.full((10, 3), 1.0))
    ixt[:, :, :2] = 12.0 - np.abs(rng.normal(0, 0.01, ixt[:, :, :2].shape))  # layers 1, 2 stuck
    claim = claim_rules.compression(EPOCHS, ixt, 12.0, RULES)
    assert claim.verdict == SUPPORTED and claim.measured["layers_at_ceiling"] == [1, 2]
    assert claim.measured["compressing_seed_layers"] == [10, 10]
    stuck = claim_rules.compression(EPOCHS, ixt[:, :, :2], 12.0, RULES)
    assert stuck.verdict == NOT_MEASURABLE and "ceiling" in stuck.reason


def test_undefined_snr_makes_claim_ii_not_applicable():
    rng = np.random.default_rng(2)
    ixt = calibration.hump(rng, np.full((10, 3), 50.0), np.full((10, 3), 1.0))
    why = "gradient SNR undefined: one minibatch per epoch"
    claim = claim_rules.coincidence(EPOCHS, ixt, None, why, RULES)
    assert (claim.verdict, claim.reason) == (NOT_APPLICABLE, why)


def test_claim_iii_with_noisy_labels_needs_the_gap_and_self_consistency():
    gap = np.full((6, 4), 0.01)
    consistent = np.full((6, 4), 0.9)
    claim = claim_rules.bound(gap, "", consistent, "soft", False, RULES)
    assert claim.verdict == SUPPORTED and claim.measured["sc_excess"][0] == pytest.approx(0.9)
    assert "I(T;Y) from soft labels, p(y|x)" in claim.rule and claim.thresholds["sc_excess"] == RULES.sc_excess
    far = claim_rules.bound(gap, "", np.full((6, 4), 0.1), "soft", False, RULES)
    assert (far.verdict, far.reason) == (NOT_SUPPORTED, "gap to the IB bound passes; self-consistency fails")
    off = claim_rules.bound(gap + 0.5, "", consistent, "soft", False, RULES)
    assert (off.verdict, off.reason) == (NOT_SUPPORTED, "gap to the IB bound fails; self-consistency passes")
    straddle = gap + np.array([0.0, 0.1, 0.0, 0.1, 0.0, 0.1])[:, None]  # mean 0.06, wide interval
    assert claim_rules.bound(straddle, "", consistent, "soft", False, RULES).verdict == INCONCLUSIVE
    missing = claim_rules.bound(None, "no IB bound", consistent, "soft", False, RULES)
    assert (missing.verdict, missing.reason) == (NOT_APPLICABLE, "no IB bound")
    trivial = claim_rules.bound(gap, "", np.full((6, 4), np.nan), "soft", False, RULES)
    assert trivial.verdict == NOT_MEASURABLE and "random partitions" in trivial.reason


def test_claim_iii_with_deterministic_labels_is_judged_on_the_gap_alone():
    on = claim_rules.bound(np.full((6, 4), 0.01), "", None, "drawn", True, RULES)
    assert on.verdict == SUPPORTED and "sc_excess" not in on.measured
    assert "self-consistency not applicable" in on.reason and "deterministic" in on.reason
    assert "drawn labels, deterministic" in on.rule and "sc_excess" not in on.thresholds
    off = claim_rules.bound(np.full((6, 4), 0.3), "", None, "drawn", True, RULES)
    assert off.verdict == NOT_SUPPORTED and off.reason.startswith("gap to the IB bound fails; "
                                                                  "self-consistency not applicable")


def test_claim_iii_verdict_follows_the_encoders_self_consistency():
    """The same synthetic cell (on the bound, noisy labels) with fixed-point encoders, then
    with random partitions of the same inputs."""
    rng = np.random.default_rng(4)
    assert calibration.iii_fixed_points(rng, RULES).verdict == SUPPORTED
    assert calibration.iii_null_random(rng, RULES).verdict == NOT_SUPPORTED


def test_fixed_point_encoders_are_fixed_points():
    rng = np.random.default_rng(8)
    _, p_y, _ = calibration.sc_problem(rng, 256)
    for k in (2, 5, 17):
        clusters = calibration.fixed_point_encoder(rng, p_y, k)
        assert nearest_decoder_share(np.full(256, 1 / 256), p_y, clusters) == 1.0
        assert 2 <= np.unique(clusters).size <= k


def test_claim_iv_on_known_epochs():
    faster = {1: np.full(8, 4000.0), 2: np.full(8, 1500.0), 3: np.array([400.0] * 7 + [np.nan])}
    claim = claim_rules.depth(faster, "last hidden layer", RULES)
    assert claim.verdict == SUPPORTED and claim.measured["spearman"] == pytest.approx(-1.0)
    assert claim.measured["speedup"][0] == pytest.approx(10.0)
    slower = {1: np.full(8, 400.0), 2: np.full(8, 900.0)}
    assert claim_rules.depth(slower, "x", RULES).verdict == NOT_SUPPORTED
    assert claim_rules.depth({3: np.full(4, 10.0)}, "x", RULES).verdict == NOT_APPLICABLE


def test_claim_iv_when_the_shallowest_never_compresses():
    # tishby12_depth at 50 seeds: one hidden layer never reaches the compressed state, deeper
    # networks do; the speed-up is infinite in every resample, which is above any threshold
    never = np.full(8, np.nan)
    deeper = {1: never, 2: np.full(8, 8000.0), 3: np.full(8, 5000.0)}
    claim = claim_rules.depth(deeper, "last hidden layer", RULES)
    assert claim.measured["speedup"] == [np.inf, np.inf, np.inf]
    assert claim.verdict == SUPPORTED
    # neither end ever compresses: the ratio is undefined, not evidence of a speed-up
    neither = verdicts.ratio_interval(np.full(8, np.inf), np.full(8, np.inf), np.median)
    assert np.isnan(neither[0]) and neither[1:] == [-np.inf, np.inf]
    assert verdicts.above(neither, 2.0) == INCONCLUSIVE
    # the deepest rarely compresses: resamples without it are undefined and widen the interval
    rare = claim_rules.depth({1: never, 3: np.array([np.nan] * 7 + [300.0])}, "x", RULES)
    assert rare.measured["speedup"][1] == -np.inf
    assert verdicts.above(rare.measured["speedup"], 2.0) == INCONCLUSIVE


def test_claim_v_applies_only_to_small_training_sets():
    rng = np.random.default_rng(3)
    plenty = claim_rules.small_data(EPOCHS, calibration._ity(rng, np.full((10, 2), 0.15), 0.004),
                                    0.85, RULES)
    assert plenty.verdict == NOT_APPLICABLE and "0.85" in plenty.reason
    assert plenty.measured["late_fall_share"][0] == 1.0  # numbers still shown


def test_bootstrap_interval_and_verdict_on_an_interval():
    assert verdicts.interval(np.full(7, 0.3)) == [0.3, 0.3, 0.3]
    value, low, high = verdicts.interval(np.arange(10.0))
    assert value == 4.5 and 2.5 < low < 4.5 < high < 6.5
    one = verdicts.interval([0.9])
    assert one[0] == 0.9 and np.isnan(one[1]) and verdicts.above(one, 0.5) == INCONCLUSIVE
    assert verdicts.above([0.7, 0.6, 0.8], 0.5) == SUPPORTED
    assert verdicts.above([0.45, 0.3, 0.5], 0.5) == NOT_SUPPORTED
    assert verdicts.above([0.55, 0.45, 0.65], 0.5) == INCONCLUSIVE
    assert verdicts.at_most([0.02, 0.01, 0.04], 0.05) == SUPPORTED


def test_training_fit():
    acc = np.array([[0.5, 0.52], [0.5, 0.53], [0.5, 0.55]])
    assert "did not fit" in verdicts.training_fit(acc, None, chance=0.517, margin=0.05)
    loss = np.array([[0.7, np.nan], [0.7, np.inf], [0.7, 0.1]])
    assert "diverged" in verdicts.training_fit(acc + 0.4, loss, 0.517, 0.05)
    assert verdicts.training_fit(acc + 0.4, loss[2:], 0.517, 0.05) == ""


def test_parse_rules():
    rules = parse_rules(["compression_share=0.6", "noise_z=2"])
    assert (rules.compression_share, rules.noise_z, rules.min_speedup) == (0.6, 2.0, 2.0)
    for bad in ("nonsense=1", "compression_share", "compression_share=x", "noise_z=-1"):
        with pytest.raises(UserError, match="--rule"):
            parse_rules([bad])
