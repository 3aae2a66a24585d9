"""Local worker processes for ``evaluate_cases(jobs=N)`` that never outlive the run.

A small pool of our own instead of :class:`concurrent.futures.ProcessPoolExecutor`, whose shutdown could
hang on Ctrl-C and whose workers survived a SIGTERM of the parent (issue 13). Each worker is a ``spawn``
process (a fork of a process that runs numba's thread pool is not safe) talking to the parent over its own
pipe; the parent waits on the pipes *and* the process sentinels, so a worker that dies is noticed at once.

Guarantees:

* workers ignore SIGINT (a terminal's Ctrl-C reaches the whole process group; only the parent decides);
* on any exception in the parent — a task's error, ``KeyboardInterrupt``, the generator being closed —
  every worker is killed (SIGKILL: they hold no file open for writing) and reaped before the exception
  propagates;
* on Linux a worker is also killed by the kernel when the parent dies (``PR_SET_PDEATHSIG``), so even a
  SIGKILL of the parent leaves no worker behind.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
from collections.abc import Callable, Iterator, Sequence

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


def _worker(conn, parent: int, env: dict[str, str]) -> None:  # pragma: no cover - runs in the child
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    for key, value in env.items():
        os.environ.setdefault(key, value)
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
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


def run_in_processes(
    func: Callable, tasks: Sequence[tuple], jobs: int, env: dict[str, str] | None = None
) -> Iterator[tuple[int, object]]:
    """Run ``func(*tasks[i])`` in ``jobs`` spawned processes; yield ``(i, result)`` as results arrive.

    ``func`` must be importable by the children (a module-level function). A task's exception is
    re-raised here (after every worker was killed); ``env`` is added to the workers' environment.
    """
    import multiprocessing
    from multiprocessing.connection import wait

    ctx = multiprocessing.get_context("spawn")
    workers: list[tuple[object, object]] = []
    ok = False
    try:
        # SIGINT blocked while the children start: they inherit the mask (so a Ctrl-C during their start
        # cannot print a traceback) and a Ctrl-C meant for us is delivered right after.
        masking = hasattr(signal, "pthread_sigmask")  # POSIX
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if masking else None
        try:
            for _ in range(min(jobs, len(tasks))):
                mine, theirs = ctx.Pipe()
                proc = ctx.Process(target=_worker, args=(theirs, os.getpid(), dict(env or {})), daemon=True)
                try:
                    proc.start()
                finally:
                    theirs.close()
                workers.append((proc, mine))
        finally:
            if masking:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        todo = iter(enumerate(tasks))
        busy: dict[object, tuple[object, int]] = {}  # pipe -> (process, task index)

        def feed(proc, conn) -> None:
            for index, args in todo:
                conn.send((index, func, args))
                busy[conn] = (proc, index)
                return

        for proc, conn in workers:
            feed(proc, conn)
        while busy:
            sentinels = {proc.sentinel: (conn, proc, index) for conn, (proc, index) in busy.items()}
            for ready in wait([*busy, *sentinels]):
                if ready in sentinels:
                    conn, proc, index = sentinels[ready]
                    if conn in busy and not conn.poll():
                        proc.join()
                        raise WorkerDiedError(
                            f"a worker process ended (exit code {proc.exitcode}) while running task {index}"
                        )
                    continue
                if ready not in busy:
                    continue
                proc, index = busy.pop(ready)
                try:
                    index, success, value = ready.recv()
                except (EOFError, OSError):  # the worker died: its pipe closed before its sentinel was seen
                    proc.join()
                    raise WorkerDiedError(
                        f"a worker process ended (exit code {proc.exitcode}) while running task {index}"
                    ) from None
                if not success:
                    raise value
                yield index, value
                feed(proc, ready)
        ok = True
    finally:
        _stop(workers, gently=ok)


def _stop(workers: list[tuple[object, object]], gently: bool) -> None:
    """End every worker: politely after a finished run, at once (SIGKILL) otherwise; reap them all."""
    for proc, conn in workers:
        if gently:
            try:
                conn.send(None)
            except OSError:
                pass
        elif proc.is_alive():
            proc.kill()
    for proc, conn in workers:
        proc.join(timeout=5 if gently else None)
        if proc.is_alive():  # pragma: no cover - a worker that ignores the request to stop
            proc.kill()
            proc.join()
        conn.close()
