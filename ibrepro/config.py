"""Experiment files: load, validate, `--set` overrides, sweep expansion.

A config is plain data: a nested dict as in the TOML file, completed with defaults. Every
key has a declared type, default and range; anything else is an error naming the key. A
config stored by an older version is read with the defaults of the keys it predates
(`stored_config`). This module imports neither JAX nor numpy: it is read before any of
them start.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ibrepro.errors import UserError
from ibrepro.footprint import check_memory

DATASETS = ("tishby12", "mnist", "fashion-mnist")
# names of `ibrepro.train.model.ACTIVATIONS` (a test keeps the two the same)
ACTIVATIONS = ("tanh", "relu", "sigmoid", "softsign", "softplus", "elu", "swish", "silu", "gelu", "hard_tanh",
               "linear", "sign")
INITS = ("truncated_normal", "normal", "glorot_uniform")
# experiment and cell names: file names that stay inside the output directory
# (at most 200 characters: file systems allow 255 bytes, and suffixes such as .claims.json.tmp are added)
NAME_PATTERN = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,199}")
NAME_RULE = "letters, digits, '_', '-', '.', not starting with '.', at most 200 characters"
INT_MOST = 2**31 - 1  # JAX counts epochs and rows in int32
SEED_MOST = 2**32 - 1  # seeds become uint32 PRNG key data
SNAPSHOTS_MOST = 10**6
# keys a stored config keeps absent when absent: the file's arrays say what they are
STRUCTURAL_KEYS = ("model.hidden", "train.seeds")


@dataclass(frozen=True)
class Field:
    """One config key: its type, default (None = required) and an optional range check."""

    kind: type
    default: Any
    check: Callable[[Any], bool] | None = None
    rule: str = ""
    choices: tuple[str, ...] = ()
    most: int | None = INT_MOST  # the largest integer (ints only; None: bounded otherwise)


def _positive(v):
    return v > 0


def _non_negative(v):
    return v >= 0


FIELDS: dict[str, Field] = {
    "name": Field(str, None, lambda v: NAME_PATTERN.fullmatch(v) is not None, NAME_RULE),
    "dataset": Field(str, None, choices=DATASETS),
    "data.gamma": Field(float, 0.0, _non_negative, ">= 0"),
    "data.theta": Field(float, 7.6),
    "data.seed": Field(int, 0, _non_negative, ">= 0", most=SEED_MOST),
    "data.dir": Field(str, ""),
    "model.hidden": Field(list, [10, 7, 5, 4, 3],
                          lambda v: len(v) > 0 and all(type(w) is int and w > 0 for w in v),
                          "a non-empty list of positive integers (not true/false)"),
    "model.activation": Field(str, "tanh", choices=ACTIVATIONS),
    "model.init": Field(str, "truncated_normal", choices=INITS),
    "model.init_scale": Field(float, 1.0, _positive, "> 0"),
    "model.quantize_bits": Field(int, 0, lambda v: 0 <= v <= 16, "0 (off) or 1..16"),
    "model.binary_weights": Field(bool, False),
    "model.noise_std": Field(float, 0.0, _non_negative, ">= 0 (0 = no noise)"),
    "model.dropout": Field(float, 0.0, lambda v: 0 <= v < 1, "in [0, 1)"),
    "train.optimizer": Field(str, "adam", choices=("adam", "sgd")),
    "train.lr": Field(float, 4e-4, _positive, "> 0"),
    "train.momentum": Field(float, 0.0, lambda v: 0 <= v < 1, "in [0, 1)"),
    "train.batch_size": Field(int, 256, _non_negative, ">= 0 (0 = full batch)"),
    "train.epochs": Field(int, 10000, _positive, ">= 1"),
    "train.seeds": Field(int, 50, _positive, ">= 1", most=None),  # bounded by memory (`footprint`)
    "train.seed": Field(int, 0, _non_negative, ">= 0", most=SEED_MOST),
    "train.train_fraction": Field(float, 0.85, lambda v: 0 < v <= 1, "in (0, 1]"),
    "log.snapshots": Field(int, 300, lambda v: v >= 2, ">= 2", most=SNAPSHOTS_MOST),
    "log.eval_samples": Field(int, 10000, _positive, ">= 1"),
    "log.train_metric_samples": Field(int, 10000, _positive, ">= 1"),
    "log.dtype": Field(str, "float32", choices=("float32", "float16")),
    "log.activations": Field(bool, True),
    "log.checkpoint_seconds": Field(float, 30.0, _positive, "> 0"),
}


def _get(tree: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def _set(tree: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
        if not isinstance(tree, dict):
            raise UserError(f"config key {dotted!r}: {part!r} is not a table")
    tree[leaf] = value


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """A config as {dotted key: value}; the sweep table stays one value."""
    flat = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and dotted != "sweep":
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _coerce(key: str, value: Any) -> Any:
    """Check a value against its field; ints are accepted where floats are expected."""
    field = FIELDS[key]
    if field.kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, field.kind) or (isinstance(value, bool) and field.kind is not bool):
        raise UserError(f"config key {key!r} must be {field.kind.__name__}, got {_short(value)}")
    if field.kind is float and not math.isfinite(value):
        raise UserError(f"config key {key!r} must be finite, got {value!r}")
    if field.choices and value not in field.choices:
        raise UserError(f"config key {key!r}: unknown value {value!r} (choose from {', '.join(field.choices)})")
    if field.check is not None and not field.check(value):
        raise UserError(f"config key {key!r} must be {field.rule}, got {_short(value)}")
    if field.kind is int and field.most is not None and value > field.most:
        raise UserError(f"config key {key!r} must be at most {field.most}, got {_short(value)}")
    return value


def _short(value: Any) -> str:
    """A value for a message, cut to one readable piece."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def split_setting(text: str) -> tuple[str, str]:
    """One `--set key=value` as (key, value text), both stripped; UserError without a key."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set expects key=value, got {text!r}")
    return key.strip(), raw.strip()


def parse_override(text: str) -> tuple[str, Any]:
    """Parse one `--set key=value`; the value is read as a TOML literal, else a string."""
    key, raw = split_setting(text)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def resolve(raw: dict, overrides: list[str] = ()) -> dict:
    """Validate a raw config (as read from TOML), apply overrides, fill defaults."""
    config = copy.deepcopy(raw)
    for text in overrides:
        key, value = parse_override(text)
        if key not in FIELDS and not key.startswith("sweep."):
            raise UserError(f"unknown config key {key!r} in --set")
        if key.startswith("sweep."):
            config.setdefault("sweep", {})[key[len("sweep."):]] = value
        else:
            _set(config, key, value)
    sweep = config.pop("sweep", {}) or {}
    config.pop("reproduce", None)  # what scripts/reproduce.sh runs (ibrepro.reproduce_plan), not a cell's config
    flat = flatten(config)
    for key in flat:
        if key not in FIELDS:
            raise UserError(f"unknown config key {key!r}")
    resolved: dict = {}
    for key, field in FIELDS.items():
        if key in flat:
            value = _coerce(key, flat[key])
        elif field.default is None:
            raise UserError(f"config is missing the required key {key!r}")
        else:
            value = copy.deepcopy(field.default)
        _set(resolved, key, value)
    if not isinstance(sweep, dict):
        raise UserError("[sweep] must be a table of key = [values]")
    for key, values in sweep.items():
        if key not in FIELDS or key in ("name", "dataset"):
            raise UserError(f"unknown or unsweepable key {key!r} in [sweep]")
        if not isinstance(values, list) or not values:
            raise UserError(f"[sweep] {key!r} must be a non-empty list")
    try:
        resolved["sweep"] = {key: [_coerce(key, v) for v in values] for key, values in sweep.items()}
    except UserError as exc:
        raise UserError(f"[sweep]: {exc}") from None
    for key, values in resolved["sweep"].items():
        seen = [json.dumps(v) for v in values]
        twice = next((v for v, text in zip(values, seen) if seen.count(text) > 1), None)
        if twice is not None:
            raise UserError(f"[sweep] {key!r} lists {_short(twice)} twice; list each value once")
    return resolved


def load(path: str | Path, overrides: list[str] = ()) -> dict:
    """Read and resolve an experiment file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no experiment file at {path}")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid TOML: {exc}") from None
    return resolve(raw, overrides)


