"""Tests of phase detection and claim verdicts on synthetic curves with known answers."""

import numpy as np
import pytest

from ibrepro.claims import rules as claims


def logged_epochs(total=8000, points=400):
    """The paper's logging scheme: every epoch early, then log-spaced (DESIGN §3)."""
    return np.unique(np.logspace(0, np.log2(total), points, base=2).astype(int)) - 1


EPOCHS = logged_epochs()


def snr_curves(log_snr):
    """mean and std norms (S, E, L) with the given log10 SNR and an arbitrary std."""
    std = 0.3 * (EPOCHS[None, :, None] + 1.0) ** -0.4 * np.ones_like(log_snr)
    return std * 10.0**log_snr, std


def test_drift_diffusion_power_law_crosses_at_its_known_epoch():
    crossings = np.array([[350.0, 120.0], [2000.0, 33.3]])  # (S, L)
    with np.errstate(divide="ignore"):
        log_snr = -(np.log10(EPOCHS)[None, :, None] - np.log10(crossings)[:, None, :])
    got = claims.drift_diffusion_epoch(EPOCHS, *snr_curves(log_snr))
    np.testing.assert_allclose(got, crossings, rtol=1e-9)


def test_drift_diffusion_with_noise_lands_near_the_crossing():
    rng = np.random.default_rng(0)
    with np.errstate(divide="ignore"):
        log_snr = -(np.log10(EPOCHS) - np.log10(350.0))[None, :, None] * np.ones((20, 1, 1))
    log_snr = log_snr + rng.normal(0, 0.05, log_snr.shape)
    got = claims.drift_diffusion_epoch(EPOCHS, *snr_curves(log_snr))
    assert np.all(np.abs(np.log(got / 350.0)) < np.log(1.25))


def test_drift_diffusion_nan_without_a_crossing():
    shape = (1, EPOCHS.size, 1)
    for level in (2.0, 0.5):  # always drift / always diffusion
        got = claims.drift_diffusion_epoch(EPOCHS, *snr_curves(np.full(shape, np.log10(level))))
        assert np.isnan(got).all()
    with np.errstate(divide="ignore"):  # crosses upward only
        rising = (np.log10(EPOCHS) - np.log10(350.0))[None, :, None]
    assert np.isnan(claims.drift_diffusion_epoch(EPOCHS, *snr_curves(rising))).all()


def test_drift_diffusion_takes_the_last_downward_crossing():
    with np.errstate(divide="ignore"):
        u = np.log10(EPOCHS)
    # above 1 until 50, below until 200, above until 1000, below after
    log_snr = np.where(u < np.log10(50), 0.5, np.where(u < np.log10(200), -0.5,
                       np.where(u < np.log10(1000), 0.5, -0.5)))[None, :, None]
    got = claims.drift_diffusion_epoch(EPOCHS, *snr_curves(log_snr))[0, 0]
    below = EPOCHS[EPOCHS >= 1000][0]
    above = EPOCHS[EPOCHS < 1000][-1]
    assert above < got < below


def test_gradient_stats_shape_is_checked():
    with pytest.raises(ValueError):
        claims.drift_diffusion_epoch(EPOCHS, np.ones((2, 5, 1)), np.ones((2, 5, 1)))


def hump(peak_epoch, height=3.0, base=5.0, width=0.3):
    u = np.log10(EPOCHS + 1.0)
    return base + height * np.exp(-((u - np.log10(peak_epoch + 1.0)) ** 2) / (2 * width**2))


def test_compression_onset_and_share_of_a_hump():
    peaks = np.array([EPOCHS[100], EPOCHS[150], EPOCHS[250]])
    ixt = np.stack([hump(p) for p in peaks], axis=1)[None]  # (1, E, 3)
    np.testing.assert_array_equal(claims.compression_onset(EPOCHS, ixt)[0], peaks)
    last = EPOCHS[-1]
    np.testing.assert_allclose(claims.compression_share(EPOCHS, ixt)[0], (last - peaks) / last)


def test_no_compression_gives_nan_onset_and_zero_share():
    rising = np.log1p(EPOCHS)[None, :, None].astype(float)
    flat_then_tiny_dip = np.full((1, EPOCHS.size, 1), 12.0)
    flat_then_tiny_dip[0, -50:, 0] = 11.95  # below min_drop_bits = 0.1
    for ixt in (rising, flat_then_tiny_dip):
        assert np.isnan(claims.compression_onset(EPOCHS, ixt)).all()
        np.testing.assert_array_equal(claims.compression_share(EPOCHS, ixt), 0.0)
    assert np.isnan(claims.compression_share(EPOCHS, np.full((1, EPOCHS.size, 1), np.nan))).all()


def piecewise(peak_epoch, end_epoch, peak=10.0, final=4.0):
    """Rise linearly to `peak` at peak_epoch, fall linearly to `final` at end_epoch, then flat."""
    return np.interp(EPOCHS, [0, peak_epoch, end_epoch, EPOCHS[-1]], [2.0, peak, final, final])


