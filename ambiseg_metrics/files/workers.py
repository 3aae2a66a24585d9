"""Local worker processes for ``evaluate_cases(jobs=N)`` that never outlive the run.

A small pool of our own instead of :class:`concurrent.futures.ProcessPoolExecutor`, whose shutdown could
hang on Ctrl-C and whose workers survived a SIGTERM of the parent (issue 13). Each worker talks to the
parent over its own pipe; a thread of the parent waits on the pipes *and* the process sentinels, so a
worker that dies is noticed at once, and hands a worker its next task as soon as it finishes one.

How a worker starts (:func:`~ambiseg_metrics.files.runner.start_method`): on Linux it is a ``fork`` of
this process, made after the warm-up ran *here*, so that it inherits the imported modules and the loaded
compiled kernels instead of paying for them again (a spawned worker took 0.59 s until it had warmed up
and returned a first task, a forked one 0.02 s: ``python -m benchmarks.cli_runner``, fixed costs). The
kernels use no numba thread team (they are serial and release the GIL; core/_kernels.py runs them on a
``ThreadPoolExecutor`` that a forked child makes anew), so a fork needs none of this process's threads.
A forked worker resets SIGTERM to the default (it would inherit the CLI's handler) and ends with
``os._exit``, as a spawned one does. Elsewhere (macOS, where a fork is unsafe once system frameworks are
loaded; Windows, which has none), a ``spawn``.

The parent may take a share of the tasks itself (``here``): it then starts one worker fewer, and an error
found by the thread (a task's error, a dead worker) is raised once the parent's current task is done.

Guarantees:

* workers ignore SIGINT (a terminal's Ctrl-C reaches the whole process group; only the parent decides),
  and start with it blocked (:func:`~ambiseg_metrics.files.runner.children_deaf_to_ctrl_c`), so that a
  Ctrl-C while a worker is still starting cannot print its traceback either;
* on any exception in the parent — a task's error, ``KeyboardInterrupt``, the generator being closed —
  every worker is killed (SIGKILL: they hold no file open for writing) and reaped before the exception
  propagates;
* on Linux a worker is also killed by the kernel when the parent dies (``PR_SET_PDEATHSIG``), so even a
  SIGKILL of the parent leaves no worker behind.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence

from . import runner

__all__ = ["WorkerDiedError", "run_in_processes"]


class WorkerDiedError(RuntimeError):
    """A worker process ended without returning its task's result (killed, crashed, out of memory)."""


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover - exotic libc
            pass
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def _portable(exc: BaseException) -> BaseException:
    """``exc`` itself if it survives pickling, else a RuntimeError carrying its type and text."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _worker(conn, parent: int, env: dict[str, str], warm_up: tuple[Callable, tuple] | None = None,
            setup: tuple[Callable, tuple] | None = None) -> None:  # pragma: no cover - runs in the child
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN:  # a fork inherits the parent's handler,
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # which must not run here: die as a spawned worker
    _die_with_parent(parent)
    for key, value in env.items():
        os.environ.setdefault(key, value)
    if setup is not None:
        setup[0](*setup[1])
    runner.run_warm_up(warm_up)
    try:
        conn.send(_READY)
    except OSError:
        return
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:  # the run is over: exit at once, skipping the interpreter's finalisation
            _quick_exit()  # (about 0.2 s with numba loaded, which the parent would wait for)
        index, func, args = job
        try:
            message = (index, True, func(*args))
        except Exception as exc:
            message = (index, False, _portable(exc))
        try:
            conn.send(message)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            conn.send((index, False, RuntimeError(f"result of task {index} cannot be sent: {exc}")))
        except OSError:
            return


def _quick_exit() -> None:  # pragma: no cover - runs in the child
    """End a worker that finished its work: flush its output and leave with ``os._exit`` (it holds no
    file open for writing, and numba writes its cache when it compiles, not at exit)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    os._exit(0)


