"""Spreading cases over local processes: how many (``--jobs auto``), in which chunks, with how many threads.

``jobs=N`` runs this process and ``N - 1`` workers (:func:`ambiseg_metrics.files.workers.run_in_processes`).
Cases are handed out in contiguous chunks — about :data:`CHUNKS_PER_WORKER` per process, at most
:data:`MAX_CHUNK` cases each — rather than one at a time: a chunk is read and evaluated as a batch
(:func:`ambiseg_metrics.files.case_eval.evaluate_chunk`), the pipe carries one message per chunk, and its
results come back as soon as it is done, so a progress bar still moves. The workers take chunks from the
front once they have loaded the compiled kernels, this process from the back, so a worker slow to start
never holds the run up. Each process gets ``usable CPUs // jobs`` kernel threads, so that two processes
on two cores do not run four threads.

``jobs="auto"`` (the CLI's default) decides from the workload and the machine (:func:`auto_jobs`): one
process below :data:`AUTO_MIN_CASES` cases of the first case's kind (decoded image files, or
``.npy``/``.npz`` stacks, whose reading is cheap), fewer cases for cases with more mask pixels; else one
process per *free* CPU (:func:`free_cpus`: usable CPUs less those busy right now), since on a busy
machine more processes only add their start-up to the same share of the cores (measured:
``python -m benchmarks.cli_runner --crossover``, see docs/cli.rst).
"""

from __future__ import annotations

import math
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager

__all__ = [
    "AUTO_MIN_CASES", "AUTO_MIN_CASES_BY_START", "AUTO_REFERENCE_PIXELS", "BUSY_SAMPLE_S",
    "CHUNKS_PER_WORKER", "MAX_CHUNK", "auto_jobs", "busy_cpus", "check_jobs", "chunk_ranges", "free_cpus",
    "START_METHOD_ENV", "jobs_value", "kernel_threads", "run_local", "run_warm_up", "start_method",
    "usable_cpus", "worker_threads",
]


#: Environment variable that overrides :func:`start_method` (``fork`` or ``spawn``).
START_METHOD_ENV = "AMBISEG_START_METHOD"
#: How workers start on this platform unless :data:`START_METHOD_ENV` says otherwise.
_PLATFORM_START = "fork" if sys.platform.startswith("linux") else "spawn"


def start_method() -> str:
    """How worker processes start (:func:`~ambiseg_metrics.files.workers.run_in_processes`, and the workers
    of a Dask ``local:N`` cluster): ``"fork"`` on Linux, else ``"spawn"``, unless the environment variable
    ``AMBISEG_START_METHOD`` says ``fork`` or ``spawn`` (e.g. ``spawn`` where a library loaded in the same
    process does not survive a fork; ``fork`` is refused where the platform has none).

    A fork copies this process, modules and compiled code included, in milliseconds; a spawn starts a new
    interpreter that imports everything again. macOS is left to ``spawn`` (a fork there is unsafe once
    system frameworks are loaded, and Python's own default is ``spawn``), as is every other platform.

    Raises
    ------
    ValueError
        ``AMBISEG_START_METHOD`` is set to anything else (the message names the variable).
    """
    chosen = os.environ.get(START_METHOD_ENV, "").strip().lower()
    if not chosen:
        return _PLATFORM_START
    if chosen not in ("fork", "spawn") or (chosen == "fork" and not hasattr(os, "fork")):
        raise ValueError(f"{START_METHOD_ENV}={os.environ[START_METHOD_ENV]!r}: use 'fork' or 'spawn'"
                         + ("" if hasattr(os, "fork") else " ('fork' does not exist on this platform)"))
    return chosen

