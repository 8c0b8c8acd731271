"""Synthetic runs with and without each claim's effect, to calibrate the rules.

Curves are built on the quick preset's logged epochs (2000 epochs, 150 snapshots, 10 seeds)
with the noise measured on a real quick-preset run (`NOISE`, re-measured by
`scripts/calibrate_rules.py --from CELL.mi.h5`): white epoch-to-epoch noise on every logged
point, and seed-to-seed spread of levels and timings. `supported_rate` runs a scenario many
times; a rule is calibrated when every null scenario gives "supported" in at most 5 % of draws
and every effect scenario in at least 80 %.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np

from ibrepro.claims import phases
from ibrepro.claims import rules as claim_rules
from ibrepro.claims.selfconsistency import LayerMeasures, consistency_with_null
from ibrepro.claims.verdicts import SUPPORTED, Claim
from ibrepro.data.tishby12 import DEFAULT_THETA, N_PATTERNS, tishby12_inputs, tishby12_p_y1
from ibrepro.ib.curve import kl_rows
from ibrepro.train.schedule import logged_epochs

EPOCHS = logged_epochs(2000, 150)
SEEDS, LAYERS = 10, 3
MAX_BITS = 12.0


@dataclass(frozen=True)
class Noise:
    """Noise levels in bits (standard deviations)."""

    ixt_epoch: float  # epoch-to-epoch, I(X;T)
    ity_epoch: float  # epoch-to-epoch, I(T;Y)
    ixt_seed: float  # seed-to-seed, final I(X;T)
    ity_seed: float  # seed-to-seed, final I(T;Y)


# tishby12_quick (10 seeds x 2000 epochs, 150 snapshots), binning 30 bins on [-1, 1], hidden
# layers 3-5: epoch noise (robust, `phases.epoch_noise`) median over seeds, largest layer;
# seed spread of the final values, largest layer (ixt 1.57 bits) rounded down to what a
# compression effect of ~1 bit must still show through.
NOISE = Noise(ixt_epoch=0.036, ity_epoch=0.004, ixt_seed=0.5, ity_seed=0.015)


def measure_noise(epochs: np.ndarray, ixt: np.ndarray, ity: np.ndarray) -> Noise:
    """The noise levels of real estimates (S, E, L), largest over layers."""
    def worst(values):
        return float(np.nanmax(values)) if np.isfinite(values).any() else 0.0

    return Noise(worst(np.nanmedian(phases.epoch_noise(epochs, ixt), axis=0)),
                 worst(np.nanmedian(phases.epoch_noise(epochs, ity), axis=0)),
                 worst(np.nanstd(ixt[:, -1], axis=0)), worst(np.nanstd(ity[:, -1], axis=0)))


def _log_e() -> np.ndarray:
    return np.log10(EPOCHS + 1.0)


def hump(rng, peak_epoch, fall_bits, end_epoch=None, base=8.0, rise=2.0, noise=NOISE) -> np.ndarray:
    """I(X;T) (S, E, L): rises by `rise` to its peak at `peak_epoch` (S, L), then falls by
    `fall_bits` (S, L) linearly in log epoch until `end_epoch` (default: the last), then flat."""
    u = _log_e()[None, :, None]
    peak = np.log10(np.asarray(peak_epoch, float) + 1.0)[:, None, :]
    end = np.log10((EPOCHS[-1] if end_epoch is None else np.asarray(end_epoch, float)) + 1.0)
    end = np.broadcast_to(end, np.shape(peak_epoch))[:, None, :]
    up = rise * np.clip(u / peak, 0, 1)
    down = np.asarray(fall_bits, float)[:, None, :] * np.clip((u - peak) / (end - peak), 0, 1)
    seeds, layers = np.shape(peak_epoch)
    level = base + rng.normal(0, noise.ixt_seed, (seeds, 1, layers))
    curve = level + up - down + rng.normal(0, noise.ixt_epoch, (seeds, EPOCHS.size, layers))
    return np.minimum(curve, MAX_BITS)


def _log_uniform(rng, low, high, shape):
    return 10.0 ** rng.uniform(np.log10(low), np.log10(high), shape)


# ---- claim i ---------------------------------------------------------------------------------

def i_effect(rng, rules, noise=NOISE) -> Claim:
    """Compression from an early peak (epoch 20-300) by 0.3-1.5 bits."""
    shape = (SEEDS, LAYERS)
    ixt = hump(rng, _log_uniform(rng, 20, 300, shape), rng.uniform(0.3, 1.5, shape), noise=noise)
    return claim_rules.compression(EPOCHS, ixt, MAX_BITS, rules)


def i_small(rng, rules, noise=NOISE) -> Claim:
    """Compression from an early peak by only 0.15-0.4 bits."""
    shape = (SEEDS, LAYERS)
    ixt = hump(rng, _log_uniform(rng, 20, 300, shape), rng.uniform(0.15, 0.4, shape), noise=noise)
    return claim_rules.compression(EPOCHS, ixt, MAX_BITS, rules)


def i_null_fit_only(rng, rules, noise=NOISE) -> Claim:
    """I(X;T) rises, then stays flat: no compression."""
    ixt = hump(rng, _log_uniform(rng, 20, 300, (SEEDS, LAYERS)), np.zeros((SEEDS, LAYERS)), noise=noise)
    return claim_rules.compression(EPOCHS, ixt, MAX_BITS, rules)


def i_null_last_dip(rng, rules, noise=NOISE) -> Claim:
    """Flat I(X;T) with a 0.15-bit dip at the last logged epoch."""
    ixt = hump(rng, np.full((SEEDS, LAYERS), 10.0), np.zeros((SEEDS, LAYERS)), noise=noise)
    ixt[:, -1] -= 0.15
    return claim_rules.compression(EPOCHS, ixt, MAX_BITS, rules)


def i_null_late(rng, rules, noise=NOISE) -> Claim:
    """Compression that starts late (after 70 % of training): fewest epochs compressing."""
    shape = (SEEDS, LAYERS)
    ixt = hump(rng, rng.uniform(0.7, 0.8, shape) * EPOCHS[-1], rng.uniform(0.3, 1.5, shape),
               noise=noise)
    return claim_rules.compression(EPOCHS, ixt, MAX_BITS, rules)


# ---- claim ii --------------------------------------------------------------------------------

def _drift(rng, crossing: np.ndarray) -> np.ndarray:
    """Drift->diffusion epochs (S, L) measured from SNR curves crossing 1 at `crossing`."""
    log_snr = -0.8 * (np.log10(EPOCHS + 1.0)[None, :, None] - np.log10(crossing)[:, None, :])
    log_snr = log_snr + rng.normal(0, 0.1, log_snr.shape)
    std = np.ones_like(log_snr)
    return phases.drift_diffusion_epoch(EPOCHS, 10.0**log_snr, std)


def _ii(rng, rules, onset_of, noise) -> Claim:
    shape = (SEEDS, LAYERS)
    crossing = _log_uniform(rng, 30, 300, shape)
    onset = onset_of(crossing)
    ixt = hump(rng, onset, rng.uniform(0.3, 1.5, shape), noise=noise)
    return claim_rules.coincidence(EPOCHS, ixt, _drift(rng, crossing), "", rules)


def ii_effect(rng, rules, noise=NOISE) -> Claim:
    """Compression starts at the transition (log-normal scatter, factor ~1.2)."""
    return _ii(rng, rules, lambda c: c * np.exp(rng.normal(0, 0.2, c.shape)), noise)


def ii_wide(rng, rules, noise=NOISE) -> Claim:
    """Compression starts near the transition, with a wide scatter (factor ~1.65)."""
    return _ii(rng, rules, lambda c: c * np.exp(rng.normal(0, 0.5, c.shape)), noise)


def ii_null(rng, rules, noise=NOISE) -> Claim:
    """Compression onset independent of the transition (log-uniform over 10-1000)."""
    return _ii(rng, rules, lambda c: _log_uniform(rng, 10, 1000, c.shape), noise)


# ---- claim iii -------------------------------------------------------------------------------
# The gap to the bound is drawn with the seed-to-seed noise of I(T;Y). With deterministic labels
# it is all that is judged. With noisy labels each seed's layer is a synthetic hard encoder of
# SC_INPUTS inputs of the 12-bit task (one random subset per run, p(y=1|x) = σ(γ(f(x) − θ)), γ
# one of SC_GAMMAS), with 2-32 clusters, measured as `claims` does
# (`selfconsistency.consistency_with_null`).

SC_INPUTS = 256
SC_GAMMAS = (1.0, 5.0, 30.0)


def _iii_gap(rng, gap_mean, noise) -> np.ndarray:
    return gap_mean + rng.normal(0, noise.ity_seed, (SEEDS, LAYERS + 1))


def _iii_deterministic(rng, rules, gap_mean, noise) -> Claim:
    return claim_rules.bound(_iii_gap(rng, gap_mean, noise), "", None, "drawn", True, rules)


def iii_effect(rng, rules, noise=NOISE) -> Claim:
    """Deterministic labels: layers on the bound."""
    return _iii_deterministic(rng, rules, 0.0, noise)


def iii_near(rng, rules, noise=NOISE) -> Claim:
    """Deterministic labels: layers 0.02 bits from the bound (under the 0.05 threshold)."""
    return _iii_deterministic(rng, rules, 0.02, noise)


def iii_null_below(rng, rules, noise=NOISE) -> Claim:
    """Deterministic labels: layers 0.08 bits below the bound (just over the 0.05 threshold)."""
    return _iii_deterministic(rng, rules, 0.08, noise)


def iii_null_above(rng, rules, noise=NOISE) -> Claim:
    """Layers 0.7 bits above the bound (what drawn labels with gamma > 0 give)."""
    return _iii_deterministic(rng, rules, -0.7, noise)


def sc_problem(rng, n_inputs: int = SC_INPUTS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p_x, p_y_given_x, x bits) of `n_inputs` random 12-bit inputs with noisy labels."""
    rows = rng.choice(N_PATTERNS, n_inputs, replace=False)
    p_y1 = _p_y1(float(rng.choice(SC_GAMMAS)))[rows]
    return np.full(n_inputs, 1.0 / n_inputs), np.stack([1.0 - p_y1, p_y1], axis=1), _inputs()[rows]


