"""Synthetic run and estimates files shaped like real ones (DESIGN §7), for the figure and
report tests: parameters, gradient statistics and information planes with a known story."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import h5py
import numpy as np


def logged_epochs(n_epochs: int, snapshots: int) -> np.ndarray:
    """The paper's schedule: unique(int(logspace(0, log2 E, K, base 2))) - 1."""
    return np.unique(np.logspace(0, np.log2(n_epochs), snapshots, base=2).astype(int)) - 1


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def cell_config(name, hidden=(10, 7, 5, 4, 3), train_fraction=0.85, activation="tanh",
                seeds=3, epochs=3000, snapshots=60, sweep=None) -> dict:
    """A resolved experiment config like the one `train` stores."""
    return {
        "name": name,
        "dataset": "tishby12",
        "data": {"gamma": 0, "theta": 7.6},
        "model": {"hidden": list(hidden), "activation": activation},
        "train": {"optimizer": "adam", "lr": 4e-4, "batch_size": 256, "epochs": epochs,
                  "seeds": seeds, "train_fraction": train_fraction},
        "log": {"snapshots": snapshots, "eval_samples": 10000},
        "sweep": sweep or {},
    }


def write_run(path: Path, config: dict, n_inputs: int = 4096, gradients: bool = True,
              rng_seed: int = 0) -> None:
    """A complete run file: I/O data, (unwritten) activations, metrics, gradient norms.

    Loss falls to ~0.01; the gradient SNR (mean/std) falls through 1 near epoch 300;
    with train_fraction 1 the test metrics are all NaN. Epoch 0 has no gradient statistics.
    """
    rng = np.random.default_rng(rng_seed)
    train = config["train"]
    n_seeds, fraction = train["seeds"], train["train_fraction"]
    widths = [*config["model"]["hidden"], 2]
    epochs = logged_epochs(train["epochs"], config["log"]["snapshots"])
    t = epochs[None, :].astype(float)
    seed_scale = 1 + 0.05 * rng.standard_normal((n_seeds, 1))
    with h5py.File(path, "w") as f:
        f.attrs.update(schema="ibrepro-run/1", config=json.dumps(config), status="complete",
                       ibrepro_version="0.1.0")
        f["epochs"] = epochs
        bits = (np.arange(n_inputs)[:, None] >> np.arange(11, -1, -1)) & 1
        f["data/x"] = bits.astype(np.float32)
        f["data/y"] = (rng.random(n_inputs) < 0.517).astype(np.int64)
        f["data/train_mask"] = rng.random((n_seeds, n_inputs)) < fraction
        for k, width in enumerate(widths):
            f.create_dataset(f"activations/{k}", shape=(n_seeds, len(epochs), n_inputs, width),
                             dtype=np.float32, chunks=(1, 1, n_inputs, width))
        train_loss = 0.68 * np.exp(-t / (150 * seed_scale)) + 0.01
        overfit = 0.3 * (1 - fraction) * _sigmoid(2 * (np.log1p(t) - np.log(1500)))
        test_loss = train_loss + 0.04 + overfit
        f["metrics/train_loss"] = train_loss
        f["metrics/train_acc"] = 1 - 0.48 * np.exp(-t / (120 * seed_scale))
        nan_if_no_test = np.nan if fraction >= 1 else 1.0
        f["metrics/test_loss"] = test_loss * nan_if_no_test
        f["metrics/test_acc"] = (0.97 - 0.45 * np.exp(-t / 130) - overfit / 3) * nan_if_no_test
        if gradients:
            k = np.arange(len(widths))[None, None, :]
            weight = 2 + 0.4 * k + 0.5 * np.log1p(t)[..., None] * seed_scale[..., None]
            mean = weight * 0.4 * (1 + t[..., None] / 20) ** -1.1 * (1 + 0.1 * k)
            std = weight * 0.02 * (1 + 0.05 * rng.standard_normal(mean.shape))
            mean[:, epochs == 0] = std[:, epochs == 0] = np.nan
            f["gradients/mean_norm"] = mean
            f["gradients/std_norm"] = std
            f["gradients/weight_norm"] = weight * np.ones_like(mean)