#: A worker's first message: started (and warmed up), ready for a task.
_READY = (None, True, None)


def _died(proc, index: int | None) -> WorkerDiedError:
    proc.join()
    doing = "while starting" if index is None else f"while running task {index}"
    return WorkerDiedError(f"a worker process ended (exit code {proc.exitcode}) {doing}")


class _Supervisor:
    """The thread that keeps the workers busy while the caller's thread computes or waits: it hands a
    worker the next task from the front of the list as soon as the worker is ready (started and warmed
    up) or has finished a task, and posts each result, a task's error or a dead worker (noticed at once,
    through the process sentinels) to a queue that the caller's thread reads. It ends when no worker runs
    a task and none is left to hand out (a worker still starting then is not waited for), or when
    :meth:`stop` wakes it. Only this thread touches the workers' pipes until it has ended."""

    def __init__(self, func: Callable, tasks: Sequence[tuple], workers: list[tuple[object, object]]):
        self.func, self.tasks, self.workers = func, tasks, workers
        self.ready_workers: set[object] = set()  # pipes of the workers that said they were ready
        self._lock = threading.Lock()
        self._front, self._back = 0, len(tasks)
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._delivered = 0
        self._stopping = False
        self._wake_read, self._wake_write = multiprocessing.Pipe(duplex=False)  # waitable everywhere
        self._thread = threading.Thread(target=self._run, name="ambiseg-workers", daemon=True)

    def take(self, last: bool = False) -> int | None:
        """The index of the next task not yet handed out (the last one with ``last``), or None."""
        with self._lock:
            if self._front >= self._back:
                return None
            if last:
                self._back -= 1
                return self._back
            self._front += 1
            return self._front - 1

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """End the thread (waking it if it waits on the workers) and wait for it."""
        self._stopping = True
        try:
            self._wake_write.send_bytes(b"")
            self._thread.join()
        finally:
            self._wake_read.close()
            self._wake_write.close()

    def results(self, wait_for: int = 0) -> Iterator[tuple[int, object]]:
        """The workers' results posted so far, and more, waiting, until ``wait_for`` of them were given in
        all; a posted error is raised."""
        while True:
            if self._delivered >= wait_for:
                try:
                    kind, index, value = self._events.get_nowait()
                except queue.Empty:
                    return
            else:
                kind, index, value = self._events.get()
            if kind == "error":
                raise value
            self._delivered += 1
            yield index, value

    def _feed(self, proc: object, conn, busy: dict) -> None:
        index = None if self._stopping else self.take()
        if index is not None:
            conn.send((index, self.func, self.tasks[index]))
            busy[conn] = (proc, index)

    def _run(self) -> None:
        from multiprocessing.connection import wait

        busy: dict[object, tuple[object, int | None]] = {conn: (proc, None) for proc, conn in self.workers}
        try:
            while not self._stopping:
                running = any(index is not None for _, index in busy.values())
                if not running and self._front >= self._back:
                    return  # nothing more for the workers
                sentinels = {proc.sentinel: (conn, proc, index) for conn, (proc, index) in busy.items()}
                for ready in wait([*busy, *sentinels, self._wake_read]):
                    if ready in sentinels:
                        conn, proc, index = sentinels[ready]
                        if conn in busy and not conn.poll():
                            raise _died(proc, index)
                        continue
                    if ready not in busy:
                        continue
                    proc, index = busy.pop(ready)
                    try:
                        got, success, value = ready.recv()
                    except (EOFError, OSError):  # the worker died: its pipe closed before its sentinel
                        raise _died(proc, index) from None
                    if not success:
                        raise value
                    if index is None:
                        self.ready_workers.add(ready)
                    else:
                        self._events.put(("result", got, value))
                    self._feed(proc, ready, busy)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, which raises it
            self._events.put(("error", None, exc))