#: Chunks per worker: enough that a slow chunk at the end does not leave the other workers idle long.
CHUNKS_PER_WORKER = 8
#: The most cases in one chunk (the granularity of the progress bar and of the results streamed back).
MAX_CHUNK = 64
#: ``jobs="auto"``: the fewest cases for which a second process pays, by how workers start
#: (:func:`start_method`) and how the cases are stored — ``"images"``
#: (decoded: PNG/TIFF/... folders, TIFF/NIfTI stacks), ``"arrays"`` (``.npy``/``.npz`` stacks) — for cases of
#: :data:`AUTO_REFERENCE_PIXELS` mask pixels. Measured on 2 idle cores (``python -m benchmarks.cli_runner
#: --crossover --formats png,npy --sizes 10,25,50,100,200,400,800 --repeats 5``, 2026-11-26), two processes
#: against one:
#:
#: * forked workers (Linux), which inherit the loaded kernels and start in milliseconds: PNG folders 0.98x,
#:   1.04x, 1.13x, 1.24x, 1.05x, 1.11x and 1.16x as fast for 10, 25, 50, 100, 200, 400 and 800 cases;
#:   ``.npy`` stacks 0.96x, 1.02x, 1.05x, 1.14x, 1.02x, 1.04x, 1.03x (from 200 cases a run is batched and
#:   loads the kernels first, once, before the fork);
#: * spawned workers (elsewhere), which import the package and load the kernels again (about 0.5 s): PNG
#:   folders 0.91x, 0.97x, 1.10x, 1.13x, 1.25x and 1.26x for 200, 400, 800, 1200, 1600 and 2000 cases
#:   (``--sizes 200,400,800,1200,1600,2000``, measured with spawned workers before forks were used), and
#:   0.81-0.96x up to 2000 cases as ``.npy`` stacks.
#:
#: On a loaded machine (two other CPU-bound jobs on 2 cores) two spawned processes were slower at every size
#: from 100 to 1600 cases for both kinds, which :func:`free_cpus` sees. Arrays given in memory
#: (``"memory"``) always run in one process: sending them to a worker costs more than evaluating them.
AUTO_MIN_CASES_BY_START = {
    "fork": {"images": 50, "arrays": 100},
    "spawn": {"images": 600, "arrays": 4000},
}
#: The thresholds of this platform's default way of starting workers (:data:`AUTO_MIN_CASES_BY_START`;
#: :func:`auto_jobs` takes those of :func:`start_method` when it is called).
AUTO_MIN_CASES = AUTO_MIN_CASES_BY_START[_PLATFORM_START]
#: The mask pixels per case (8 + 3 masks of 128 x 128) with which :data:`AUTO_MIN_CASES` was measured;
#: cases with more pixels need proportionally fewer cases (never fewer than 2), smaller ones the same.
AUTO_REFERENCE_PIXELS = 11 * 128 * 128


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one, else ``os.cpu_count``)."""
    if hasattr(os, "sched_getaffinity"):
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except OSError:  # pragma: no cover - exotic platform
            pass
    return max(1, os.cpu_count() or 1)


def free_cpus(cpus: int | None = None) -> int:
    """Usable CPUs not already busy (rounded; at least 1): ``cpus`` less the CPUs that other work keeps
    busy *now* (:func:`busy_cpus`: what the usable CPUs did over :data:`BUSY_SAMPLE_S` seconds, on Linux),
    else less the 1-minute load average. The load average lags: right after other runs (a loop of
    ``ambiseg-eval`` calls, a benchmark) it still counts them on an idle machine; and it counts every
    runnable process, a niced one included."""
    cpus = usable_cpus() if cpus is None else cpus
    busy = busy_cpus()
    if busy is None:
        try:
            busy = os.getloadavg()[0]
        except (OSError, AttributeError):  # no load average (Windows): assume idle
            busy = 0.0
    return max(1, min(cpus, cpus - int(round(busy))))


#: Seconds over which :func:`busy_cpus` watches the CPUs.
BUSY_SAMPLE_S = 0.05


def _cpu_ticks(ids: set[int]) -> tuple[int, int]:
    """(busy, total) jiffies since boot of the CPUs ``ids``, from ``/proc/stat``."""
    busy = total = 0
    with open("/proc/stat") as f:
        for line in f:
            if not line.startswith("cpu") or line.startswith("cpu "):
                continue
            name, *fields = line.split()
            if int(name[3:]) not in ids:
                continue
            ticks = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
            total += sum(ticks)
            busy += sum(ticks) - ticks[3] - ticks[4]
    return busy, total


def busy_cpus(interval: float | None = None) -> float | None:
    """How many of this process's usable CPUs other work keeps busy now: the busy share of their time
    over ``interval`` seconds (default :data:`BUSY_SAMPLE_S`; this process sleeps meanwhile) times their
    number. None where ``/proc/stat`` or the affinity mask is not available (not Linux)."""
    import time

    if not hasattr(os, "sched_getaffinity"):
        return None
    try:
        ids = set(os.sched_getaffinity(0))
        busy0, total0 = _cpu_ticks(ids)
        time.sleep(BUSY_SAMPLE_S if interval is None else interval)
        busy1, total1 = _cpu_ticks(ids)
    except (OSError, ValueError):
        return None
    if total1 <= total0:  # a clock tick is 10 ms: too short a sample to tell
        return None
    return len(ids) * (busy1 - busy0) / (total1 - total0)


def auto_jobs(n_cases: int, cpus: int | None = None, kind: str = "images",
              pixels_per_case: int | None = None) -> int:
    """The number of processes ``jobs="auto"`` uses for ``n_cases`` cases of the given ``kind`` (see
    :data:`AUTO_MIN_CASES_BY_START`, for :func:`start_method`) and mask pixels per case (None: unknown,
    taken as the reference): 1 below the kind's threshold, scaled down for larger cases, else one per free
    CPU (:func:`free_cpus`) and no more than one per half-threshold of cases."""
    if kind not in AUTO_MIN_CASES:
        return 1
    threshold = AUTO_MIN_CASES_BY_START[start_method()][kind]
    if pixels_per_case:
        threshold = max(2, math.ceil(threshold * min(1.0, AUTO_REFERENCE_PIXELS / pixels_per_case)))
    if n_cases < threshold:
        return 1
    return max(1, min(free_cpus(cpus), n_cases // max(1, threshold // 2)))


def check_jobs(jobs: object) -> int | str:
    """``jobs`` validated: a positive int or ``"auto"``; anything else is a ValueError."""
    if jobs == "auto":
        return "auto"
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer or 'auto'; got {jobs!r}")
    return jobs


def jobs_value(text: str) -> int | str:
    """``--jobs`` as argparse reads it: ``auto`` or an integer (range-checked by the caller)."""
    text = text.strip().lower()
    return "auto" if text == "auto" else int(text)


jobs_value.__name__ = "jobs"  # argparse: "invalid jobs value: 'x'"


def chunk_ranges(n_items: int, workers: int) -> list[range]:
    """Split ``range(n_items)`` into contiguous chunks: about :data:`CHUNKS_PER_WORKER` per worker, none
    larger than :data:`MAX_CHUNK` (so 1 case per chunk for small runs)."""
    if n_items <= 0:
        return []
    size = max(1, min(MAX_CHUNK, math.ceil(n_items / (CHUNKS_PER_WORKER * max(1, workers)))))
    return [range(start, min(start + size, n_items)) for start in range(0, n_items, size)]


def run_local(
    task: Callable, items: Sequence[object], args: tuple, jobs: int,
    warm_up: tuple[Callable, tuple] | None = None,
) -> Iterator[tuple[int, object]]:
    """Run ``task(chunk, *args)`` — which returns one result per item of ``chunk``, in order — over chunks
    of ``items``, here (``jobs == 1``) or in this process and ``jobs - 1`` worker processes; yield
    ``(index, result)`` per item as each chunk finishes. ``task`` must be a module-level function (the
    workers import it); ``warm_up = (f, args)`` is run by each worker before it asks for a chunk."""
    ranges = chunk_ranges(len(items), jobs)
    if jobs == 1 or len(ranges) <= 1:
        for r in ranges:
            results = task([items[i] for i in r], *args)
            yield from zip(r, _checked(results, r), strict=True)
        return
    from .workers import run_in_processes

    # share the cores between the processes that run (this one and jobs - 1 workers), no more than one
    # per chunk
    threads = max(1, usable_cpus() // min(jobs, len(ranges)))
    stream = run_in_processes(task, [([items[i] for i in r], *args) for r in ranges], jobs,
                              env={"NUMBA_NUM_THREADS": str(threads)}, here=_with_threads(threads),
                              warm_up=warm_up, setup=(worker_threads, (threads,)))
    with closing(stream):  # an error here (or the consumer closing us) stops the workers at once
        for k, results in stream:
            yield from zip(ranges[k], _checked(results, ranges[k]), strict=True)


def worker_threads(threads: int) -> None:
    """``setup`` of a worker: its kernels use ``threads`` threads. A spawned worker imports numba later and
    reads ``NUMBA_NUM_THREADS`` (the ``env`` given to the workers); a forked one may have inherited the
    loaded kernels, whose setting is then made here."""
    kernels = sys.modules.get("ambiseg_metrics.core._kernels")
    if kernels is not None:
        kernels.set_threads(threads)


@contextmanager
def kernel_threads(threads: int) -> Iterator[None]:
    """Within the block, the compiled kernels of this process use ``threads`` threads; the setting is
    restored after. Only if the kernels are loaded when the block starts: a block that loads them runs with
    this process's default, so that a run that never needs them does not import numba here."""
    kernels = sys.modules.get("ambiseg_metrics.core._kernels")
    if kernels is None:
        yield
        return
    before = kernels._THREADS
    kernels.set_threads(threads)
    try:
        yield
    finally:
        kernels.set_threads(before)


