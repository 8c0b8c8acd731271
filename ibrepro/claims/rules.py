"""The rule of each of the paper's claims (DESIGN §1): measures in, a `Claim` verdict out.

Each rule reduces the curves of one estimate group to one number per seed, takes its 95 %
bootstrap interval over seeds (`verdicts.interval`) and compares the interval with a
threshold from `Rules` (changed with `--rule name=value`). The rules were calibrated on
synthetic runs with and without each effect at the noise of real runs
(`ibrepro.claims.calibration`, `scripts/calibrate_rules.py`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from ibrepro.claims import phases
from ibrepro.claims.verdicts import (
    NOT_APPLICABLE,
    NOT_MEASURABLE,
    NOT_SUPPORTED,
    SUPPORTED,
    Claim,
    above,
    at_most,
    both,
    interval,
    ratio_interval,
)
from ibrepro.errors import UserError


@dataclass(frozen=True)
class Rules:
    """Thresholds of the claims' rules (bits, epochs or shares, as named)."""

    compression_share: float = 0.5  # i: mean share of training after the I(X;T) peak
    min_fall_bits: float = 0.1  # i, iv: smallest I(X;T) fall that counts as compression
    noise_z: float = phases.NOISE_Z  # i, iv, v: a fall must exceed this × epoch-to-epoch noise
    ceiling_bits: float = 0.05  # i: a layer this close to log2 N at every epoch is not measurable
    coincide_factor: float = 2.0  # ii: onset and transition within this factor of each other
    coincide_share: float = 0.5  # ii: mean share of hidden layers where they coincide
    bound_gap_bits: float = 0.05  # iii: median |gap| to the IB bound
    sc_excess: float = 0.5  # iii, noisy labels: median excess share of inputs in their KL-closest cluster
    sc_room: float = 0.05  # iii: a layer whose random partitions leave less than this share out is not measurable
    compressed_fraction: float = 0.1  # iv: compressed = within this share of the fall from the end
    min_speedup: float = 2.0  # iv: median epochs of the shallowest / of the deepest
    small_data_fraction: float = 0.1  # v: applies at train fractions up to this
    late_drop_bits: float = 0.05  # v: smallest late I(T;Y) fall that counts
    late_drop_share: float = 0.5  # v: share of seeds with a late fall in a deep layer
    fit_margin: float = 0.05  # all: final train accuracy must beat chance by this much

    def as_dict(self) -> dict:
        return asdict(self)


def parse_rules(items: list[str] | tuple[str, ...] = ()) -> Rules:
    """Rules from `--rule name=value` strings; UserError for an unknown name or a bad value."""
    known = {f.name for f in fields(Rules)}
    changes = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or name not in known:
            raise UserError(f"--rule {item!r}: expected name=value with name one of "
                            f"{', '.join(sorted(known))}")
        try:
            value = float(text)
        except ValueError:
            raise UserError(f"--rule {item!r}: {text!r} is not a number") from None
        if not np.isfinite(value) or value < 0:
            raise UserError(f"--rule {item!r}: must be a finite number >= 0")
        changes[name] = value
    return replace(Rules(), **changes)


def _pick(rules: Rules, *names: str) -> dict:
    return {n: getattr(rules, n) for n in names}


def compression(epochs, ixt, max_bits: float, rules: Rules) -> Claim:
    """Claim i on the hidden layers' I(X;T) (S, E, L_hidden); `max_bits` = log2 N."""
    rule = (f"mean over seeds of the share of training after the I(X;T) peak (hidden layers; 0 "
            f"for a layer whose smoothed fall is under {rules.min_fall_bits:g} bits or "
            f"{rules.noise_z:g}× its epoch-to-epoch noise), interval above "
            f"{rules.compression_share:g}; layers within {rules.ceiling_bits:g} bits of log2 N "
            "at every epoch are not measurable")
    thresholds = _pick(rules, "compression_share", "min_fall_bits", "noise_z", "ceiling_bits")
    ceiling = phases.at_ceiling(ixt, max_bits, rules.ceiling_bits)
    stuck = [k + 1 for k in np.flatnonzero(ceiling)]
    measured: dict = {"layers_at_ceiling": stuck}
    if ceiling.all():
        return Claim(NOT_MEASURABLE, f"every hidden layer sits at the ceiling log2 N = "
                     f"{max_bits:.3g} bits at every epoch", rule, thresholds, measured)
    ixt = np.asarray(ixt, float)[:, :, ~ceiling]
    share = phases.compression_share(epochs, ixt, rules.min_fall_bits, rules.noise_z)
    onset = phases.compression_onset(epochs, ixt, rules.min_fall_bits, rules.noise_z)
    measured["compression_share"] = interval(_per_seed(np.mean, share))
    measured["compressing_seed_layers"] = [int(np.isfinite(onset).sum()), int(onset.size)]
    verdict = above(measured["compression_share"], rules.compression_share)
    reason = f"layers {', '.join(map(str, stuck))} at the ceiling left out" if stuck else ""
    return Claim(verdict, reason, rule, thresholds, measured)


