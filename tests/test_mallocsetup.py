"""glibc malloc settings for the analyze command: freed blocks are reused, not mapped anew."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ibrepro import mallocsetup

# In a fresh process: a worker thread takes three 8 MiB blocks, writes them, frees them, ten
# times (a block's estimator temporaries); prints the pages faulted per page written once.
ROUNDS = """
import ctypes, resource, sys, threading
from ibrepro.mallocsetup import reuse_freed_memory
if sys.argv[1] == "tuned":
    assert reuse_freed_memory()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
size = 8 * 2**20
def rounds():
    for _ in range(10):
        blocks = [libc.malloc(size) for _ in range(3)]
        for block in blocks:
            ctypes.memset(block, 1, size)
        for block in blocks:
            libc.free(block)
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
before = faults()
worker = threading.Thread(target=rounds)
worker.start()
worker.join()
print((faults() - before) / (3 * size / 4096))
"""


def faults_per_page(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", ROUNDS, mode], capture_output=True, text=True, check=True)
    return float(out.stdout)


@pytest.mark.skipif(not mallocsetup.has_glibc(), reason="glibc only")
def test_freed_blocks_are_reused_instead_of_faulted_in_again():
    assert faults_per_page("default") > 5  # glibc's defaults: most rounds map fresh pages
    assert faults_per_page("tuned") < 1.5  # tuned: the first round's pages serve all ten


def test_nothing_changes_without_glibc(monkeypatch):
    monkeypatch.setattr(mallocsetup.sys, "platform", "darwin")
    assert mallocsetup.reuse_freed_memory() is False
