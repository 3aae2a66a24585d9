"""The machine: its description, its memory bandwidth, and peak-memory measurement."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
import textwrap
import time
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Bandwidth", "PopcountRate", "machine_info", "copy_bandwidth", "popcount_rate", "traced_peak",
           "subprocess_peak_rss"]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _caches() -> str:
    """L1d/L2/L3 sizes as ``lscpu`` reports them (empty where it is missing)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    keep = []
    for line in out.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("L1d cache", "L2 cache", "L3 cache"):
            keep.append(f"{name.strip().split()[0]} {value.strip()}")
    return ", ".join(keep) or "unknown"


def _version(module: str) -> str:
    try:
        mod = __import__(module)
        return getattr(mod, "__version__", "?")
    except Exception:
        return "not installed"


def machine_info() -> dict[str, str]:
    """CPU model, cores, memory, load average, library versions and the date (UTC)."""
    try:
        mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal"))
        mem = f"{mem_kb / 2**20:.1f} GiB"
    except (OSError, StopIteration):
        mem = "unknown"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    import numba

    return {
        "date (UTC)": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "CPU": _cpu_model(),
        "caches": _caches(),
        "cores (os.cpu_count)": str(os.cpu_count()),
        "numba threads": str(numba.get_num_threads()),
        "memory": mem,
        "load average (1, 5, 15 min) at start": load,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "torch": _version("torch"),
        "monai": _version("monai"),
        "torchmetrics": _version("torchmetrics"),
        "medpy": _version("medpy"),
    }


@dataclass(frozen=True)
class Bandwidth:
    """Copy bandwidth in bytes/s, STREAM convention (bytes read + bytes written per second)."""

    one_thread: float
    all_threads: float
    n_threads: int
    nbytes: int

    @property
    def best(self) -> float:
        return max(self.one_thread, self.all_threads)

    def bound_seconds(self, nbytes_read: int) -> float:
        """Time to stream ``nbytes_read`` bytes from memory at the best measured bandwidth."""
        return nbytes_read / self.best


def copy_bandwidth(nbytes: int = 256 << 20, repeats: int = 5, n_threads: int | None = None) -> Bandwidth:
    """Measure memory bandwidth with large ``np.copyto`` (one thread, then one copy per core).

    The arrays are much larger than the last-level cache; the best of ``repeats`` runs is kept (the
    machine's capability, not its noise). numpy releases the GIL in ``copyto``, so the threaded run
    copies disjoint halves/quarters concurrently.
    """
    n_threads = n_threads or os.cpu_count() or 1
    src = np.ones(nbytes, dtype=np.uint8)
    dst = np.zeros_like(src)
    np.copyto(dst, src)  # fault the pages in

    def best_of(fn: Callable[[], None]) -> float:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return 2.0 * nbytes / min(times)

    one = best_of(lambda: np.copyto(dst, src))
    parts = np.array_split(np.arange(nbytes), n_threads)
    bounds = [(int(p[0]), int(p[-1]) + 1) for p in parts if len(p)]
    with ThreadPoolExecutor(n_threads) as pool:

        def threaded() -> None:
            list(pool.map(lambda ab: np.copyto(dst[ab[0]:ab[1]], src[ab[0]:ab[1]]), bounds))

        many = best_of(threaded)
    return Bandwidth(one, many, n_threads, nbytes)


@dataclass(frozen=True)
class PopcountRate:
    """Population counts of 64-bit words per second (one thread, and all threads together)."""

    one_thread: float
    all_threads: float
    n_threads: int

    @property
    def best(self) -> float:
        return max(self.one_thread, self.all_threads)

    def bound_seconds(self, word_pairs: float) -> float:
        """Time to popcount ``word_pairs`` words at the best measured rate: every pair of words of the
        Gram counts needs at least one popcount (plus an AND and an add), so no Gram kernel is faster."""
        return word_pairs / self.best