def coincidence(epochs, ixt, drift: np.ndarray | None, why_no_drift: str, rules: Rules) -> Claim:
    """Claim ii: compression onset (from I(X;T), hidden layers) against the drift->diffusion
    epoch (S, L_hidden) of the same seeds; `why_no_drift` when the SNR is missing/undefined."""
    rule = (f"mean over seeds of the share of hidden layers whose compression onset is within "
            f"×{rules.coincide_factor:g} of their drift→diffusion epoch, interval above "
            f"{rules.coincide_share:g}")
    thresholds = _pick(rules, "coincide_factor", "coincide_share", "min_fall_bits", "noise_z")
    if drift is None:
        return Claim(NOT_APPLICABLE, why_no_drift, rule, thresholds)
    onset = phases.compression_onset(epochs, ixt, rules.min_fall_bits, rules.noise_z)
    coincide = phases.phases_coincide(drift, onset, rules.coincide_factor)
    measured = {"drift_epoch": interval(_log_per_seed(drift), _geo),
                "onset_epoch": interval(_log_per_seed(onset), _geo),
                "coincide_share": interval(coincide.mean(axis=1))}
    return Claim(above(measured["coincide_share"], rules.coincide_share), "", rule, thresholds,
                 measured)


DETERMINISTIC_SC = (
    "self-consistency not applicable: the labels are deterministic, so the IB curve is the trivial "
    "min(I(X;T), H(Y)) and a hard encoder's self-consistency says only whether its clusters are "
    "label-pure (each then sits at KL 0 from its members' p(y|x), and the residual of the IB "
    "update is H(T) − H(Y) at every β) — which the gap to the bound already says; judged on the gap alone")


def bound(gap: np.ndarray | None, why_no_gap: str, excess: np.ndarray | None, labels: str,
          deterministic: bool, rules: Rules) -> Claim:
    """Claim iii on the gap IB bound − I(T;Y) at the final I(X;T) and, with noisy labels, the
    β → ∞ self-consistency excess over random partitions (`LayerMeasures.excess`; NaN for a
    layer that cannot show it), each (S, L) over every layer. `labels` ("drawn" / "soft") says
    where I(T;Y) came from; `why_no_gap` when the gap cannot be measured."""
    source = f"{labels} labels" + (", deterministic" if deterministic else ", p(y|x) = σ(γ(f(x) − θ))")
    rule = (f"median over layers of |IB bound − I(T;Y)| at the final epoch (I(T;Y) from {source}), "
            f"mean over seeds, interval at most {rules.bound_gap_bits:g} bits")
    if deterministic:
        rule += "; self-consistency not applicable (deterministic labels)"
    else:
        rule += (f"; and the median over layers of the share of inputs in the cluster whose decoder p(y|t) "
                 f"is KL-closest to their p(y|x) (the IB equations at β → ∞), as excess over random "
                 f"partitions of the same cluster sizes (0 = chance, 1 = every input), mean over seeds, "
                 f"interval above {rules.sc_excess:g}; layers whose random partitions leave under "
                 f"{rules.sc_room:g} of the inputs out are not measurable")
    thresholds = _pick(rules, "bound_gap_bits", *(() if deterministic else ("sc_excess", "sc_room")))
    if gap is None or not np.isfinite(gap).any():
        return Claim(NOT_APPLICABLE, why_no_gap or "no finite gap to the IB bound", rule, thresholds)
    measured = {"abs_gap_bits": interval(_nanmedian(np.abs(gap))),
                "signed_gap_bits": interval(_nanmedian(gap))}
    gap_word = at_most(measured["abs_gap_bits"], rules.bound_gap_bits)
    outcome = {SUPPORTED: "passes", NOT_SUPPORTED: "fails"}
    notes = [f"gap to the IB bound {outcome.get(gap_word, gap_word)}"]
    if deterministic:
        return Claim(gap_word, f"{notes[0]}; {DETERMINISTIC_SC}", rule, thresholds, measured)
    if excess is None or not np.isfinite(excess).any():
        why = ("no self-consistency measure (no activations)" if excess is None else
               "self-consistency not measurable: every layer keeps so many clusters that random "
               "partitions of the same sizes put its inputs in their KL-closest cluster too")
        verdict = NOT_SUPPORTED if gap_word == NOT_SUPPORTED else NOT_MEASURABLE
        return Claim(verdict, f"{notes[0]}; {why}", rule, thresholds, measured)
    measured["sc_excess"] = interval(_nanmedian(excess))
    sc_word = above(measured["sc_excess"], rules.sc_excess)
    notes.append(f"self-consistency {outcome.get(sc_word, sc_word)}")
    last = excess.shape[1] - 1
    trivial = ["output" if k == last else str(k + 1) for k in np.flatnonzero(~np.isfinite(excess).any(axis=0))]
    if trivial:
        notes.append(f"layers {', '.join(trivial)} not measurable (random partitions of their cluster "
                     "sizes are consistent too)")
    verdict = both(gap_word, sc_word)
    return Claim(verdict, "; ".join(notes) if verdict != SUPPORTED else "; ".join(notes[2:]), rule,
                 thresholds, measured)