def synthetic_planes(config: dict, n_inputs: int, label_entropy: float = 1.0,
                     rng_seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(epochs, ixt, ity) with (S, E, L) shaped like the paper's information plane.

    I(X;T) rises fast then compresses (deeper layers lower, and more hidden layers compress
    sooner); I(T;Y) rises to about H(Y); with train_fraction <= 0.1 deep layers' I(T;Y) falls
    late.
    """
    rng = np.random.default_rng(rng_seed)
    train = config["train"]
    n_hidden = len(config["model"]["hidden"])
    n_layers = n_hidden + 1
    epochs = logged_epochs(train["epochs"], config["log"]["snapshots"])
    t = np.log1p(epochs)[None, :, None]
    k = np.arange(n_layers)[None, None, :]
    h_x = np.log2(n_inputs)
    peak = h_x * (0.92 - 0.7 * k / max(n_layers, 2))
    final = 0.45 * peak
    t_compress = np.log(0.6 * train["epochs"] / n_hidden)
    rise = 0.8 + 0.2 * _sigmoid(2 * (t - np.log(30)))
    ixt = peak * rise - (peak - final) * _sigmoid(2 * (t - t_compress))
    ity = label_entropy * (0.05 + 0.93 * _sigmoid(1.6 * (t - np.log(25 + 25 * k))))
    if train["train_fraction"] <= 0.1:
        ity = ity - 0.3 * (k / n_layers) * _sigmoid(2 * (t - np.log(1500)))
    shape = (train["seeds"], len(epochs), n_layers)
    ixt = np.clip(ixt + 0.12 * rng.standard_normal(shape), 0, h_x)
    ity = np.clip(ity + 0.015 * rng.standard_normal(shape), 0, None)
    return epochs, ixt, np.minimum(ity, ixt)


def write_estimates(path: Path, config: dict, n_inputs: int = 4096, kde: bool = False,
                    ib_bound: bool = False) -> None:
    """An estimates file: a 'binning' group, optionally a KDE (upper bound) group and an IB bound."""
    epochs, ixt, ity = synthetic_planes(config, n_inputs)
    with h5py.File(path, "w") as f:
        groups = {"binning_30": (1.0, {"estimator": "binning", "n_bins": 30, "lo": -1.0, "hi": 1.0})}
        if kde:
            groups["kde_upper"] = (0.9, {"estimator": "kde", "sigma2": 1e-3, "bound": "upper"})
        for name, (scale, attrs) in groups.items():
            g = f.create_group(name)
            g.attrs.update(attrs)
            g["epochs"] = epochs
            g["ixt"] = scale * ixt
            g["ity"] = scale * ity
        if ib_bound:
            g = f.create_group("ib_bound")
            g.attrs["estimator"] = "ib-bound"
            g["beta"] = np.geomspace(0.1, 100, 50)
            g["ixt"] = np.linspace(0, np.log2(n_inputs), 50)
            g["ity"] = 0.999 * (1 - np.exp(-g["ixt"][:] / 1.2))


def write_sweep(directory: Path, name: str, sweep: dict, n_inputs: int = 4096,
                gradients: bool = True, **config_kwargs) -> list[Path]:
    """One run file (+ estimates) per point of the sweep's cartesian product."""
    directory.mkdir(parents=True, exist_ok=True)
    keys = list(sweep)
    paths = []
    for i, values in enumerate(itertools.product(*sweep.values())):
        overrides = {key.split(".")[-1]: value for key, value in zip(keys, values)}
        config = cell_config(name, sweep=sweep, **{**config_kwargs, **overrides})
        path = directory / f"{name}-{i:03d}.h5"
        write_run(path, config, n_inputs=n_inputs, gradients=gradients, rng_seed=i)
        write_estimates(path.with_name(path.stem + ".mi.h5"), config, n_inputs=n_inputs)
        paths.append(path)
    return paths