@cache
def _p_y1(gamma: float) -> np.ndarray:
    return tishby12_p_y1(gamma, DEFAULT_THETA)


@cache
def _inputs() -> np.ndarray:
    return tishby12_inputs()


def fixed_point_encoder(rng, p_y_given_x: np.ndarray, n_clusters: int, max_iter: int = 100) -> np.ndarray:
    """A hard encoder with every input in its KL-closest cluster (uniform p(x)): Lloyd
    iterations under KL[p(y|x) || p(y|t)] on the distinct rows of p(y|x), from a random cut of
    them in sorted order into at most `n_clusters` clusters."""
    rows, inverse, weight = np.unique(p_y_given_x, axis=0, return_inverse=True, return_counts=True)
    cuts = np.sort(rng.choice(np.arange(1, len(rows)), min(n_clusters, len(rows)) - 1, replace=False))
    clusters = np.searchsorted(cuts, np.arange(len(rows)), side="right")
    for _ in range(max_iter):
        clusters = np.unique(clusters, return_inverse=True)[1].ravel()
        dec = np.stack([np.bincount(clusters, weights=weight * col) for col in rows.T], axis=1)
        nearest = np.argmin(kl_rows(rows, dec / dec.sum(1, keepdims=True)), axis=1)
        if np.array_equal(nearest, clusters):
            break
        clusters = nearest
    return clusters[inverse.ravel()]


