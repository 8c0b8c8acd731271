"""Training throughput of the real pipeline against a plain one-network-at-a-time loop.

Paper cell shape (DESIGN §9): 12-10-7-5-4-3-2 tanh, Adam lr 4e-4, batch 256, 85% of the
4096 tishby12 inputs. The pipeline (`ibrepro.train.loop.train_cell`, run file written to a temp
dir) is run twice, with a proportional snapshot count (300 per 10^4 epochs, at least 6) and
with 4, so that training and per-snapshot costs can be told apart. Timing starts at the second
snapshot callback (the engine has compiled by then: once for the initial state, once for
later ones) and ends when the cell returns: T = a * seeds * (E - 1) + b * (snapshots - 2).
Wall and process CPU time are both reported (the machine may be shared: CPU time is the
steadier number; wall ~ CPU / devices when the cores are free).

Two references, each one network at a time with a Python loop over minibatches and a reshuffle
each epoch: the obvious JAX loop (a jitted per-step update, value_and_grad + optax), and, where
PyTorch is installed (`pip install -e .[torch]`), DESIGN's plain loop in PyTorch on one thread
(nn.Sequential, torch.optim). Ratios are printed against both, after start-up and with it.

With `--noise STD` and/or `--dropout P` the script instead trains the same cell noise-free, with
hidden-layer noise and/or with dropout, one after the other in the same process, and reports each
cell's whole `train_cell` wall time (start-up and compiles included) and its ratio to the
noise-free cell's.

    .venv/bin/python scripts/bench_train.py [--epochs 300] [--seeds 50] [--devices N]
                                            [--ref-seeds 3] [--ref-epochs 3] [--params-only] [--mnist]
                                            [--noise 0.1] [--dropout 0.2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

FULL_EPOCHS, FULL_SEEDS, FULL_SNAPSHOTS = 10_000, 50, 300


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=300, help="pipeline epochs per run")
    p.add_argument("--seeds", type=int, default=50)
    p.add_argument("--devices", type=int, default=os.cpu_count(), help="host devices (XLA)")
    p.add_argument("--ref-seeds", type=int, default=3, help="seeds the plain loop trains")
    p.add_argument("--ref-epochs", type=int, default=3, help="epochs per seed of the plain loop")
    p.add_argument("--params-only", action="store_true", help="log.activations = false (parameters per snapshot)")
    p.add_argument("--mnist", action="store_true", help="also the MNIST 784-1024-20-20-20-10 case")
    p.add_argument("--mnist-fraction", type=float, default=0.1, help="MNIST training fraction")
    p.add_argument("--mnist-epochs", type=int, default=3, help="at least 3")
    p.add_argument("--mnist-seeds", type=int, default=2)
    p.add_argument("--noise", type=float, default=0.0, help="compare a cell with model.noise_std = NOISE")
    p.add_argument("--dropout", type=float, default=0.0, help="compare a cell with model.dropout = DROPOUT")
    return p.parse_args()


ARGS = parse_args()
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + f" --xla_force_host_platform_device_count={ARGS.devices}").strip()

import resource  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ibrepro.jaxsetup import configure  # noqa: E402

configure()  # the CLI's XLA settings (YNN fusions off, compile cache) for both contenders

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from ibrepro import config as cfg  # noqa: E402
from ibrepro.data import prepare  # noqa: E402
from ibrepro.train.loop import make_optimizer, train_cell  # noqa: E402


def pipeline_run(raw: dict, workdir: Path) -> dict:
    """Train one cell through train_cell: steady-state wall and CPU seconds, startup, file size."""
    config = cfg.resolve(raw)
    stamps: list[tuple[float, float]] = []
    path = workdir / f"{config['name']}.h5"
    t0 = time.perf_counter()
    train_cell("cell", config, path,
               on_snapshot=lambda s: stamps.append((time.perf_counter(), time.process_time())))
    t1, c1 = time.perf_counter(), time.process_time()
    return {"steady": t1 - stamps[1][0], "cpu": c1 - stamps[1][1], "startup": stamps[1][0] - t0, "total": t1 - t0,
            "bytes": path.stat().st_size, "snapshots": len(stamps)}


def plain_reference(config: dict, n_seeds: int, n_epochs: int) -> float:
    """Seconds per seed-epoch of the obvious loop (jitted step, Python minibatch loop)."""
    arrays = prepare(config)
    widths = [arrays.x_pool.shape[1], *config["model"]["hidden"], arrays.n_classes]
    act = {"tanh": jnp.tanh, "relu": jax.nn.relu}[config["model"]["activation"]]
    opt = make_optimizer(config["train"])
    batch = config["train"]["batch_size"]

    def loss(params, x, y):
        for w, b in params[:-1]:
            x = act(x @ w + b)
        w, b = params[-1]
        return optax.softmax_cross_entropy_with_integer_labels(x @ w + b, y).mean()

    @jax.jit
    def step(params, opt_state, x, y):
        grads = jax.grad(loss)(params, x, y)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    rng = np.random.default_rng(0)
    elapsed = 0.0
    for s in range(n_seeds):
        params = [(jnp.asarray(rng.normal(0, 1 / np.sqrt(i), (i, o)).clip(-2 / np.sqrt(i), 2 / np.sqrt(i)),
                               jnp.float32), jnp.zeros(o, jnp.float32)) for i, o in zip(widths, widths[1:])]
        opt_state = opt.init(params)
        rows_all = arrays.train_idx[s]
        for epoch in range(n_epochs + 1):  # epoch 0 warms up (compiles, incl. the partial batch)
            t = time.perf_counter()
            order = rng.permutation(rows_all)
            for i in range(0, len(order), batch):
                rows = order[i:i + batch]
                params, opt_state = step(params, opt_state, arrays.x_pool[rows], arrays.y_pool[rows])
            jax.block_until_ready(params)
            if epoch > 0:
                elapsed += time.perf_counter() - t
    return elapsed / (n_seeds * n_epochs)


def torch_reference(config: dict, n_seeds: int, n_epochs: int) -> float | None:
    """Seconds per seed-epoch of the plain PyTorch loop on one thread; None without PyTorch."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    arrays = prepare(config)
    x = torch.from_numpy(np.asarray(arrays.x_pool, np.float32))
    y = torch.from_numpy(np.asarray(arrays.y_pool, np.int64))
    widths = [x.shape[1], *config["model"]["hidden"], arrays.n_classes]
    act = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[config["model"]["activation"]]
    optimizer = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[config["train"]["optimizer"]]
    batch = config["train"]["batch_size"]
    elapsed = 0.0
    for s in range(n_seeds):
        torch.manual_seed(s)
        layers = [m for i, o in zip(widths, widths[1:]) for m in (torch.nn.Linear(i, o), act())][:-1]
        net = torch.nn.Sequential(*layers)
        opt = optimizer(net.parameters(), lr=config["train"]["lr"])
        rows_all = torch.from_numpy(np.asarray(arrays.train_idx[s], np.int64))
        for epoch in range(n_epochs + 1):  # epoch 0 warms up
            t = time.perf_counter()
            order = rows_all[torch.randperm(len(rows_all))]
            for i in range(0, len(order), batch):
                rows = order[i:i + batch]
                opt.zero_grad()
                torch.nn.functional.cross_entropy(net(x[rows]), y[rows]).backward()
                opt.step()
            if epoch > 0:
                elapsed += time.perf_counter() - t
    return elapsed / (n_seeds * n_epochs)


