"""The estimator interface: parameters, labels, a block of activations, the estimator record.

An estimator turns a block of layer activations (several seed-epochs of one layer, each an
(N, width) matrix over the N evaluation inputs) into I(X;T) and I(T;Y) in bits, with X
uniform over the N inputs. Adding an estimator family means one module that builds an
`Estimator` and one line in the registry (`ibrepro/analysis/estimators/__init__.py`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ibrepro.data.labels import label_entropy
from ibrepro.errors import UserError

Value = int | float | str


@dataclass(frozen=True)
class Param:
    """One estimator parameter: its type, default, allowed range and short tag.

    `low`/`high` are inclusive bounds for numbers (`low_open` makes the lower one strict);
    `choices` lists the allowed strings; `tag` prefixes the value in group names, unless
    `in_name` is False (a parameter that cannot change the estimate, only allow it).
    A default of None means the estimator fills it from the run's config. `aliases` are former
    names: still accepted by `--set` (with a deprecation note) and read from older groups' attrs.
    `legacy`, for a parameter added after groups were written, is the value those groups were
    computed with: their attrs lack it (readers take `legacy`), and group names leave it out
    at that value, so a group written before keeps its name and meaning.
    """

    name: str
    kind: type
    default: Value | None
    tag: str
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] = ()
    in_name: bool = True
    aliases: tuple[str, ...] = ()
    legacy: Value | None = None

    def parse(self, text: str) -> Value:
        """Turn a `--set` string into a checked value (UserError when it is not one)."""
        try:
            value = self.kind(text)
        except ValueError:
            raise UserError(f"parameter {self.name} wants {self.kind.__name__}, got {text!r}") from None
        self.check(value)
        return value

    def check(self, value: Value) -> None:
        """Raise UserError unless `value` lies in this parameter's range."""
        if self.choices and value not in self.choices:
            raise UserError(f"parameter {self.name} must be one of {', '.join(self.choices)}, got {value!r}")
        if self.kind is float and not math.isfinite(value):
            raise UserError(f"parameter {self.name} must be finite, got {value!r}")
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = self.high is not None and value > self.high
        if too_low or too_high:
            lo = "-inf" if self.low is None else f"{self.low:g}"
            hi = "inf" if self.high is None else f"{self.high:g}"
            bracket = "(" if self.low_open else "["
            raise UserError(f"parameter {self.name} must lie in {bracket}{lo}, {hi}], got {value!r}")


@dataclass(frozen=True)
class Labels:
    """The class labels of the N evaluation inputs, as codes 0..C-1.

    `soft`, when set, is p(y|x) (N, C) over the same classes, and asks for soft-label
    I(T;Y) (from p(y|x), not from the one draw in `codes`). Estimators that support it say so
    (`Estimator.soft_labels`); the drawn `codes` stay available to all.
    """

    codes: np.ndarray
    counts: np.ndarray
    soft: np.ndarray | None = None

    @classmethod
    def from_labels(cls, y: np.ndarray, soft: np.ndarray | None = None) -> Labels:
        """Labels from any integer label vector (codes are ranks of the distinct values),
        with p(y|x) (N, C) for soft labels when given."""
        _, codes, counts = np.unique(np.asarray(y), return_inverse=True, return_counts=True)
        if soft is not None:
            soft = np.asarray(soft, np.float64)
            if soft.ndim != 2 or soft.shape[0] != codes.size:
                raise ValueError(f"p(y|x) of shape {soft.shape} does not match {codes.size} labels")
        return cls(codes=codes.astype(np.int64).ravel(), counts=counts.astype(np.int64), soft=soft)

    @property
    def n(self) -> int:
        return int(self.codes.shape[0])

    @property
    def n_classes(self) -> int:
        return int(self.counts.shape[0])

    @property
    def entropy(self) -> float:
        """H(Y) in bits, with each input weighted 1/N (p(y) the mean of p(y|x) when soft)."""
        return label_entropy(self.codes, self.soft)


@dataclass(frozen=True)
class Block:
    """Activations of one layer for several seed-epochs: `acts` (B, N, width).

    `seeds` (B,) gives the run file's seed index of each of the B matrices; `layer` is the
    layer's position (0 = first hidden layer); `inputs` (N, d), when given, are the recorded
    inputs X (`data/x`), for estimators that use X itself; `epochs` (B,), when given, are the
    matrices' positions on the run file's epoch axis.
    """

    acts: np.ndarray
    seeds: np.ndarray
    layer: int = 0
    inputs: np.ndarray | None = None
    epochs: np.ndarray | None = None