def _moved(rng, clusters: np.ndarray, share: float) -> np.ndarray:
    """`clusters` with a random `share` of the inputs moved to random clusters."""
    out = clusters.copy()
    move = rng.random(out.size) < share
    out[move] = rng.integers(0, out.max() + 1, move.sum())
    return out


def _iii_noisy(rng, rules, gap_mean, encoder_of, noise) -> Claim:
    """Claim iii with noisy labels: per seed and layer the excess of `encoder_of(rng, p_y_given_x,
    x, n_clusters)`, all on one problem (`sc_problem`)."""
    shape = (SEEDS, LAYERS + 1)
    p_x, p_y, x = sc_problem(rng)
    clusters = [np.unique(encoder_of(rng, p_y, x, int(round(k))), return_inverse=True)[1].ravel()
                for k in _log_uniform(rng, 2, 32, np.prod(shape))]
    share, null = consistency_with_null(p_x, p_y, np.stack(clusters), (int(rng.integers(2**31)),))
    excess = LayerMeasures(share.reshape(shape), null.reshape(shape)).excess(rules.sc_room)
    return claim_rules.bound(_iii_gap(rng, gap_mean, noise), "", excess, "soft", False, rules)


def iii_fixed_points(rng, rules, noise=NOISE) -> Claim:
    """Noisy labels: layers on the bound whose inputs all sit in their KL-closest cluster."""
    return _iii_noisy(rng, rules, 0.0, lambda r, p, x, k: fixed_point_encoder(r, p, k), noise)


