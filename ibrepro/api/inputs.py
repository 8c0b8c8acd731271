"""Checking what a caller hands the API: one ValueError that names the argument, never a
traceback from deep inside JAX or HDF5."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import numpy as np

from ibrepro.errors import UserError

P = ParamSpec("P")
R = TypeVar("R")


class InvalidInput(UserError, ValueError):
    """Bad input through the API: a ValueError for Python callers, a UserError for the CLI."""


def user_errors(function: Callable[P, R]) -> Callable[P, R]:
    """Raise the library's UserErrors (bad files, names, settings) as `InvalidInput`; their
    subclasses (an interrupted training run) pass unchanged."""

    @functools.wraps(function)
    def checked(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except UserError as exc:
            if type(exc) is not UserError:
                raise
            raise InvalidInput(str(exc)) from None

    return checked


def float_array(name: str, value, min_ndim: int) -> np.ndarray:
    """`value` as a finite float array of at least `min_ndim` axes, or InvalidInput naming `name`."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} must be an array of numbers ({exc})") from None
    if array.dtype.kind not in "biuf":
        raise InvalidInput(f"{name} must hold numbers, got dtype {array.dtype}")
    if array.ndim < min_ndim:
        raise InvalidInput(f"{name} must have at least {min_ndim} axes (..., N inputs, width), "
                           f"got shape {array.shape}")
    if array.dtype.kind != "f":
        array = array.astype(np.float64)
    if not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0]
        raise InvalidInput(f"{name} holds NaN or infinite values (first at index {tuple(int(i) for i in bad)}); "
                           "estimates need finite activations")
    return array


def label_vector(name: str, value, n_rows: int, rows_of: str) -> np.ndarray:
    """`value` as integer class labels (n_rows,), or InvalidInput naming `name`."""
    labels = np.asarray(value)
    if labels.ndim != 1 or labels.shape[0] != n_rows:
        raise InvalidInput(f"{name} must be one label per row of {rows_of}: shape ({n_rows},), got {labels.shape}")
    if labels.dtype.kind not in "biu":
        if labels.dtype.kind != "f" or not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise InvalidInput(f"{name} must hold integer class labels, got dtype {labels.dtype}")
        labels = labels.astype(np.int64)
    return labels