def finite_rows(acts) -> np.ndarray:
    """(B,) whether each seed-epoch's activations (B, N, w) are all finite (numpy, or a jax
    array reduced where it lies). A diverged network's seed-epochs are not: their estimates
    are NaN, never what an estimator makes of NaN or infinity (binning would give 0 bits)."""
    if isinstance(acts, np.ndarray):
        return np.isfinite(acts).all(axis=(1, 2))
    import jax.numpy as jnp

    return np.asarray(jnp.isfinite(acts).all(axis=(1, 2)))


# estimate(block, labels, params, context) -> {variant: (ixt (B,), ity (B,)[, extras])}, bits;
# the optional extras {name: (B,) array} are stored beside `ixt` and `ity` (e.g. `ixt_se`)
EstimateFn = Callable[[Block, Labels, Mapping[str, Value], Any], dict[str, tuple]]
# prepare(blocks, params) -> context: one pass over every selected layer and seed-epoch
PrepareFn = Callable[[Iterator[Block], Mapping[str, Value]], Any]
# from_run(run file handle, params) -> context: what an estimator reads beyond activations
FromRunFn = Callable[[Any, Mapping[str, Value]], Any]


def _no_defaults(config: Mapping[str, Any]) -> dict[str, Value]:
    return {}


def _no_check(params: Mapping[str, Value]) -> None:
    return None


@dataclass(frozen=True)
class Estimator:
    """An estimator family member, as the registry lists it.

    - `estimate` maps a Block to I(X;T), I(T;Y) per seed-epoch for each of `variants`
      (one group is written per variant; "" means a single unnamed variant).
    - `config_defaults(config)` fills parameters whose default is None from the run config.
    - `check(params)` validates combinations of parameters (single values are checked by Param).
    - `prepare`, when given, sees every selected block once before estimation starts and
      returns a context handed to every `estimate` call.
    - `from_run`, when given instead, builds that context from the open (read-only) run file,
      e.g. the network's parameters; it stays open while the estimates run.
    - `batch_limit` caps how many seed-epochs one Block holds (for costly estimators).
    - `fixed_batch` asks for Blocks of one size per layer (a short last Block is filled up
      with copies of its last seed-epoch whose results are dropped), so compiled kernels see
      one shape.
    - `soft_labels` says that `estimate` honours `Labels.soft` (soft-label I(T;Y)); analyze
      refuses soft labels for estimators without it.
    - `device_path` says that `estimate` runs whole on the device when `device_kernels()`
      holds and then also takes a Block whose `acts` is a jax array already there: activations
      recomputed from parameters are not copied to the host and back.
    """

    name: str
    params: tuple[Param, ...]
    estimate: EstimateFn
    help: str
    variants: tuple[str, ...] = ("",)
    config_defaults: Callable[[Mapping[str, Any]], dict[str, Value]] = _no_defaults
    check: Callable[[Mapping[str, Value]], None] = _no_check
    prepare: PrepareFn | None = None
    from_run: FromRunFn | None = None
    batch_limit: int | None = None
    fixed_batch: bool = False
    soft_labels: bool = False
    device_path: bool = False
    param_index: dict[str, Param] = field(init=False, repr=False, compare=False)  # by name and alias

    def __post_init__(self) -> None:
        object.__setattr__(self, "param_index", {n: p for p in self.params for n in (p.name, *p.aliases)})

    def resolve(self, given: Mapping[str, Value], config: Mapping[str, Any]) -> dict[str, Value]:
        """All parameter values: given ones, else config-derived defaults, else plain defaults."""
        from_config = self.config_defaults(config)
        values: dict[str, Value] = {}
        for p in self.params:
            if p.name in given:
                values[p.name] = given[p.name]
            elif p.default is not None:
                values[p.name] = p.default
            elif p.name in from_config:
                values[p.name] = from_config[p.name]
                p.check(values[p.name])
            else:
                raise UserError(f"estimator {self.name}: set {p.name} (no default for this run's config; "
                                f"{p.name}: {p.help})")
        self.check(values)
        return values

    def group_name(self, values: Mapping[str, Value], variant: str) -> str:
        """Group name from the estimator name, tagged parameter values and the variant."""
        parts = [self.name] + [f"{p.tag}{format_value(values[p.name])}" for p in self.params
                               if p.in_name and values[p.name] != p.legacy]
        if variant:
            parts.append(variant)
        return "_".join(parts)


def format_value(value: Value) -> str:
    """Compact text for a parameter value (floats in %g form)."""
    if isinstance(value, float):
        return format(value, "g")
    return str(value)