def depth(per_depth: dict[int, np.ndarray], layers: str, rules: Rules) -> Claim:
    """Claim iv: per depth (number of hidden layers), the epochs to the compressed state per
    seed (NaN = never, counted as infinitely slow), measured on `layers` (said in the rule)."""
    rule = (f"median epochs to the compressed state ({layers}) falls with depth (Spearman < 0) "
            f"and shallowest / deepest has its interval above {rules.min_speedup:g}")
    thresholds = _pick(rules, "min_speedup", "compressed_fraction", "min_fall_bits", "noise_z")
    if len(per_depth) < 2:
        return Claim(NOT_APPLICABLE, "needs cells that differ in model.hidden (a depth sweep)",
                     rule, thresholds)
    depths = sorted(per_depth)
    times = {d: np.where(np.isnan(per_depth[d]), np.inf, per_depth[d]) for d in depths}
    medians = np.array([np.median(times[d]) for d in depths])
    rho = _spearman(np.array(depths, float), medians)
    speedup = ratio_interval(times[depths[0]], times[depths[-1]], _median)
    measured = {"median_epochs": {str(d): interval(np.log10(np.maximum(times[d], 1.0)), _geo_median)
                                  for d in depths},
                "spearman": rho, "speedup": speedup}
    verdict = above(speedup, rules.min_speedup - 1e-12)
    reason = ""
    if not rho < 0:
        verdict, reason = NOT_SUPPORTED, "deeper networks are not faster (Spearman >= 0)"
    return Claim(verdict, reason, rule, thresholds, measured)


def small_data(epochs, ity_deep, train_fraction: float, rules: Rules) -> Claim:
    """Claim v on the deep hidden layers' I(T;Y) (S, E, L_deep)."""
    rule = (f"train fraction at most {rules.small_data_fraction:g}; share of seeds whose smoothed "
            f"I(T;Y) of a deep layer falls late by more than {rules.late_drop_bits:g} bits and "
            f"{rules.noise_z:g}× its epoch-to-epoch noise, interval above "
            f"{rules.late_drop_share:g}")
    thresholds = _pick(rules, "small_data_fraction", "late_drop_bits", "noise_z", "late_drop_share")
    measured: dict = {}
    if ity_deep is not None and np.size(ity_deep):
        late = phases.fall(epochs, ity_deep, rules.late_drop_bits, rules.noise_z)
        measured = {"late_fall_share": interval(late.counts.any(axis=1).astype(float)),
                    "late_fall_bits": interval(np.nanmax(late.fall, axis=1))}
    if train_fraction > rules.small_data_fraction:
        return Claim(NOT_APPLICABLE, f"train fraction {train_fraction:g} > "
                     f"{rules.small_data_fraction:g}: the claim is about small training sets "
                     "(numbers shown for comparison)", rule, thresholds, measured)
    if not measured:
        return Claim(NOT_APPLICABLE, "no deep hidden layer", rule, thresholds)
    return Claim(above(measured["late_fall_share"], rules.late_drop_share), "", rule, thresholds,
                 measured)


def _log_per_seed(epochs: np.ndarray) -> np.ndarray:
    """Mean over layers of log10 epochs per seed (S,), NaNs left out, epoch 0 counted as 1."""
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log10(np.maximum(np.asarray(epochs, float), 1.0))
    logs = np.where(np.isfinite(logs), logs, np.nan)
    count = np.isfinite(logs).sum(axis=1)
    return np.where(count > 0, np.nansum(logs, axis=1) / np.maximum(count, 1), np.nan)


def _geo(log_values: np.ndarray) -> np.ndarray:
    """Geometric mean from log10 values (for epochs)."""
    return 10.0 ** np.mean(log_values, axis=-1)


def _geo_median(log_values: np.ndarray) -> np.ndarray:
    return 10.0 ** np.median(log_values, axis=-1)


def _median(values: np.ndarray) -> np.ndarray:
    return np.median(values, axis=-1)


def _nanmedian(values: np.ndarray) -> np.ndarray:
    """Median over layers per seed (S,), NaN for a seed with no finite value."""
    return _per_seed(np.median, values)


def _per_seed(statistic, values: np.ndarray) -> np.ndarray:
    """`statistic` of each seed's finite values (S,): NaN, without a warning, for a seed with none."""
    values = np.asarray(values, float)
    finite = np.isfinite(values)
    out = np.full(values.shape[0], np.nan)
    for s in np.flatnonzero(finite.any(axis=1)):
        out[s] = statistic(values[s][finite[s]])
    return out


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation with average ranks on ties (inf ranks last)."""
    ra, rb = _average_ranks(a), _average_ranks(b)
    if np.std(ra) == 0 or np.std(rb) == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _average_ranks(values: np.ndarray) -> np.ndarray:
    _, inverse = np.unique(values, return_inverse=True)
    counts = np.bincount(inverse.ravel())
    upper = np.cumsum(counts)
    return ((upper - (counts - 1) / 2.0)[inverse]).astype(float)