def paper_cell(epochs: int, seeds: int) -> dict:
    """The paper cell's raw config (DESIGN §9) with the given epochs and seeds."""
    return {"name": "bench", "dataset": "tishby12",
            "model": {"hidden": [10, 7, 5, 4, 3], "activation": "tanh"},
            "train": {"optimizer": "adam", "lr": 4e-4, "batch_size": 256, "epochs": epochs,
                      "seeds": seeds, "train_fraction": 0.85}}


def perturbed_case(workdir: Path) -> None:
    """Noise-free, noisy and dropout cells of the paper's shape: whole wall time and ratios."""
    e, s = ARGS.epochs, ARGS.seeds
    k = max(6, round(FULL_SNAPSHOTS * e / FULL_EPOCHS))
    variants = {"noise-free": {}}
    if ARGS.noise > 0:
        variants[f"noise_std={ARGS.noise:g}"] = {"noise_std": ARGS.noise}
    if ARGS.dropout > 0:
        variants[f"dropout={ARGS.dropout:g}"] = {"dropout": ARGS.dropout}
    base = paper_cell(e, s)
    print(f"jax {jax.__version__}, {len(jax.devices())} host devices, {os.cpu_count()} CPUs")
    print(f"tishby12 12-10-7-5-4-3-2 tanh, adam 4e-4, batch 256, 85%: {s} seeds x {e} epochs, {k} snapshots")
    runs = {}
    for label, model in variants.items():
        raw = {**base, "name": f"bench-{len(runs)}", "model": {**base["model"], **model},
               "log": {"snapshots": k, "activations": True}}
        runs[label] = run = pipeline_run(raw, workdir)
        ratio = run["total"] / runs["noise-free"]["total"]
        steady = run["steady"] / runs["noise-free"]["steady"]
        print(f"  {label:14s}: {run['total']:7.2f} s wall incl. startup ({run['startup']:.1f} s); "
              f"{ratio:5.2f}x noise-free ({steady:.2f}x after startup)")


