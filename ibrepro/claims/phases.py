"""Phases of training read off the curves: drift/diffusion, compression, late falls.

Arrays follow the run and estimates files: `epochs` (E,) are the logged epochs (completed
epochs, increasing), per-layer curves are (S, E, L) for S seeds and L layers. Results are per
seed and layer, (S, L). Nothing here reads files or judges a claim.

A *fall* of a curve (compression of I(X;T), the late drop of I(T;Y)) is measured on the curve
smoothed by a running median over `window` logged epochs (a single-epoch dip or spike leaves
it unchanged): fall = smoothed peak − smoothed last value. It counts only when it exceeds both
`min_bits` and `z` times the curve's own epoch-to-epoch noise (`epoch_noise`), so a trendless
noisy curve, whose peak lies above its last value by chance, does not count.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

SMOOTH_WINDOW = 5  # logged epochs in the running median
NOISE_Z = 3.0  # a fall counts above this many epoch-to-epoch noise standard deviations


class Summary(NamedTuple):
    """Centre and spread over one axis, NaNs left out; `count` is how many values were finite."""

    center: np.ndarray
    spread: np.ndarray
    count: np.ndarray


class Fall(NamedTuple):
    """Per seed and layer (S, L): the smoothed fall in bits, the epoch-to-epoch noise (bits),
    the index of the smoothed peak, and whether the fall counts (see the module doc)."""

    fall: np.ndarray
    noise: np.ndarray
    peak_index: np.ndarray
    counts: np.ndarray


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
    epochs: np.ndarray, mean_norm: np.ndarray, std_norm: np.ndarray, window: int = SMOOTH_WINDOW
) -> np.ndarray:
    """Epoch of the drift -> diffusion transition per seed and layer, (S, L); NaN if none.

    SNR = mean_norm / std_norm. log10 SNR is smoothed by a running median over `window`
    consecutive logged epochs (logged epochs are log-spaced, so this is a window of nearly fixed
    width in log-epoch). The transition is the last downward crossing of SNR = 1, located by
    linear interpolation of log SNR in log epoch; after it the smoothed SNR stays below 1.
    NaN if the smoothed SNR is never >= 1 or is still >= 1 at the last logged epoch. Epoch 0
    and points with an undefined SNR (std 0 under full-batch training) are left out.
    """
    epochs = _check_epochs(epochs)
    mean_norm, std_norm = _check_curves(epochs, mean_norm, std_norm)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_snr = np.log10(mean_norm / std_norm)
    log_snr = np.where(np.isfinite(log_snr) & (epochs > 0)[None, :, None], log_snr, np.nan)
    smooth = running_median(log_snr, window)
    log_epochs = np.log10(np.where(epochs > 0, epochs, 1))
    out = np.full((smooth.shape[0], smooth.shape[2]), np.nan)
    for s, layer in np.ndindex(out.shape):
        out[s, layer] = _last_down_crossing(log_epochs, smooth[s, :, layer])
    return out


def snr_defined(std_norm: np.ndarray) -> bool:
    """Whether the gradient SNR is defined anywhere: some finite std > 0 (DESIGN §5)."""
    std = np.asarray(std_norm, dtype=float)
    return bool(np.any(np.isfinite(std) & (std > 0)))


def epoch_noise(epochs: np.ndarray, curve: np.ndarray) -> np.ndarray:
    """Epoch-to-epoch noise of each curve, (S, L), in its units: a robust standard deviation
    (1.4826 × median absolute value) of successive differences, over √2."""
    curve = _check_curves(_check_epochs(epochs), curve)[0]
    steps = np.diff(curve, axis=1)
    steps = np.where(np.isfinite(steps), np.abs(steps), np.nan)
    with warnings.catch_warnings():  # all-NaN curves give NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return 1.4826 * np.nanmedian(steps, axis=1) / np.sqrt(2.0)


def fall(epochs: np.ndarray, curve: np.ndarray, min_bits: float, z: float = NOISE_Z,
         window: int = SMOOTH_WINDOW, smooth: np.ndarray | None = None) -> Fall:
    """The smoothed fall of each curve from its peak to its end, and whether it counts
    (`smooth`: the curve's running median, when the caller has it)."""
    epochs = _check_epochs(epochs)
    curve = _check_curves(epochs, curve)[0]
    smooth = running_median(curve, window) if smooth is None else smooth
    finite = np.isfinite(smooth)
    peak_index = np.argmax(np.where(finite, smooth, -np.inf), axis=1)
    peak = np.take_along_axis(smooth, peak_index[:, None, :], axis=1)[:, 0, :]
    peak_index = _refine(curve, peak_index, window // 2)
    last_index = smooth.shape[1] - 1 - np.argmax(finite[:, ::-1, :], axis=1)
    last = np.take_along_axis(smooth, last_index[:, None, :], axis=1)[:, 0, :]
    has = finite.any(axis=1)
    size = np.where(has, peak - last, np.nan)
    noise = epoch_noise(epochs, curve)
    with np.errstate(invalid="ignore"):
        counts = has & (size > min_bits) & (size > z * np.nan_to_num(noise))
    return Fall(size, noise, peak_index, counts)


def compression_onset(epochs: np.ndarray, ixt: np.ndarray, min_drop_bits: float = 0.1,
                      z: float = NOISE_Z) -> np.ndarray:
    """Epoch of each layer's smoothed I(X;T) peak, (S, L); NaN where its fall does not count."""
    epochs = _check_epochs(epochs)
    result = fall(epochs, ixt, min_drop_bits, z)
    return np.where(result.counts, epochs[result.peak_index].astype(float), np.nan)


def compression_share(epochs: np.ndarray, ixt: np.ndarray, min_drop_bits: float = 0.1,
                      z: float = NOISE_Z) -> np.ndarray:
    """Share of the training epochs spent after the I(X;T) peak, (S, L) (claim i).

    (last_epoch − onset) / last_epoch in real epochs, onset from `compression_onset`; 0 for a
    layer whose fall does not count; NaN if the curve has no finite value.
    """
    epochs = _check_epochs(epochs)
    onset = compression_onset(epochs, ixt, min_drop_bits, z)
    last = float(epochs[-1])
    share = np.where(np.isnan(onset), 0.0, (last - onset) / last)
    return np.where(np.isfinite(np.asarray(ixt, float)).any(axis=1), share, np.nan)


def epochs_to_compressed(epochs: np.ndarray, ixt: np.ndarray, fraction: float = 0.1,
                         min_drop_bits: float = 0.1, z: float = NOISE_Z) -> np.ndarray:
    """First logged epoch at which a layer reaches its compressed state, (S, L) (claim iv).

    The first logged epoch at or after the smoothed peak where the smoothed I(X;T) is within
    `fraction` of the total fall from its end value. NaN where the fall does not count.
    """
    epochs = _check_epochs(epochs)
    smooth = running_median(_check_curves(epochs, ixt)[0], SMOOTH_WINDOW)
    result = fall(epochs, ixt, min_drop_bits, z, smooth=smooth)
    peak = np.take_along_axis(smooth, result.peak_index[:, None, :], axis=1)[:, 0, :]
    target = peak - (1.0 - fraction) * result.fall
    after = np.arange(epochs.size)[None, :, None] >= result.peak_index[:, None, :]
    with np.errstate(invalid="ignore"):
        reached = after & (smooth <= target[:, None, :] + 1e-12)
    first = np.argmax(reached, axis=1)
    ok = reached.any(axis=1) & result.counts
    return np.where(ok, epochs[first].astype(float), np.nan)


def phases_coincide(drift_epoch: np.ndarray, onset_epoch: np.ndarray,
                    tolerance_factor: float = 2.0) -> np.ndarray:
    """Whether compression starts at the drift -> diffusion transition (claim ii), element-wise:
    |log(onset / drift)| <= log(tolerance_factor); False where either is NaN."""
    drift = np.asarray(drift_epoch, dtype=float)
    onset = np.asarray(onset_epoch, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.abs(np.log(onset / drift))
    return np.where(np.isfinite(ratio), ratio <= np.log(tolerance_factor), False)


def at_ceiling(ixt: np.ndarray, ceiling_bits: float, margin_bits: float) -> np.ndarray:
    """Layers (L,) whose I(X;T) is within `margin_bits` of the estimator's maximum at every
    logged epoch of every seed (NaNs ignored): they cannot show compression."""
    ixt = np.asarray(ixt, dtype=float)
    with np.errstate(invalid="ignore"):
        near = np.where(np.isfinite(ixt), ixt >= ceiling_bits - margin_bits, True)
    return near.all(axis=(0, 1)) & np.isfinite(ixt).any(axis=(0, 1))


def deep_layers(n_hidden: int) -> list[int]:
    """The layers claim v looks at: the deeper half of the hidden layers (indices)."""
    return list(range(n_hidden // 2, n_hidden))


def generalisation_gap(test_loss: np.ndarray | None, train_loss: np.ndarray) -> np.ndarray:
    """test_loss − train_loss per seed and epoch; NaN where there is no test loss."""
    train_loss = np.asarray(train_loss, dtype=float)
    if test_loss is None:
        return np.full(train_loss.shape, np.nan)
    return np.asarray(test_loss, dtype=float) - train_loss


def running_median(values: np.ndarray, window: int) -> np.ndarray:
    """Median over `window` consecutive points along axis 1 (centred; the ends use the points
    there are), NaNs ignored."""
    if window < 1 or window % 2 == 0:
        raise ValueError("window must be a positive odd number of logged epochs")
    values = np.asarray(values, dtype=float)
    half = window // 2
    padded = np.pad(values, ((0, 0), (half, half), (0, 0)), constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, window, axis=1)
    if np.isfinite(values).all() and values.shape[1] > 2 * half:  # fast path: NaNs only at the ends
        out = np.empty(values.shape)
        out[:, half: values.shape[1] - half] = np.median(windows[:, half: values.shape[1] - half], axis=-1)
        ends = np.r_[0:half, values.shape[1] - half: values.shape[1]]
        out[:, ends] = np.nanmedian(windows[:, ends], axis=-1)
        return out
    any_finite = np.isfinite(windows).any(axis=-1)
    filled = np.where(any_finite[..., None], windows, 0.0)  # all-NaN windows: masked below
    return np.where(any_finite, np.nanmedian(filled, axis=-1), np.nan)


def _refine(curve: np.ndarray, index: np.ndarray, half: int) -> np.ndarray:
    """The raw curve's maximum within `half` logged epochs of each smoothed peak (the running
    median flattens a peak's top over a few points)."""
    offsets = np.arange(-half, half + 1)
    near = np.clip(index[:, None, :] + offsets[None, :, None], 0, curve.shape[1] - 1)  # (S, W, L)
    values = np.take_along_axis(curve, near, axis=1)
    best = np.argmax(np.where(np.isfinite(values), values, -np.inf), axis=1)
    return np.take_along_axis(near, best[:, None, :], axis=1)[:, 0, :]


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


def _last_down_crossing(log_epochs: np.ndarray, log_snr: np.ndarray) -> float:
    """Epoch of the last crossing of log_snr = 0 from above (NaN if none)."""
    valid = np.isfinite(log_snr)
    u, s = log_epochs[valid], log_snr[valid]
    above = np.flatnonzero(s >= 0)
    if above.size == 0 or above[-1] == s.size - 1:
        return float("nan")
    j = above[-1]
    u_cross = u[j] + s[j] / (s[j] - s[j + 1]) * (u[j + 1] - u[j])
    return float(10.0**u_cross)
