"""Which JAX device an estimator kernel runs on, per worker thread."""

from __future__ import annotations

import itertools
import threading

import jax

_DEVICES = threading.local()
_NEXT_DEVICE = itertools.count()


def thread_device() -> jax.Device:
    """A device of JAX's default backend per calling thread, round robin.

    On a CPU host with one device per core, each analysis worker thread gets its own core;
    on an accelerator every thread shares the accelerator(s).
    """
    if not hasattr(_DEVICES, "device"):
        devices = jax.local_devices()
        _DEVICES.device = devices[next(_NEXT_DEVICE) % len(devices)]
    return _DEVICES.device
