"""Running the per-case evaluation on a Dask cluster (optional extra ``[distributed]``).

Only the glue lives here: :func:`run_on_client` submits one task per chunk of cases — the very function
the local runner calls, :func:`ambiseg_metrics.files.case_eval.evaluate_chunk` — and yields each case's
result as its chunk arrives;
:func:`scheduler_client` turns ``--scheduler`` into a :class:`dask.distributed.Client`. Faults are Dask's
job: a task whose worker dies is rescheduled on another worker (up to the scheduler's
``distributed.scheduler.allowed-failures``, default 3, after which the run fails with ``KilledWorker``);
:func:`ambiseg_metrics.files.cases.evaluate_cases` then checks that every case came back exactly once.
An error raised by a task (e.g. :class:`~ambiseg_metrics.files.io.InputFileError` for a bad file) is not
retried: it stops the run and the remaining tasks are cancelled.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial

import numpy as np

__all__ = [
    "DaskMissingError",
    "INSTALL_HINT",
    "SchedulerUnreachableError",
    "parse_scheduler",
    "require_distributed",
    "run_on_client",
    "scheduler_client",
]

INSTALL_HINT = (
    'running on a Dask cluster needs dask.distributed: pip install "ambiseg-metrics[distributed]" '
    '(or pip install "dask[distributed]")'
)


class DaskMissingError(ImportError):
    """dask.distributed is not installed; the message says how to install it."""


class SchedulerUnreachableError(ConnectionError):
    """No Dask scheduler answered at the given address."""


def require_distributed():
    """Import and return :mod:`distributed`, or raise :class:`DaskMissingError` saying how to install it."""
    try:
        import distributed
    except ImportError as exc:
        raise DaskMissingError(INSTALL_HINT) from exc
    return distributed


def parse_scheduler(spec: str) -> tuple[str, int | str]:
    """Split a scheduler spec (what ``ambiseg-eval --scheduler`` takes).

    ``"local:N"`` -> ``("local", N)``; an address -> ``("address", spec)``.

    Raises
    ------
    ValueError
        ``local:`` without a positive worker count, or an empty spec.
    """
    spec = spec.strip()
    if not spec:
        raise ValueError("the scheduler spec is empty; give tcp://host:port or local:N")
    if spec.startswith("local"):
        _, _, count = spec.partition(":")
        try:
            n = int(count)
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"scheduler {spec!r}: use local:N with N >= 1 worker processes")
        return "local", n
    if "://" not in spec and ":" not in spec:
        raise ValueError(f"scheduler {spec!r}: give a scheduler address such as tcp://host:8786, or local:N")
    return "address", spec


@contextmanager
def scheduler_client(
    spec: str, *, timeout: float = 30.0, warm_up: tuple[Callable, tuple] | None = None
) -> Iterator[object]:
    """A :class:`dask.distributed.Client` for a scheduler spec; a ``local:N`` cluster is closed on exit.

    ``local:N`` starts a :class:`~dask.distributed.LocalCluster` of N single-threaded worker processes on
    the loopback interface (no dashboard), each allowed ``usable CPUs // N`` numba threads. The workers
    are started as :func:`~ambiseg_metrics.files.runner.start_method` says (Dask's
    ``distributed.worker.multiprocessing-method``): forks of this process on Linux, which start in
    milliseconds instead of importing Dask and this package anew (``python -m benchmarks.cli_runner``,
    fixed costs "dask" and "dask-spawn"). ``warm_up = (f, args)``: with forked workers, ``f(*args)``
    (errors ignored) runs here first, so that each worker inherits what it loads (the compiled kernels:
    :func:`ambiseg_metrics.files.case_eval.warm_up`) instead of loading it again; otherwise it is not run.
    """
    kind, value = parse_scheduler(spec)
    distributed = require_distributed()
    if kind == "local":
        n = int(value)
        import dask

        from .runner import children_deaf_to_ctrl_c, run_warm_up, start_method, usable_cpus

        threads = max(1, usable_cpus() // n)
        method = start_method()
        if method == "fork":
            run_warm_up(warm_up)
        config = {"distributed.worker.multiprocessing-method": method}
        cluster = None
        processes_before = set(multiprocessing.active_children())
        try:
            with warnings.catch_warnings(), dask.config.set(config):
                # without a dashboard the scheduler still serves /health etc., by default on 8787 or any
                # free port
                warnings.filterwarnings("ignore", message=r"Port \d+ is already in use")
                with _half_built_clusters_left_alone(distributed, processes_before), \
                        children_deaf_to_ctrl_c(method):
                    cluster = distributed.LocalCluster(
                        n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                        dashboard_address=None, env={"NUMBA_NUM_THREADS": str(threads)},
                        silence_logs=logging.ERROR,
                    )
            with distributed.Client(cluster, timeout=timeout) as client:
                client.register_plugin(_kernel_threads(distributed, threads), name="ambiseg-kernel-threads")
                yield client
        finally:
            if cluster is not None:
                _close(cluster, processes_before)
    else:
        try:
            client = distributed.Client(value, timeout=timeout)
        except (OSError, TimeoutError) as exc:
            raise SchedulerUnreachableError(
                f"{value}: no Dask scheduler answered ({type(exc).__name__}: {exc}); start "
                "one with `dask scheduler` and workers with `dask worker <address>`"
            ) from exc
        with client:
            yield client


@contextmanager
def _half_built_clusters_left_alone(distributed: object, processes_before: set) -> Iterator[None]:
    """If the cluster's start is interrupted (Ctrl-C, SIGTERM: the run's process unwinds), Dask's exit hook
    would try to close the half-built cluster it still lists and print a traceback (an AssertionError on
    a worker not started yet). It is taken off that list instead, and the worker processes started since
    ``processes_before`` are ended here (:func:`_end_processes`); runs interrupted by hand 0.3 to 2.55 s
    after their start, with forked and spawned workers, left none behind."""
    spec = getattr(getattr(distributed, "deploy", None), "spec", None)
    listed = getattr(getattr(spec, "SpecCluster", None), "_instances", None)
    before = set(listed) if listed is not None else set()
    try:
        yield
    except BaseException:
        _abandon(set(listed or ()) - before, processes_before)
        raise


def _close(cluster: object, processes_before: set) -> None:
    """Close a ``local:N`` cluster; if a Ctrl-C or SIGTERM interrupts the close, end the worker processes
    started since ``processes_before`` here. Dask cancels an interrupted close and leaves the cluster
    "closing", and its exit hook would then wait 10 s for it (seen in 5 of 8 runs sent SIGTERM as they
    were ending, with spawned workers)."""
    try:
        cluster.close()  # type: ignore[attr-defined]
    except KeyboardInterrupt:
        _abandon({cluster}, processes_before)
        raise


def _abandon(clusters: set, processes_before: set) -> None:
    """Take ``clusters`` off Dask's exit hook and end the worker processes started since
    ``processes_before``: what an interrupted start or close leaves."""
    for cluster in clusters:
        cluster.shutdown_on_close = False
    _end_processes(set(multiprocessing.active_children()) - processes_before)


def _end_processes(processes: set, timeout: float = 2.0) -> None:
    """SIGTERM the worker processes an interrupted cluster start left, and wait (up to ``timeout``) until
    they are gone. Otherwise a spawned worker still starting would outlive this process's exit by a few
    milliseconds and print a ``FileNotFoundError`` traceback: multiprocessing's exit hook unlinks the
    semaphores the worker is still unpickling before it terminates the worker."""
    for process in processes:
        try:
            process.terminate()
        except (OSError, AttributeError, ValueError):  # gone already, or never started
            pass
    sentinels = []
    for process in processes:
        try:
            sentinels.append(process.sentinel)
        except ValueError:  # never started
            pass
    deadline = time.monotonic() + timeout
    while sentinels and time.monotonic() < deadline:
        ready = multiprocessing.connection.wait(sentinels, timeout=max(0.0, deadline - time.monotonic()))
        sentinels = [sentinel for sentinel in sentinels if sentinel not in ready]


def _kernel_threads(distributed: object, threads: int) -> object:
    """A Dask worker plugin: the compiled kernels of a ``local:N`` worker use ``threads`` threads. A
    spawned worker reads ``NUMBA_NUM_THREADS`` from its environment when it imports numba; a forked one
    inherits numba from this process if it was imported here already (e.g. after an earlier
    :func:`~ambiseg_metrics.evaluate` in a notebook), and is set by the plugin."""
    from .runner import worker_threads

    class KernelThreads(distributed.WorkerPlugin):  # type: ignore[name-defined,misc]
        def setup(self, worker: object) -> None:
            worker_threads(threads)

    return KernelThreads()


class _Failed:
    """A task's input error, returned as a value: Dask would log a raised one as "Compute Failed" with a
    traceback on the worker (printed locally for ``local:N``) before the client's clean one-line error."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _guarded(task: Callable, chunk: list, **kwargs: object) -> object:
    try:
        return task(chunk, **kwargs)
    except ValueError as exc:  # bad input (InputFileError is one): the client raises it
        return _Failed(exc)


