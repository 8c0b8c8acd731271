"""Where estimator kernels run (placement): the device per worker thread, and the host or device path."""

from __future__ import annotations

import itertools
import os
import threading

import jax

from ibrepro.errors import UserError

KERNELS_ENV = "IBREPRO_KERNELS"
KERNEL_CHOICES = ("auto", "host", "device")

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


def device_kernels() -> bool:
    """Whether estimators run whole on the device (sorting and counting included), or finish
    on the host with numpy: $IBREPRO_KERNELS = device | host | auto (the default: the device
    path on accelerators, the host path on CPUs, where numpy's sort is the faster)."""
    choice = os.environ.get(KERNELS_ENV, "auto") or "auto"
    if choice not in KERNEL_CHOICES:
        raise UserError(f"${KERNELS_ENV} must be one of {', '.join(KERNEL_CHOICES)}, got {choice!r}")
    return choice == "device" or (choice == "auto" and jax.default_backend() != "cpu")