@contextmanager
def children_deaf_to_ctrl_c(start: str) -> Iterator[None]:
    """Hold SIGINT back from this thread while worker processes start: the processes started meanwhile
    (forked or spawned, by this thread or by threads it creates, such as Dask's) inherit a signal mask that
    blocks it. A Ctrl-C at a terminal goes to the whole process group; a worker still starting would take
    it as its own ``KeyboardInterrupt`` and print a traceback, though the run's process stops the workers
    itself. A Ctrl-C meant for this process still reaches it: through another of its threads that does
    not block it, or here once the mask is restored. No-op where ``signal.pthread_sigmask`` is missing
    (Windows).

    ``start`` is the workers' start method. Spawned workers need multiprocessing's resource tracker, and
    the call that launches it unblocks SIGINT in its thread afterwards (``SIG_UNBLOCK``, whatever the mask
    was before): it is launched here first, so that nothing launches it inside the block.
    """
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    if start != "fork":
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def run_warm_up(warm_up: tuple[Callable, tuple] | None) -> None:
    """Run a warm-up ``(f, args)`` (None: nothing), ignoring its errors: it only loads what the tasks need,
    and the tasks report their own errors."""
    if warm_up is not None:
        try:
            warm_up[0](*warm_up[1])
        except Exception:
            pass


def _with_threads(threads: int) -> Callable:
    """``here`` of :func:`~ambiseg_metrics.files.workers.run_in_processes`: run a task in this process
    with the compiled kernels limited to ``threads`` threads (as the workers are), then restore the
    setting (:func:`kernel_threads`)."""

    def here(task: Callable, *args: object) -> object:
        with kernel_threads(threads):
            return task(*args)

    return here


def _checked(results: Sequence[object], r: range) -> Sequence[object]:
    if len(results) != len(r):
        raise RuntimeError(f"a chunk of {len(r)} cases returned {len(results)} results")
    return results