def test_epochs_to_compressed_of_a_linear_fall():
    cases = [(EPOCHS[120], 3000.0), (EPOCHS[100], 600.0)]
    ixt = np.stack([piecewise(p, q) for p, q in cases], axis=1)[None]
    got = claims.epochs_to_compressed(EPOCHS, ixt, fraction=0.1)[0]
    for k, (p, q) in enumerate(cases):
        target_epoch = p + 0.9 * (q - p)  # where the fall reaches final + 0.1 (peak - final)
        assert got[k] == EPOCHS[EPOCHS >= target_epoch - 1e-9][0]
    assert np.isnan(claims.epochs_to_compressed(EPOCHS, np.log1p(EPOCHS)[None, :, None])).all()


def test_late_ity_drop_flags_a_drop_and_not_a_plateau():
    peak = EPOCHS[200]
    plateau = np.interp(EPOCHS, [0, peak, EPOCHS[-1]], [0.1, 0.9, 0.9])
    dropping = np.interp(EPOCHS, [0, peak, EPOCHS[-1]], [0.1, 0.9, 0.7])
    ity = np.stack([plateau, dropping], axis=1)[None]
    result = claims.late_ity_drop(EPOCHS, ity, threshold_bits=0.05)
    np.testing.assert_array_equal(result.flagged, [[False, True]])
    np.testing.assert_allclose(result.drop, [[0.0, 0.2]], atol=1e-12)
    assert result.peak_epoch[0, 1] == peak


def test_phases_coincide_within_a_factor():
    drift = np.array([350.0, 350.0, np.nan, 350.0])
    onset = np.array([500.0, 800.0, 400.0, 175.0])
    np.testing.assert_array_equal(claims.phases_coincide(drift, onset, 2.0),
                                  [True, False, False, True])


def test_generalisation_gap_is_nan_safe():
    train = np.array([[1.0, 0.5]])
    np.testing.assert_allclose(claims.generalisation_gap(np.array([[1.5, 1.0]]), train),
                               [[0.5, 0.5]])
    assert np.isnan(claims.generalisation_gap(None, train)).all()


def test_summary_plain_and_log():
    values = np.array([[100.0, 1.0], [1000.0, 3.0], [np.nan, 5.0]])
    plain = claims.summary(values)
    np.testing.assert_allclose(plain.center, [550.0, 3.0])
    np.testing.assert_allclose(plain.spread, [450.0, np.sqrt(8 / 3)])
    np.testing.assert_array_equal(plain.count, [2, 3])
    log = claims.summary(values, log=True)
    np.testing.assert_allclose(log.center[0], np.sqrt(1e5))
    np.testing.assert_allclose(log.spread[0], 10**0.5)


def test_verdicts():
    seeds = 4
    out = claims.verdicts(
        compression_share=np.full((seeds, 3), 0.8),
        coincide=np.array([[True, True], [True, False], [True, True], [False, True]]),
        bound_gap=np.full((seeds, 3), 0.01),
        residual=np.full((seeds, 3), 0.2),
        depths=np.array([1, 2, 3, 4]),
        depth_epochs=np.array([[4000.0] * seeds, [2000.0] * seeds, [900.0] * seeds,
                               [np.nan, 300.0, 400.0, 500.0]]),
        train_fraction=0.05,
        late_drop=np.array([[False, True], [False, False], [True, True], [True, False]]),
    )
    assert out["i"].status == claims.SUPPORTED
    assert out["ii"].status == claims.SUPPORTED and out["ii"].numbers["share"] == 0.75
    assert out["iii"].status == claims.NOT_SUPPORTED  # near the bound, not self-consistent
    assert out["iv"].status == claims.SUPPORTED
    assert out["iv"].numbers["speedup"] == pytest.approx(10.0)
    assert out["iv"].numbers["spearman"] == pytest.approx(-1.0)
    assert out["v"].status == claims.SUPPORTED and out["v"].numbers["share"] == 0.75


def test_verdicts_not_supported_and_not_applicable():
    out = claims.verdicts(
        compression_share=np.full((3, 2), 0.2),
        depths=np.array([1, 2, 3]),
        depth_epochs=np.array([[500.0, 600.0], [800.0, 700.0], [np.nan, np.nan]]),
        train_fraction=0.85,
        late_drop=np.ones((3, 2), bool),
    )
    assert out["i"].status == claims.NOT_SUPPORTED
    assert out["ii"].status == claims.NOT_APPLICABLE  # no gradient statistics
    assert out["iii"].status == claims.NOT_APPLICABLE
    assert out["iv"].status == claims.NOT_SUPPORTED  # deeper is slower (never, for depth 3)
    assert out["v"].status == claims.NOT_APPLICABLE  # plenty of data
    single = claims.verdicts(depths=np.array([3]), depth_epochs=np.array([[100.0]]))
    assert single["iv"].status == claims.NOT_APPLICABLE