def _holds_array(case: object) -> bool:
    return any(isinstance(getattr(case, side, None), np.ndarray) for side in ("pred", "gt"))


def _workers(client: object) -> int:
    try:
        return max(1, sum(client.nthreads().values()))  # type: ignore[attr-defined]
    except Exception:  # a client without the method (or not connected): chunks as for one worker
        return 1


def run_on_client(
    client: object, items: Sequence[object], options: object, task: Callable, *, label: str = "ambiseg-case"
) -> Iterator[tuple[int, object]]:
    """Run ``task(chunk, options)`` on ``client`` for chunks of the items; yield ``(index, result)`` per item
    as each chunk finishes. ``task`` returns one result per item of its chunk, in order.

    The chunks are those of the local runner (:func:`ambiseg_metrics.files.runner.chunk_ranges`, for the
    cluster's worker threads), one task each with its own key; paths are opened by the workers themselves
    (they must see the same files), arrays are scattered to the cluster first. On any error the remaining
    tasks are cancelled. Task keys are ``<label>-<run token>-<chunk>`` (what the Dask dashboard shows).
    """
    from .runner import chunk_ranges

    distributed = require_distributed()
    token = uuid.uuid4().hex[:12]
    ranges = chunk_ranges(len(items), _workers(client))
    keys = [f"{label}-{token}-{k}" for k in range(len(ranges))]
    chunk_of = {key: k for k, key in enumerate(keys)}
    args: list = [[items[i] for i in r] for r in ranges]
    if any(_holds_array(c) for c in items):
        args = client.scatter(args, hash=False)  # own keys: two runs on the same arrays must not share them
    futures = client.map(partial(_guarded, task), args, options=options, key=keys, pure=False)
    try:
        for future in distributed.as_completed(futures):
            # Future.result() goes through Client.gather, which reschedules a result whose worker died
            # between finishing the task and handing the result over.
            result = future.result()
            if isinstance(result, _Failed):
                raise result.error
            r = ranges[chunk_of[future.key]]
            if len(result) != len(r):
                raise RuntimeError(f"a chunk of {len(r)} cases returned {len(result)} results")
            yield from zip(r, result, strict=True)
    finally:
        client.cancel(futures)
