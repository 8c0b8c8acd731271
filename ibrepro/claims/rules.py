"""The paper's claims as numbers: phase detection on information-plane and gradient curves.

Arrays follow the run and estimates files: `epochs` (E,) are the logged epochs (completed
epochs, increasing), per-layer curves are (S, E, L) for S seeds and L layers. Results are per
seed and layer, (S, L). Nothing here reads files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
NOT_APPLICABLE = "not applicable"


class Summary(NamedTuple):
    """Centre and spread over one axis, NaNs left out; `count` is how many values were finite."""

    center: np.ndarray
    spread: np.ndarray
    count: np.ndarray


class LateDrop(NamedTuple):
    """Per seed and layer: whether I(T;Y) fell late, by how much (bits), from which epoch."""

    flagged: np.ndarray
    drop: np.ndarray
    peak_epoch: np.ndarray


class Verdict(NamedTuple):
    """One claim's verdict, the numbers the rule compared, and the rule in words."""

    status: str
    numbers: dict
    rule: str


@dataclass(frozen=True)
class Rules:
    """Thresholds of `verdicts` (see its docstring)."""

    compression_share: float = 0.5
    coincide_share: float = 0.5
    bound_gap_bits: float = 0.05
    residual_bits: float = 0.05
    min_speedup: float = 2.0
    small_data_fraction: float = 0.1
    late_drop_share: float = 0.5