def iii_near_fixed_points(rng, rules, noise=NOISE) -> Claim:
    """Noisy labels: 0.02 bits from the bound, up to 3 % of the inputs moved off a fixed point."""
    return _iii_noisy(rng, rules, 0.02, lambda r, p, x, k: _moved(r, fixed_point_encoder(r, p, k),
                                                                   r.uniform(0, 0.03)), noise)


def iii_null_random(rng, rules, noise=NOISE) -> Claim:
    """Noisy labels: on the bound, but random partitions."""
    return _iii_noisy(rng, rules, 0.0, lambda r, p, x, k: r.integers(0, k, p.shape[0]), noise)


def iii_null_feature(rng, rules, noise=NOISE) -> Claim:
    """Noisy labels: on the bound, clusters by a feature correlated with the label (the number
    of ones among 6-12 random bits, or half of it)."""
    def by_feature(r, p, x, k):
        bits = r.choice(x.shape[1], r.integers(6, x.shape[1] + 1), replace=False)
        return x[:, bits].sum(axis=1).astype(int) // r.integers(1, 3)
    return _iii_noisy(rng, rules, 0.0, by_feature, noise)


def iii_null_far(rng, rules, noise=NOISE) -> Claim:
    """Noisy labels: on the bound, half of the inputs moved off a fixed point."""
    return _iii_noisy(rng, rules, 0.0, lambda r, p, x, k: _moved(r, fixed_point_encoder(r, p, k), 0.5),
                      noise)


# ---- claim iv --------------------------------------------------------------------------------

DEPTHS = (1, 2, 3, 4, 5)


def _iv(rng, rules, end_of_depth, noise) -> Claim:
    per_depth = {}
    for d in DEPTHS:
        end = np.minimum(end_of_depth(d) * np.exp(rng.normal(0, 0.3, (SEEDS, 1))), 0.9 * EPOCHS[-1])
        end = np.broadcast_to(end, (SEEDS, 2))
        ixt = hump(rng, np.full((SEEDS, 2), 20.0), np.full((SEEDS, 2), 1.0), end, noise=noise)
        reached = phases.epochs_to_compressed(EPOCHS, ixt, rules.compressed_fraction,
                                              rules.min_fall_bits, rules.noise_z)
        per_depth[d] = reached.max(axis=1)
    return claim_rules.depth(per_depth, "last hidden layer and output", rules)


def iv_effect(rng, rules, noise=NOISE) -> Claim:
    """Each extra hidden layer halves the epochs to the compressed state (1600 -> 100)."""
    return _iv(rng, rules, lambda d: 1600.0 / 2 ** (d - 1), noise)


def iv_small(rng, rules, noise=NOISE) -> Claim:
    """Each extra hidden layer takes 1.5 times fewer epochs (1600 -> 316)."""
    return _iv(rng, rules, lambda d: 1600.0 / 1.5 ** (d - 1), noise)