def tishby_case(workdir: Path) -> None:
    e, s = ARGS.epochs, ARGS.seeds
    k = max(6, round(FULL_SNAPSHOTS * e / FULL_EPOCHS))
    base = paper_cell(e, s)
    runs = {}
    for snaps in (k, 4):
        raw = {**base, "name": f"bench-{snaps}", "log": {"snapshots": snaps, "activations": not ARGS.params_only}}
        runs[snaps] = pipeline_run(raw, workdir)
    hi, lo = runs[k], runs[4]
    n_k, n_4 = hi["snapshots"], lo["snapshots"]

    def split(kind):  # (seconds per seed-epoch, seconds per snapshot)
        snap = max(hi[kind] - lo[kind], 0.0) / (n_k - n_4)
        return (lo[kind] - (n_4 - 2) * snap) / (s * (e - 1)), snap

    per_epoch, per_snap = split("steady")
    cpu_epoch, cpu_snap = split("cpu")
    with_snaps = hi["steady"] / (s * (e - 1))
    bytes_per_snap = (hi["bytes"] - lo["bytes"]) / (n_k - n_4)
    fixed_bytes = lo["bytes"] - n_4 * bytes_per_snap
    ref = plain_reference(cfg.resolve({**base, "log": {"snapshots": 4}}), ARGS.ref_seeds, ARGS.ref_epochs)

    full = FULL_EPOCHS * FULL_SEEDS * with_snaps  # same snapshot density as the full cell
    full_bytes = fixed_bytes + FULL_SNAPSHOTS * bytes_per_snap * FULL_SEEDS / s
    print(f"jax {jax.__version__}, {len(jax.devices())} host devices, {os.cpu_count()} CPUs")
    print(f"tishby12 12-10-7-5-4-3-2 tanh, adam 4e-4, batch 256, 85%: {s} seeds x {e} epochs")
    print(f"  pipeline, {n_k} snapshots : {with_snaps * 1e3:8.3f} ms per seed-epoch wall "
          f"(startup incl. 2 compiles {hi['startup']:.1f} s)")
    print(f"  training alone         : {per_epoch * 1e3:8.3f} ms per seed-epoch wall, "
          f"{cpu_epoch * 1e3:.3f} ms CPU; throughput {1 / per_epoch:,.0f} seed-epochs per second "
          f"({1 / with_snaps:,.0f} with {n_k} snapshots)")
    print(f"  per snapshot ({s} seeds): {per_snap * 1e3:8.1f} ms wall, {cpu_snap * 1e3:.1f} ms CPU "
          f"(2-run difference: noisy), {bytes_per_snap / 2**20:.1f} MiB")
    print(f"  plain loop ({ARGS.ref_seeds} seeds x {ARGS.ref_epochs} epochs, jitted step): "
          f"{ref * 1e3:8.3f} ms per seed-epoch")
    print(f"  ratio plain / pipeline (with snapshots): {ref / with_snaps:6.1f}x")
    whole = hi["total"] / (s * e)  # start-up and compiles included
    torch_ref = torch_reference(cfg.resolve({**base, "log": {"snapshots": 4}}), ARGS.ref_seeds, ARGS.ref_epochs)
    if torch_ref is None:
        print("  plain PyTorch loop: not measured (PyTorch not installed: pip install -e .[torch])")
    else:
        print(f"  plain PyTorch loop ({ARGS.ref_seeds} seeds x {ARGS.ref_epochs} epochs, 1 thread): "
              f"{torch_ref * 1e3:8.3f} ms per seed-epoch; ratio {torch_ref / with_snaps:6.1f}x after start-up, "
              f"{torch_ref / whole:6.1f}x with it ({whole * 1e3:.3f} ms per seed-epoch)")
    print(f"  full paper cell ({FULL_SEEDS} seeds x {FULL_EPOCHS} epochs, {FULL_SNAPSHOTS} snapshots): "
          f"{full / 60:.1f} min at the {n_k}-snapshot rate; split estimate "
          f"{FULL_EPOCHS * FULL_SEEDS * per_epoch / 60:.1f} training "
          f"+ {FULL_SNAPSHOTS * per_snap * FULL_SEEDS / s / 60:.1f} snapshots "
          f"(plain loop: {FULL_EPOCHS * FULL_SEEDS * ref / 3600:.1f} h)")
    print(f"  run file: {runs[k]['bytes'] / 2**20:.1f} MiB here; full cell ~{full_bytes / 2**30:.2f} GiB "
          f"(= fixed part + {FULL_SNAPSHOTS} x per-snapshot size from the 2-run difference, scaled to "
          f"{FULL_SEEDS} seeds; late snapshots may compress differently)")


