"""How much memory training one cell needs, estimated from its config before any work starts.

The estimate counts what grows with the config: the dataset, each seed's split indices and
masks, parameters with their gradients, Adam moments and the copies kept for writing, and one
snapshot's layer outputs (on the device, the copy waiting to be written and the host copy).
It is a rough upper bound, used to refuse configs no machine of this size could train
(`train.seeds = 100000000000`, `model.hidden = [100000000000]`) before they allocate.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ibrepro.errors import UserError

FLOAT_BYTES = 4
PARAM_COPIES = 8  # params, gradients, two Adam moments, a pending-write copy, host copies
LAYER_COPIES = 3  # device output, the copy waiting to be written, the host array
SPLIT_BYTES_PER_ROW = 9  # int32 training index, float32 test weight, bool mask


@dataclass(frozen=True)
class DatasetShape:
    """Rows of the training pool and of the evaluation set, input width and classes."""

    pool: int
    eval: int
    width: int
    classes: int


DATASET_SHAPES = {
    "tishby12": DatasetShape(pool=4096, eval=4096, width=12, classes=2),
    "mnist": DatasetShape(pool=60000, eval=10000, width=784, classes=10),
    "fashion-mnist": DatasetShape(pool=60000, eval=10000, width=784, classes=10),
}


def training_bytes(config: dict) -> int:
    """Estimated peak memory (bytes) to train a resolved cell config."""
    shape = DATASET_SHAPES[config["dataset"]]
    seeds = config["train"]["seeds"]
    widths = [*config["model"]["hidden"], shape.classes]
    fan_in = [shape.width, *widths[:-1]]
    params = sum((w_in + 1) * w_out for w_in, w_out in zip(fan_in, widths))
    n_eval = shape.eval if config["dataset"] == "tishby12" else min(shape.eval, config["log"]["eval_samples"])
    batch = config["train"]["batch_size"] or shape.pool
    rows = n_eval + min(batch, shape.pool)  # one snapshot's evaluation and one minibatch
    per_seed = (FLOAT_BYTES * (PARAM_COPIES * params + LAYER_COPIES * rows * sum(widths))
                + SPLIT_BYTES_PER_ROW * shape.pool)
    return FLOAT_BYTES * shape.pool * shape.width * 2 + seeds * per_seed


def machine_bytes() -> int:
    """This machine's physical memory in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def human(n: float) -> str:
    """Bytes as a short size: 11.0 GB, 4.8 TB."""
    units = ("B", "KB", "MB", "GB", "TB", "PB", "EB")
    k = 0
    while n >= 1000 and k < len(units) - 1:
        n, k = n / 1000, k + 1
    return f"{n:.1f} {units[k]}"


def check_memory(config: dict) -> None:
    """UserError naming the sizes when a cell needs more memory than this machine has."""
    need, have = training_bytes(config), machine_bytes()
    if need > have:
        raise UserError(f"training needs about {human(need)} of memory (train.seeds = {config['train']['seeds']}, "
                        f"model.hidden = {config['model']['hidden']}), more than this machine's {human(have)}; "
                        "lower train.seeds or model.hidden")