def _label(value: Any) -> str:
    if isinstance(value, list):
        return "x".join(str(v) for v in value)
    return str(value)


def cells(config: dict) -> list[tuple[str, dict]]:
    """Expand the sweep into (cell name, cell config) pairs; one cell named "cell" without one."""
    sweep = config["sweep"]
    if not sweep:
        return [("cell", _checked_cell(config))]
    keys = list(sweep)
    out = []
    for values in itertools.product(*(sweep[k] for k in keys)):
        cell = copy.deepcopy(config)
        for key, value in zip(keys, values):
            _set(cell, key, value)
        name = "_".join(f"{key.rsplit('.', 1)[1]}-{_label(value)}" for key, value in zip(keys, values))
        out.append((name, _checked_cell(cell)))
    names = [name for name, _ in out]
    twice = next((name for name in names if names.count(name) > 1), None)
    if twice is not None:
        raise UserError(f"[sweep] gives two cells the name {twice!r}; make the swept values differ in how they print")
    return out


def _checked_cell(cell: dict) -> dict:
    """A cell's config after the checks that involve several keys (UserError otherwise)."""
    if cell["model"]["noise_std"] > 0 and not cell["log"]["activations"]:
        raise UserError("model.noise_std > 0 needs log.activations = true: a noise-injected layer's "
                        "recorded values depend on the noise drawn when they were recorded, so they "
                        "cannot be recomputed from parameters")
    train = cell["train"]
    if train["optimizer"] == "adam" and train["momentum"] != 0:
        raise UserError(f"train.momentum = {train['momentum']} has no effect with train.optimizer = 'adam' "
                        "(Adam keeps its own moment estimates); set train.optimizer = 'sgd' or remove train.momentum")
    check_memory(cell)
    return cell


