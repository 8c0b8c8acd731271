"""Tests of the phase measures on synthetic curves with known answers."""

import numpy as np
import pytest

from ibrepro.claims import phases as claims


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


def test_late_fall_counts_a_drop_and_not_a_plateau():
    peak = EPOCHS[200]
    plateau = np.interp(EPOCHS, [0, peak, EPOCHS[-1]], [0.1, 0.9, 0.9])
    dropping = np.interp(EPOCHS, [0, peak, EPOCHS[-1]], [0.1, 0.9, 0.7])
    ity = np.stack([plateau, dropping], axis=1)[None]
    result = claims.fall(EPOCHS, ity, min_bits=0.05)
    np.testing.assert_array_equal(result.counts, [[False, True]])
    np.testing.assert_allclose(result.fall, [[0.0, 0.2]], atol=0.01)  # a median shaves a sharp peak
    assert EPOCHS[result.peak_index[0, 1]] == peak


def test_a_fall_must_beat_the_epoch_to_epoch_noise():
    rng = np.random.default_rng(1)
    noisy = 0.9 + rng.normal(0, 0.03, (20, EPOCHS.size, 1))  # trendless: peak - last > 0 by chance
    result = claims.fall(EPOCHS, noisy, min_bits=0.05)
    assert np.all(result.fall > 0) and not result.counts.any()
    np.testing.assert_allclose(np.median(result.noise), 0.03, rtol=0.15)
    dip = np.full((1, EPOCHS.size, 1), 12.0)
    dip[0, -1, 0] -= 0.15  # one low point at the end: not compression
    assert np.isnan(claims.compression_onset(EPOCHS, dip)).all()


def test_running_median_matches_a_plain_loop():
    rng = np.random.default_rng(2)
    values = rng.normal(size=(2, 30, 2))
    for data in (values, np.where(rng.uniform(size=values.shape) < 0.2, np.nan, values)):
        want = np.array([[[np.nanmedian(data[s, max(0, e - 2): e + 3, k]) for k in range(2)]
                          for e in range(30)] for s in range(2)])
        np.testing.assert_allclose(claims.running_median(data, 5), want)


def test_layers_at_the_ceiling():
    ixt = np.full((3, EPOCHS.size, 3), 11.99)
    ixt[:, :, 1] = 11.0
    ixt[1, 5, 2] = 11.9  # one seed leaves the ceiling once
    np.testing.assert_array_equal(claims.at_ceiling(ixt, 12.0, 0.05), [True, False, False])


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




# ---------------------------------------------------------------- estimator caveats

def _planes(rng, seeds=3, epochs=40, layers=4):
    """Well-behaved curves: I(X;T) and I(T;Y) fall with depth, I(T;Y) below H(Y) = 1."""
    t = np.arange(epochs)[None, :, None]
    k = np.arange(layers)[None, None, :]
    ixt = 8 - k + 0.05 * rng.standard_normal((seeds, epochs, layers))
    ity = 0.9 * (1 - np.exp(-t / 5)) * (1 - 0.1 * k) + 0.01 * rng.standard_normal((seeds, epochs, layers))
    return np.arange(epochs), ixt, ity


def test_caveats_flag_each_broken_inequality_and_only_those():
    from ibrepro.claims.caveats import estimate_caveats

    rng = np.random.default_rng(3)
    epochs, ixt, ity = _planes(rng)
    assert estimate_caveats("binning", epochs, ixt, ity, 1.0) == []
    dpi = ity.copy()
    dpi[:, :, 2] += 0.2  # layer 3 ends above layer 2: more than a deeper layer can carry
    (caveat,) = estimate_caveats("binning", epochs, ixt, dpi, 1.0)
    assert caveat.layer == 2 and caveat.quantity == "ity" and "data-processing" in caveat.text
    assert "above layer 2's" in caveat.text
    high = ity + 0.15  # layer 1 reaches 1.05 > H(Y) = 1, layer 2 0.96
    assert [(c.layer, "H(Y)" in c.text) for c in estimate_caveats("kde", epochs, ixt, high, 1.0)] == [(0, True)]
    negative = ixt.copy()
    negative[:, 5:, 0] = -0.5
    assert [c.layer for c in estimate_caveats("binning", epochs, negative, ity, 1.0)] == [0]
    # kNN's I(X;T) is differential: negative values are no break, the softmax output is flagged
    knn = estimate_caveats("knn", epochs, negative, ity, 1.0)
    assert [(c.layer, c.quantity) for c in knn] == [(3, "ixt")] and "jitter" in knn[0].text


def test_caveats_ignore_a_difference_within_the_curves_noise():
    from ibrepro.claims.caveats import estimate_caveats

    rng = np.random.default_rng(4)
    epochs, ixt, ity = _planes(rng)
    noisy = ity + 0.1 * rng.standard_normal(ity.shape)  # noise 0.1 bits per epoch
    noisy[:, :, 2] = noisy[:, :, 1] + 0.05  # above layer 2 by less than its noise
    assert not [c for c in estimate_caveats("binning", epochs, ixt, noisy, 2.0) if c.layer == 2]