def mnist_case(workdir: Path) -> None:
    e, s, frac = ARGS.mnist_epochs, ARGS.mnist_seeds, ARGS.mnist_fraction
    data_dir = os.environ.get("IBREPRO_DATA_DIR") or "/work/shared/data/mnist"
    raw = {"name": "bench-mnist", "dataset": "mnist", "data": {"dir": data_dir},
           "model": {"hidden": [1024, 20, 20, 20], "activation": "tanh"},
           "train": {"optimizer": "sgd", "lr": 1e-3, "batch_size": 128, "epochs": e, "seeds": s,
                     "train_fraction": frac},
           "log": {"snapshots": 4, "eval_samples": 1000}}
    run = pipeline_run(raw, workdir)
    config = cfg.resolve(raw)
    n_train = prepare(config).train_idx.shape[1]
    pipe = s * (e - 1) * n_train / run["steady"]  # timing starts after both compiles
    ref_cfg = cfg.resolve({**raw, "train": {**raw["train"], "seeds": 1}})
    ref = n_train / plain_reference(ref_cfg, 1, 1)
    print(f"mnist 784-1024-20-20-20-10 tanh, sgd 1e-3, batch 128: {s} seeds x {e} epochs x {n_train} samples")
    print(f"  pipeline  : {pipe:9.0f} samples/s (4 snapshots on 1000 eval inputs; startup {run['startup']:.1f} s)")
    print(f"  plain loop: {ref:9.0f} samples/s (1 seed, 1 epoch, jitted step)   ratio {pipe / ref:.2f}x")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if ARGS.noise > 0 or ARGS.dropout > 0:
            perturbed_case(Path(tmp))
        else:
            tishby_case(Path(tmp))
        if ARGS.mnist:
            mnist_case(Path(tmp))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    print(f"peak RSS: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