def run_in_processes(
    func: Callable, tasks: Sequence[tuple], jobs: int, env: dict[str, str] | None = None,
    here: Callable | None = None, warm_up: tuple[Callable, tuple] | None = None,
    setup: tuple[Callable, tuple] | None = None, start: str | None = None,
) -> Iterator[tuple[int, object]]:
    """Run ``func(*tasks[i])`` in ``jobs`` worker processes; yield ``(i, result)`` as results arrive.

    ``func`` must be importable by the children (a module-level function). A task's exception is
    re-raised here (after every worker was killed); ``env`` is added to the workers' environment (under
    ``fork``, modules this process imported already read theirs: use ``setup``); ``setup = (f, args)``:
    each worker runs ``f(*args)`` first (errors are the worker's: it dies, and the run stops).

    ``warm_up = (f, args)``: ``f(*args)`` (errors ignored) runs before a worker takes a task, so that a
    task is never handed to a worker still loading what it needs while this process could run it: in
    each worker under ``spawn``; *here*, once, before the workers start, under ``fork`` (they inherit
    what it loaded).

    ``start``: ``"fork"`` or ``"spawn"``; default :func:`~ambiseg_metrics.files.runner.start_method`.

    ``here``: this process takes a share of the tasks too, as ``here(func, *tasks[i])``, so only
    ``jobs - 1`` workers are started (one start-up and one import fewer). The workers take tasks from the
    front of the list, this process from the back; an error found meanwhile (a worker's task failed, a
    worker died) is raised once this process's current task is done.
    """
    start = runner.start_method() if start is None else start
    if start not in ("fork", "spawn"):
        raise ValueError(f"start must be 'fork' or 'spawn'; got {start!r}")
    ctx = multiprocessing.get_context(start)
    n_workers = min(jobs, len(tasks)) - (1 if here is not None else 0)
    if start == "fork" and n_workers > 0:
        runner.run_warm_up(warm_up)  # here, once: the forks inherit it
        warm_up = None
    workers: list[tuple[object, object]] = []
    ok = False
    supervisor: _Supervisor | None = None
    try:
        with runner.children_deaf_to_ctrl_c(start):  # a Ctrl-C during their start: no traceback
            for _ in range(n_workers):
                mine, theirs = ctx.Pipe()
                proc = ctx.Process(target=_worker, daemon=True,
                                   args=(theirs, os.getpid(), dict(env or {}), warm_up, setup))
                try:
                    proc.start()
                finally:
                    theirs.close()
                workers.append((proc, mine))
        supervisor = _Supervisor(func, tasks, workers)
        supervisor.start()
        own = 0
        while here is not None:
            yield from supervisor.results()
            index = supervisor.take(last=True)
            if index is None:
                break
            result = here(func, *tasks[index])
            own += 1
            yield index, result
        yield from supervisor.results(wait_for=len(tasks) - own)
        ok = True
    finally:
        if not ok:  # first, so that the thread cannot hand out more work nor wait on a busy worker
            _kill(workers)
        if supervisor is not None:
            supervisor.stop()
        _stop(workers, gently=supervisor.ready_workers if ok and supervisor is not None else set())


def _kill(workers: list[tuple[object, object]]) -> None:
    for proc, _ in workers:
        if proc.is_alive():
            proc.kill()


def _stop(workers: list[tuple[object, object]], gently: set[object]) -> None:
    """End every worker: politely those idle after a finished run (their pipes in ``gently``), at once
    (SIGKILL: they hold no file open for writing) the others, e.g. one still starting; reap them all."""
    for proc, conn in workers:
        if conn in gently:
            try:
                conn.send(None)
            except OSError:
                pass
        elif proc.is_alive():
            proc.kill()
    for proc, conn in workers:
        proc.join(timeout=5 if conn in gently else None)
        if proc.is_alive():  # pragma: no cover - a worker that ignores the request to stop
            proc.kill()
            proc.join()
        conn.close()
