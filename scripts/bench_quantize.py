"""Training cost of quantized and binary networks against the float network, in one invocation.

Paper cell shape (DESIGN §9): 12-10-7-5-4-3-2, Adam, batch 256, 85% of the 4096 tishby12 inputs,
all seeds at once through the real engine (`ShardedTrainer.advance`, compiled once per variant
before timing). Variants are timed in turns (float, then each variant, repeated `--rounds`
times) so that a changing machine load hits them alike; the best round counts. Reports seconds
per seed-epoch (wall and process CPU) and the ratio to the float network of the same activation.

    .venv/bin/python scripts/bench_quantize.py [--seeds 50 --epochs 100 --rounds 3 --devices N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--seeds", type=int, default=50)
parser.add_argument("--epochs", type=int, default=100, help="epochs per timed call")
parser.add_argument("--rounds", type=int, default=3)
parser.add_argument("--devices", type=int, default=os.cpu_count(), help="host devices (XLA)")
ARGS = parser.parse_args()
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + f" --xla_force_host_platform_device_count={ARGS.devices}").strip()

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ibrepro.jaxsetup import configure  # noqa: E402

configure()

import jax  # noqa: E402

from ibrepro import config as cfg  # noqa: E402
from ibrepro.data import prepare  # noqa: E402
from ibrepro.train.engine import SeedData, ShardedTrainer, SharedData  # noqa: E402
from ibrepro.train.loop import make_trainer, seed_keys  # noqa: E402

VARIANTS = {  # name: (model overrides, float reference)
    "tanh float": ({"activation": "tanh"}, None),
    "tanh 8-bit": ({"activation": "tanh", "quantize_bits": 8}, "tanh float"),
    "tanh 4-bit": ({"activation": "tanh", "quantize_bits": 4}, "tanh float"),
    "relu float": ({"activation": "relu"}, None),
    "relu 8-bit": ({"activation": "relu", "quantize_bits": 8}, "relu float"),
    "sign": ({"activation": "sign"}, "tanh float"),
    "sign, binary weights": ({"activation": "sign", "binary_weights": True}, "tanh float"),
}


def prepared(model: dict):
    """A compiled trainer of the paper cell with `model` settings, its data and initial state."""
    config = cfg.resolve({"name": "bench", "dataset": "tishby12",
                          "model": {"hidden": [10, 7, 5, 4, 3], **model},
                          "train": {"lr": 1e-4, "batch_size": 256, "seeds": ARGS.seeds, "train_fraction": 0.85}})
    arrays = prepare(config)
    sharded = ShardedTrainer(make_trainer(config, arrays), ARGS.seeds)
    shared, seeds = sharded.place(SharedData(arrays.x_pool, arrays.y_pool, arrays.x_eval, arrays.y_eval),
                                  SeedData(seed_keys(0, ARGS.seeds), arrays.train_idx, arrays.test_weight))
    state = jax.block_until_ready(sharded.advance(sharded.init(seeds, arrays.x_pool.shape[1]), shared, seeds, 0, 2))
    return sharded, shared, seeds, state


def main() -> None:
    print(f"cpus available: {len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.2f}; "
          f"{ARGS.seeds} seeds x {ARGS.epochs} epochs per timed call, best of {ARGS.rounds} rounds")
    runs = {name: prepared(model) for name, (model, _) in VARIANTS.items()}
    best = {name: (float("inf"), float("inf")) for name in VARIANTS}
    for _ in range(ARGS.rounds):
        for name, (sharded, shared, seeds, state) in runs.items():
            t0, c0 = time.perf_counter(), time.process_time()
            state = jax.block_until_ready(sharded.advance(state, shared, seeds, 2, 2 + ARGS.epochs))
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            runs[name] = (sharded, shared, seeds, state)
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    per = ARGS.seeds * ARGS.epochs
    for name, (_, reference) in VARIANTS.items():
        wall, cpu = best[name][0] / per * 1e3, best[name][1] / per * 1e3
        ratio = "" if reference is None else (f"   {best[name][1] / best[reference][1]:.2f}x CPU, "
                                              f"{best[name][0] / best[reference][0]:.2f}x wall vs {reference}")
        print(f"{name:22s} {wall:.3f} ms wall, {cpu:.3f} ms CPU per seed-epoch{ratio}")
    print("budget: quantized <= 1.5x float per seed-epoch")


if __name__ == "__main__":
    main()