def summary(values: np.ndarray, axis: int = 0, log: bool = False) -> Summary:
    """Mean and standard deviation over `axis`, ignoring NaN (and inf).

    With `log=True` (for epochs) the centre is the geometric mean and the spread the
    multiplicative factor 10**std(log10 values): the range is center / spread .. center * spread.
    """
    values = np.asarray(values, dtype=float)
    if log:
        values = np.log10(np.where(values > 0, values, np.nan))
    finite = np.isfinite(values)
    count = finite.sum(axis=axis)
    safe = np.where(finite, values, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = safe.sum(axis=axis) / count
        deviation = np.where(finite, values - np.expand_dims(mean, axis), 0.0)
        var = (deviation**2).sum(axis=axis) / count
    std = np.sqrt(var)
    if log:
        return Summary(10.0**mean, 10.0**std, count)
    return Summary(mean, std, count)


def drift_diffusion_epoch(
    epochs: np.ndarray, mean_norm: np.ndarray, std_norm: np.ndarray, window: int = 5
) -> np.ndarray:
    """Epoch of the drift -> diffusion transition per seed and layer, (S, L); NaN if none.

    SNR = mean_norm / std_norm. log10 SNR is smoothed by a running median over `window`
    consecutive logged epochs (logged epochs are log-spaced, so this is a window of nearly fixed
    width in log-epoch; a median keeps a monotone curve unchanged). The transition is the last
    downward crossing of SNR = 1: between the last logged epoch with smoothed SNR >= 1 and the
    next one, located by linear interpolation of log SNR in log epoch. After it the smoothed
    SNR stays below 1 until the end. NaN if the smoothed SNR is never >= 1 (no drift phase
    seen) or is still >= 1 at the last logged epoch (no diffusion phase). Epoch 0 and points
    with a non-finite or undefined SNR (e.g. std 0 under full-batch training) are left out.
    """
    epochs = _check_epochs(epochs)
    mean_norm, std_norm = _check_curves(epochs, mean_norm, std_norm)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_snr = np.log10(mean_norm / std_norm)
    log_snr = np.where(np.isfinite(log_snr) & (epochs > 0)[None, :, None], log_snr, np.nan)
    smooth = _running_nanmedian(log_snr, window)
    log_epochs = np.log10(np.where(epochs > 0, epochs, 1))
    out = np.full((smooth.shape[0], smooth.shape[2]), np.nan)
    for s, layer in np.ndindex(out.shape):
        out[s, layer] = _last_down_crossing(log_epochs, smooth[s, :, layer])
    return out


def compression_onset(
    epochs: np.ndarray, ixt: np.ndarray, min_drop_bits: float = 0.1
) -> np.ndarray:
    """Epoch of each layer's largest I(X;T) per seed, (S, L).

    NaN where the layer does not compress: its final I(X;T) (last finite value) is less than
    `min_drop_bits` below the peak (a flat or rising curve has no compression onset). Ties
    go to the first epoch.
    """
    epochs = _check_epochs(epochs)
    peak_idx, peak, final = _peak(epochs, ixt)
    onset = epochs[peak_idx].astype(float)
    return np.where(peak - final >= min_drop_bits, onset, np.nan)


def compression_share(
    epochs: np.ndarray, ixt: np.ndarray, min_drop_bits: float = 0.1
) -> np.ndarray:
    """Share of the training epochs spent after the I(X;T) peak, (S, L).

    (last_epoch - onset) / last_epoch in real epochs (not logged points), with last_epoch the
    last logged epoch and onset from `compression_onset`: the share of training in the
    compression phase, taking the whole time after the peak as compression (I(X;T) ends at
    least `min_drop_bits` below its peak). 0 for a layer that does not compress; NaN if the
    curve has no finite value.
    """
    epochs = _check_epochs(epochs)
    _, peak, final = _peak(epochs, ixt)
    onset = compression_onset(epochs, ixt, min_drop_bits)
    last = float(epochs[-1])
    share = np.where(np.isnan(onset), 0.0, (last - onset) / last)
    return np.where(np.isfinite(peak), share, np.nan)


def phases_coincide(
    drift_epoch: np.ndarray, onset_epoch: np.ndarray, tolerance_factor: float = 2.0
) -> np.ndarray:
    """Whether compression starts at the drift -> diffusion transition (claim ii), element-wise.

    True where the two epochs are within `tolerance_factor` of each other, i.e.
    |log(onset / drift)| <= log(tolerance_factor) (a window of fixed width in log epoch, as the
    figures are read); False where either is NaN.
    """
    drift = np.asarray(drift_epoch, dtype=float)
    onset = np.asarray(onset_epoch, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.abs(np.log(onset / drift))
    return np.where(np.isfinite(ratio), ratio <= np.log(tolerance_factor), False)


def epochs_to_compressed(
    epochs: np.ndarray, ixt: np.ndarray, fraction: float = 0.1, min_drop_bits: float = 0.1
) -> np.ndarray:
    """First logged epoch at which a layer reaches its compressed state, (S, L) (claim iv).

    The first logged epoch at or after the I(X;T) peak with
    I(X;T) <= final + fraction * (peak - final), i.e. within `fraction` of the total
    compression from its end value. NaN where the layer does not compress (see
    `compression_onset`).
    """
    epochs = _check_epochs(epochs)
    ixt = _check_curves(epochs, ixt)[0]
    peak_idx, peak, final = _peak(epochs, ixt)
    target = final + fraction * (peak - final)
    after = np.arange(epochs.size)[None, :, None] >= peak_idx[:, None, :]
    reached = after & (ixt <= target[:, None, :])
    first = np.argmax(reached, axis=1)
    ok = reached.any(axis=1) & (peak - final >= min_drop_bits)
    return np.where(ok, epochs[first].astype(float), np.nan)


def late_ity_drop(epochs: np.ndarray, ity: np.ndarray, threshold_bits: float = 0.05) -> LateDrop:
    """Whether I(T;Y) falls late in training (claim v, overfitting), per seed and layer.

    drop = max I(T;Y) - final I(T;Y) (last finite value), in bits; flagged where drop exceeds
    `threshold_bits`; peak_epoch = the logged epoch of the maximum (first on ties). The caller
    picks the layers (the paper looks at the deep ones).
    """
    epochs = _check_epochs(epochs)
    peak_idx, peak, final = _peak(epochs, ity)
    drop = peak - final
    flagged = np.where(np.isfinite(drop), drop > threshold_bits, False)
    return LateDrop(flagged, drop, np.where(np.isfinite(peak), epochs[peak_idx], np.nan))


def generalisation_gap(test_loss: np.ndarray | None, train_loss: np.ndarray) -> np.ndarray:
    """test_loss - train_loss per seed and epoch; NaN where there is no test loss (no test set,
    `test_loss` None or NaN)."""
    train_loss = np.asarray(train_loss, dtype=float)
    if test_loss is None:
        return np.full(train_loss.shape, np.nan)
    return np.asarray(test_loss, dtype=float) - train_loss


def verdicts(
    *,
    compression_share: np.ndarray | None = None,
    coincide: np.ndarray | None = None,
    bound_gap: np.ndarray | None = None,
    residual: np.ndarray | None = None,
    depths: np.ndarray | None = None,
    depth_epochs: np.ndarray | None = None,
    train_fraction: float | None = None,
    late_drop: np.ndarray | None = None,
    rules: Rules = Rules(),
) -> dict[str, Verdict]:
    """Map the numbers of one cell (or one depth sweep) to a verdict per claim (DESIGN §1).

    A claim whose inputs are missing (None, or no finite value) is "not applicable".
    - i   compression_share (S, L) of the hidden layers: supported if its mean over seeds and
          layers exceeds `rules.compression_share` (most epochs are spent compressing).
    - ii  coincide (S, L) bools from `phases_coincide`: supported if the share of True is at
          least `rules.coincide_share`. Pass None when there are no gradient statistics.
    - iii bound_gap (S, L): IB bound at the layer's final I(X;T) minus its final I(T;Y), bits;
          residual (S, L) optional: `ib.self_consistency` residuals, bits. Supported if the
          median gap is at most `rules.bound_gap_bits` and, when given, the median residual at
          most `rules.residual_bits`.
    - iv  depths (D,) and depth_epochs (D, S): `epochs_to_compressed` per depth and seed (NaN =
          never compressed, counted as infinitely slow). Not applicable with fewer than two
          depths. With m(d) the median over seeds: supported if the Spearman rank correlation
          of depth and m(d) is negative and m(shallowest) / m(deepest) >= `rules.min_speedup`.
    - v   train_fraction and late_drop (S, L_deep) flags from `late_ity_drop` on the deep
          layers: applicable only when train_fraction <= `rules.small_data_fraction`;
          supported if the share of seeds with a flag in any deep layer is at least
          `rules.late_drop_share`.
    """
    return {
        "i": _verdict_compression(compression_share, rules),
        "ii": _verdict_coincide(coincide, rules),
        "iii": _verdict_bound(bound_gap, residual, rules),
        "iv": _verdict_depth(depths, depth_epochs, rules),
        "v": _verdict_small_data(train_fraction, late_drop, rules),
    }


def _verdict_compression(share, rules: Rules) -> Verdict:
    rule = f"mean compression share > {rules.compression_share}"
    if share is None or not np.any(np.isfinite(share)):
        return Verdict(NOT_APPLICABLE, {}, rule)
    mean = float(np.nanmean(share))
    return Verdict(_status(mean > rules.compression_share), {"mean_share": mean}, rule)


def _verdict_coincide(coincide, rules: Rules) -> Verdict:
    rule = f"share of seeds x layers with coinciding phases >= {rules.coincide_share}"
    if coincide is None or np.size(coincide) == 0:
        return Verdict(NOT_APPLICABLE, {}, rule)
    share = float(np.mean(coincide))
    return Verdict(_status(share >= rules.coincide_share), {"share": share}, rule)


def _verdict_bound(gap, residual, rules: Rules) -> Verdict:
    rule = (f"median gap to the IB bound <= {rules.bound_gap_bits} bits and median "
            f"self-consistency residual <= {rules.residual_bits} bits")
    if gap is None or not np.any(np.isfinite(gap)):
        return Verdict(NOT_APPLICABLE, {}, rule)
    numbers = {"median_gap_bits": float(np.nanmedian(gap))}
    ok = numbers["median_gap_bits"] <= rules.bound_gap_bits
    if residual is not None and np.any(np.isfinite(residual)):
        numbers["median_residual_bits"] = float(np.nanmedian(residual))
        ok = ok and numbers["median_residual_bits"] <= rules.residual_bits
    return Verdict(_status(ok), numbers, rule)


def _verdict_depth(depths, depth_epochs, rules: Rules) -> Verdict:
    rule = ("Spearman(depth, median epochs to compressed) < 0 and shallowest / deepest "
            f">= {rules.min_speedup}")
    if depths is None or depth_epochs is None or np.unique(depths).size < 2:
        return Verdict(NOT_APPLICABLE, {}, rule)
    depths = np.asarray(depths, dtype=float)
    epochs = np.asarray(depth_epochs, dtype=float)
    median = np.array([np.nanmedian(row) if np.any(np.isfinite(row)) else np.inf
                       for row in epochs])
    order = np.argsort(depths)
    if np.all(np.isinf(median)):
        return Verdict(NOT_SUPPORTED, {"spearman": float("nan"), "speedup": float("nan")}, rule)
    rho = _spearman(depths, median)
    with np.errstate(divide="ignore", invalid="ignore"):
        speedup = float(median[order[0]] / median[order[-1]])
    ok = rho < 0 and speedup >= rules.min_speedup
    return Verdict(_status(ok), {"spearman": rho, "speedup": speedup}, rule)


def _verdict_small_data(train_fraction, late_drop, rules: Rules) -> Verdict:
    rule = (f"train fraction <= {rules.small_data_fraction}; share of seeds with a late "
            f"I(T;Y) drop in a deep layer >= {rules.late_drop_share}")
    if (train_fraction is None or late_drop is None
            or train_fraction > rules.small_data_fraction):
        return Verdict(NOT_APPLICABLE, {}, rule)
    flags = np.asarray(late_drop, dtype=bool)
    share = float(np.mean(flags.reshape(flags.shape[0], -1).any(axis=1)))
    return Verdict(_status(share >= rules.late_drop_share), {"share": share}, rule)


def _status(ok: bool) -> str:
    return SUPPORTED if ok else NOT_SUPPORTED


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


def _check_epochs(epochs) -> np.ndarray:
    epochs = np.asarray(epochs)
    if epochs.ndim != 1 or epochs.size == 0 or np.any(np.diff(epochs) <= 0):
        raise ValueError("epochs must be a non-empty increasing 1-d array")
    return epochs


def _check_curves(epochs: np.ndarray, *curves) -> list[np.ndarray]:
    out = []
    for curve in curves:
        curve = np.asarray(curve, dtype=float)
        if curve.ndim != 3 or curve.shape[1] != epochs.size:
            raise ValueError(
                f"curves must be (seeds, {epochs.size} epochs, layers), got {curve.shape}")
        out.append(curve)
    return out


def _peak(epochs: np.ndarray, curve) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index and value of the maximum over epochs, and the last finite value, each (S, L);
    value NaN where the curve has no finite value."""
    curve = _check_curves(epochs, curve)[0]
    finite = np.isfinite(curve)
    idx = np.argmax(np.where(finite, curve, -np.inf), axis=1)
    peak = np.take_along_axis(curve, idx[:, None, :], axis=1)[:, 0, :]
    last_idx = curve.shape[1] - 1 - np.argmax(finite[:, ::-1, :], axis=1)
    final = np.take_along_axis(curve, last_idx[:, None, :], axis=1)[:, 0, :]
    has = finite.any(axis=1)
    return idx, np.where(has, peak, np.nan), np.where(has, final, np.nan)


def _running_nanmedian(values: np.ndarray, window: int) -> np.ndarray:
    """Median over `window` consecutive points along axis 1 (centred; NaN-padded ends)."""
    if window < 1 or window % 2 == 0:
        raise ValueError("window must be a positive odd number of logged epochs")
    half = window // 2
    padded = np.pad(values, ((0, 0), (half, half), (0, 0)), constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, window, axis=1)
    any_finite = np.isfinite(windows).any(axis=-1)
    filled = np.where(any_finite[..., None], windows, 0.0)  # all-NaN windows: masked below
    return np.where(any_finite, np.nanmedian(filled, axis=-1), np.nan)


def _last_down_crossing(log_epochs: np.ndarray, log_snr: np.ndarray) -> float:
    """Epoch of the last crossing of log_snr = 0 from above (NaN if none); see
    `drift_diffusion_epoch`."""
    valid = np.isfinite(log_snr)
    u, s = log_epochs[valid], log_snr[valid]
    above = np.flatnonzero(s >= 0)
    if above.size == 0 or above[-1] == s.size - 1:
        return float("nan")
    j = above[-1]
    u_cross = u[j] + s[j] / (s[j] - s[j + 1]) * (u[j + 1] - u[j])
    return float(10.0**u_cross)