def _popcount_kernel():
    """A numba loop summing ``popcount(a[w])`` over an L1-resident array ``reps`` times (compiled here:
    the benchmark measures the CPU, not the library)."""
    from numba import njit, types
    from numba.extending import intrinsic

    @intrinsic
    def ctpop(typingctx, x):  # pragma: no cover - compiled by numba
        def codegen(context, builder, signature, args):
            return builder.ctpop(args[0])

        return types.uint64(types.uint64), codegen

    @njit(nogil=True)
    def count(a, reps):  # pragma: no cover - compiled by numba
        s = np.uint64(0)
        for r in range(reps):
            for w in range(a.shape[0]):
                s += ctpop(a[w])
            s += np.uint64(r)  # a loop-carried use, so the loop is not folded away
        return s

    return count


def popcount_rate(words: int = 512, reps: int = 20_000, repeats: int = 5,
                  n_threads: int | None = None) -> PopcountRate:
    """Measure the popcount throughput of this CPU: ``popcount`` of 64-bit words held in L1 (4 KiB), in a
    loop that LLVM vectorises as the Gram kernel's (``vpopcntq`` where the CPU has it), best of
    ``repeats``; once on one thread and once on every core at the same time (the loop releases the GIL).
    """
    n_threads = n_threads or os.cpu_count() or 1
    count = _popcount_kernel()
    arrays = [np.random.default_rng(i).integers(0, 2**63, words).astype(np.uint64) for i in range(n_threads)]
    count(arrays[0], 1)  # compile

    def best_of(fn: Callable[[], None], n: int) -> float:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return n * words * reps / min(times)

    one = best_of(lambda: count(arrays[0], reps), 1)
    with ThreadPoolExecutor(n_threads) as pool:
        many = best_of(lambda: list(pool.map(lambda a: count(a, reps), arrays)), n_threads)
    return PopcountRate(one, many, n_threads)


def traced_peak(fn: Callable[[], object]) -> int:
    """Peak bytes allocated through Python/numpy while ``fn()`` runs (tracemalloc; numpy reports to it)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


_RSS_SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np, ambiseg_metrics as am

    def hwm():  # peak resident set of this process (per address space: reset by exec, unlike ru_maxrss)
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise OSError("no VmHWM")

    preds = np.load(sys.argv[1]); gts = np.load(sys.argv[2])
    from ambiseg_metrics.core import counts  # small inputs skip the kernels: load them on a sliver
    from ambiseg_metrics.core._kernel_load import load_kernels
    load_kernels()  # else a fresh process runs mid-sized calls in numpy first (core/_kernel_load.py)
    limit, counts._NUMPY_COUNT_BYTES = counts._NUMPY_COUNT_BYTES, 0
    am.evaluate(preds[:, :2, :4], gts[:, :2, :4], batch=True)  # load the kernels before measuring
    counts._NUMPY_COUNT_BYTES = limit
    before = hwm()
    am.evaluate(preds, gts, batch=True)
    print(before, hwm())
    """
)


def subprocess_peak_rss(preds: np.ndarray, gts: np.ndarray, workdir: Path) -> tuple[int, int] | None:
    """Peak resident memory of a fresh process before and after ``evaluate(preds, gts, batch=True)``.

    The inputs are saved to ``workdir`` and loaded by the child, so the child's high-water mark before
    the call is its inputs plus the interpreter and the kernels; the growth of the mark is the extra
    peak of the call. Returns (peak_before, peak_after) in bytes, or None where ``/proc`` is missing.
    """
    if not Path("/proc/self/status").exists():
        return None
    workdir.mkdir(parents=True, exist_ok=True)
    p_file, g_file = workdir / "preds.npy", workdir / "gts.npy"
    np.save(p_file, preds)
    np.save(g_file, gts)
    try:
        out = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(p_file), str(g_file)],
                             capture_output=True, text=True, check=True).stdout.split()
    finally:
        p_file.unlink(missing_ok=True)
        g_file.unlink(missing_ok=True)
        if not any(workdir.iterdir()):
            workdir.rmdir()
    return int(out[0]), int(out[1])
