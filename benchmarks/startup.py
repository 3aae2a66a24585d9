"""Start-up costs measured in fresh processes: ``import ambiseg_metrics`` and the first call.

A first call of small or mid-sized work runs in numpy (``core/_kernel_load.py``: the kernels are loaded
only once numpy work has taken about as long as loading them would). A first call of large work loads
the numba kernels from the on-disk cache (``cache=True``), or compiles them when the cache is empty (a
fresh install). All are reported, and all are excluded from the medians of the workload tables (every
workload warms up first).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time

__all__ = ["numba_floor", "startup_times"]

_SCRIPT = textwrap.dedent(
    """
    import sys, time
    t0 = time.perf_counter()
    import ambiseg_metrics as am
    t1 = time.perf_counter()
    import numpy as np
    rng = np.random.default_rng(0)
    b, side = {"large": (64, 128), "huge": (256, 128)}.get(sys.argv[1] if sys.argv[1:] else "", (2, 64))
    preds = rng.random((b, 16, side, side)) > 0.5
    gts = rng.random((b, 4, side, side)) > 0.5
    t2 = time.perf_counter()
    am.evaluate(preds, gts, batch=True)
    t3 = time.perf_counter()
    am.evaluate(preds, gts, batch=True)
    t4 = time.perf_counter()
    print(t1 - t0, t3 - t2, t4 - t3)
    """
)


def _run(env: dict[str, str], *args: str) -> tuple[float, float, float]:
    out = subprocess.run([sys.executable, "-c", _SCRIPT, *args], capture_output=True, text=True, check=True,
                         env=env).stdout.split()
    return float(out[0]), float(out[1]), float(out[2])


_FLOOR_MODULE = textwrap.dedent(
    """
    import numba


    @numba.njit(cache=True)
    def total(x):
        s = 0.0
        for v in x:
            s += v
        return s
    """
)

_FLOOR_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    t0 = time.perf_counter()
    import numba
    t1 = time.perf_counter()
    sys.path.insert(0, sys.argv[1])
    import floor_kernel
    floor_kernel.total(np.ones(3))
    t2 = time.perf_counter()
    print(t1 - t0, t2 - t1)
    """
)


def numba_floor(env: dict[str, str] | None = None) -> tuple[float, float]:
    """Seconds, in a fresh process, to ``import numba`` and then to run one trivial ``cache=True`` kernel
    loaded from numba's on-disk cache: the least any first call that uses numba can cost here (most of
    the second figure is numba initialising its LLVM target, whatever the kernel)."""
    env = dict(os.environ) if env is None else env
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "floor_kernel.py"), "w") as fh:
            fh.write(_FLOOR_MODULE)
        env = dict(env, NUMBA_CACHE_DIR=os.path.join(folder, "cache"))
        runs = []
        for _ in range(4):  # the first run compiles and fills the cache; the others load it
            out = subprocess.run([sys.executable, "-c", _FLOOR_SCRIPT, folder], capture_output=True,
                                 text=True, check=True, env=env).stdout.split()
            runs.append((float(out[0]), float(out[1])))
    warm = sorted(runs[1:], key=sum)[1]  # the median of the three cached runs
    return warm


def _example_seconds(env: dict[str, str]) -> float:
    """Wall time of a whole ``python -m ambiseg_metrics --example`` process (start-up included)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ambiseg_metrics", "--example"], capture_output=True, check=True,
                   env=env)
    return time.perf_counter() - t0


def startup_times(cold: bool = True) -> dict[str, float]:
    """Seconds for ``import ambiseg_metrics``, the first ``evaluate`` with the numba cache warm, the
    second call, and (``cold=True``) the first call with an empty cache (compilation)."""
    env = dict(os.environ)
    _run(env)  # make sure the on-disk cache exists
    _run(env, "huge")
    imp, first, second = _run(env)
    out = {"import ambiseg_metrics": imp,
           "first call, 2 images 64×64, N=16, M=4 (small: counted by numpy, no compiled code)": first,
           "second call (the same)": second,
           "first call, 64 images 128×128, N=16, M=4 (21 MB: numpy while the kernels are not loaded)":
           _run(env, "large")[1],
           "first call, 256 images 128×128, N=16, M=4 (84 MB: kernels loaded from the numba cache)":
           _run(env, "huge")[1]}
    floor_import, floor_call = numba_floor(env)
    out["floor: `import numba` in a fresh process (numpy already imported)"] = floor_import
    out["floor: then one trivial kernel from numba's cache (numba's LLVM set-up)"] = floor_call
    if cold:
        with tempfile.TemporaryDirectory() as cache:
            env_cold = dict(env, NUMBA_CACHE_DIR=cache)
            out["first-ever `ambiseg-eval --example` process, empty numba cache"] = _example_seconds(env_cold)
            out["first call on the 84 MB batch, empty numba cache (compiles the kernels)"] = _run(
                env_cold, "huge")[1]
    return out