def iv_null(rng, rules, noise=NOISE) -> Claim:
    """The same epochs to the compressed state (400) at every depth."""
    return _iv(rng, rules, lambda d: 400.0, noise)


# ---- claim v ---------------------------------------------------------------------------------

def _ity(rng, fall_bits, epoch_noise) -> np.ndarray:
    """Deep-layer I(T;Y) (S, E, 2): rises to ~0.95 by epoch 50; falls by `fall_bits` from epoch
    300 to the end."""
    u = np.log10(EPOCHS + 1.0)[None, :, None]
    rise = 0.95 * np.clip(u / np.log10(51), 0, 1)
    down = np.asarray(fall_bits)[:, None, :] * np.clip((u - np.log10(301)) / (np.log10(EPOCHS[-1] + 1)
                                                                            - np.log10(301)), 0, 1)
    level = rng.normal(0, NOISE.ity_seed, (SEEDS, 1, 2))
    return rise + level - down + rng.normal(0, epoch_noise, (SEEDS, EPOCHS.size, 2))


def v_effect(rng, rules, noise=NOISE) -> Claim:
    """I(T;Y) of the deep layers falls late by 0.08-0.2 bits."""
    return claim_rules.small_data(EPOCHS, _ity(rng, rng.uniform(0.08, 0.2, (SEEDS, 2)),
                                               noise.ity_epoch), 0.05, rules)


def v_small(rng, rules, noise=NOISE) -> Claim:
    """I(T;Y) of the deep layers falls late by only 0.04-0.08 bits."""
    return claim_rules.small_data(EPOCHS, _ity(rng, rng.uniform(0.04, 0.08, (SEEDS, 2)),
                                               noise.ity_epoch), 0.05, rules)


def v_null_plateau(rng, rules, noise=NOISE) -> Claim:
    """I(T;Y) rises and stays."""
    return claim_rules.small_data(EPOCHS, _ity(rng, np.zeros((SEEDS, 2)), noise.ity_epoch), 0.05, rules)


def v_null_trendless(rng, rules, noise=NOISE) -> Claim:
    """Trendless I(T;Y) = 0.9 ± 0.03 (epoch noise 0.03 bits)."""
    ity = 0.9 + rng.normal(0, 0.03, (SEEDS, EPOCHS.size, 2))
    return claim_rules.small_data(EPOCHS, ity, 0.05, rules)


Scenario = Callable[..., Claim]
SCENARIOS: dict[str, dict[str, tuple[bool, Scenario]]] = {
    "i": {"effect": (True, i_effect), "small effect": (True, i_small),
          "fit only": (False, i_null_fit_only), "dip at the last epoch": (False, i_null_last_dip),
          "late compression": (False, i_null_late)},
    "ii": {"effect": (True, ii_effect), "wide scatter": (True, ii_wide),
           "onset independent": (False, ii_null)},
    "iii": {"on the bound": (True, iii_effect), "0.02 bits off": (True, iii_near),
            "0.08 bits below": (False, iii_null_below), "0.7 bits above": (False, iii_null_above),
            "noisy: fixed points": (True, iii_fixed_points),
            "noisy: near fixed points": (True, iii_near_fixed_points),
            "noisy: random partitions": (False, iii_null_random),
            "noisy: correlated feature": (False, iii_null_feature),
            "noisy: half moved": (False, iii_null_far)},
    "iv": {"effect": (True, iv_effect), "small effect": (True, iv_small),
           "no depth effect": (False, iv_null)},
    "v": {"effect": (True, v_effect), "small effect": (True, v_small), "plateau": (False, v_null_plateau),
          "trendless noise": (False, v_null_trendless)},
}


def supported_rate(scenario: Scenario, draws: int, seed: int = 0,
                   rules: claim_rules.Rules = claim_rules.Rules(), noise: Noise = NOISE) -> float:
    """Share of `draws` synthetic runs of a scenario judged "supported"."""
    rng = np.random.default_rng(seed)
    return float(np.mean([scenario(rng, rules, noise).verdict == SUPPORTED for _ in range(draws)]))