# file names are at most 255 bytes; the longest made from a cell name is <cell>.claims.json.tmp
NAME_BYTES = 255 - len(".claims.json.tmp")


def checked_name(name: str) -> str:
    """An experiment or cell name that stays inside the output directory, or UserError."""
    if not NAME_PATTERN.fullmatch(name):
        raise UserError(f"name {name!r} is not usable as a file name ({NAME_RULE})")
    if len(name) > NAME_BYTES:
        raise UserError(f"name {name[:40]}... is {len(name)} characters long; file names allow "
                        f"{NAME_BYTES} (shorten the name or the sweep values in it)")
    return name


def get(config: dict, dotted: str) -> Any:
    """The value at a dotted key."""
    return _get(config, dotted)


def differing_keys(*configs: dict) -> list[str]:
    """Dotted keys whose values are not the same in all the given configs."""
    flat = [flatten(c) for c in configs]
    keys = set().union(*flat)
    return sorted(k for k in keys if len({json.dumps(f.get(k)) for f in flat}) > 1)


def stored_config(raw: Any, source: str) -> dict:
    """A config as a file stores it, with the defaults of the keys it predates filled in.

    `source` names the file in messages. Keys without a default (name, dataset) and the
    values it holds are kept as stored; the structural keys `model.hidden` and `train.seeds`
    are left absent when absent (the file's arrays say what they are). UserError when the
    config is not a table, names no dataset (any name: files written by `ibrepro.write_run`
    say "custom"), or holds a value where a table belongs.
    """
    if not isinstance(raw, dict):
        raise UserError(f"{source}: its config is not a JSON object; the file is damaged (train it again)")
    if not isinstance(raw.get("dataset"), str) or not raw["dataset"]:  # own networks' files say "custom"
        raise UserError(f"{source}: its config names no dataset (found {_short(raw.get('dataset'))}); "
                        "the file is damaged (train it again)")
    config = copy.deepcopy(raw)
    for key, field in FIELDS.items():
        if field.default is None or key in STRUCTURAL_KEYS:
            continue
        *tables, leaf = key.split(".")
        tree = config
        for table in tables:
            tree = tree.setdefault(table, {})
            if not isinstance(tree, dict):
                raise UserError(f"{source}: its config holds a value at {table!r}, where a table belongs; "
                                "the file is damaged (train it again)")
        tree.setdefault(leaf, copy.deepcopy(field.default))
    return config
