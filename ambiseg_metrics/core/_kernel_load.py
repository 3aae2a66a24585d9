"""Numpy or compiled code for a mid-sized call, while this process has not loaded the kernels yet.

Every count and readout has two exact implementations: numpy (fast to start: nothing to load) and the
numba kernels of :mod:`._kernels` (fast to run, but importing numba and loading the cached kernels costs
about 0.4 s per process on the benchmark machine, ``python -m benchmarks``'s start-up figures). Small
calls always take numpy and large ones always the kernels (each call site has its own limit). In
between, a process that has not loaded the kernels runs the call with numpy, and keeps doing so until
the mid-sized calls run that way have taken :data:`LOAD_SECONDS` in all; the next one loads the kernels.

This is the "ski rental" rule: renting (numpy) until the rent paid equals the price (the load) costs at
most about twice what the better choice in hindsight would have, whatever the calls that follow. A
notebook's first :func:`~ambiseg_metrics.evaluate` on a few dozen images returns without loading numba.
The results are the same bits either way (tests/test_small_path.py, tests/test_readout_kernels.py and
tests/test_kernel_load.py compare the two paths), so the choice changes only the time and the memory: the
numpy count holds a 0/1 copy of the masks (at most 64 MB, ``counts._COLD_NUMPY_COUNT_BYTES``) and converts
8 MB of it to float32 at a time, where the kernels need next to none.
"""

from __future__ import annotations

import importlib
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

#: The module whose import loads numba and the kernels.
KERNELS = __name__.rpartition(".")[0] + "._kernels"

#: Seconds of numpy work on mid-sized calls after which the kernels are loaded: about what loading
#: numba and the cached kernels takes here (numba's floor, ``import numba`` and one cached kernel, was
#: 0.42 s, and a first call that loads the count kernels 0.41 s, in benchmarks/RESULTS.md of 2026-11-25).
LOAD_SECONDS = 0.4

_spent = 0.0
_lock = threading.Lock()


def kernels_loaded() -> bool:
    """Whether this process has imported the compiled kernels (then they are always the faster choice)."""
    return KERNELS in sys.modules


def numpy_while_unloaded(fits: bool) -> bool:
    """True if a call too large for the numpy-only limit of its site should still run in numpy (or, for
    the assignment of the HM-IoU, the same loops in the interpreter).

    Parameters
    ----------
    fits : bool
        The call is within its site's limit for mid-sized calls (one such call takes well under
        :data:`LOAD_SECONDS` in numpy).

    Returns
    -------
    bool
        ``fits``, the kernels not loaded yet, and the numpy time charged so far (:func:`charged`) below
        :data:`LOAD_SECONDS`.
    """
    return fits and not kernels_loaded() and _spent < LOAD_SECONDS


def load_kernels() -> None:
    """Import numba and the kernels now (their cached code loads at each kernel's first call): for a
    caller that knows a long run follows (a batched ``ambiseg-eval`` run), where renting is a waste."""
    importlib.import_module(KERNELS)


@contextmanager
def charged() -> Iterator[None]:
    """Charge the time of the block (a call :func:`numpy_while_unloaded` sent to numpy) to the rent."""
    global _spent
    t0 = time.perf_counter()
    try:
        yield
    finally:
        with _lock:
            _spent += time.perf_counter() - t0
