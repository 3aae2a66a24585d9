"""How the ``ambiseg-eval`` process meets signals and ends: SIGINT and SIGTERM unwind the run like Ctrl-C
(every ``finally`` runs: workers are killed, no output is half-written), and a finished run leaves
without the interpreter's teardown."""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import signal
import sys
import threading

__all__ = ["FIRED", "Stopped", "catch_signals", "end_process", "keep_worker_start_method", "quiet_after_stop"]


class Stopped(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; unwinds like Ctrl-C so that every ``finally`` (workers, clusters) runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


#: The signals that arrived during the current ``main()`` call.
FIRED: list[int] = []


#: Seconds after which a signal that landed in code it must not unwind (``_NO_UNWIND``) is sent again.
RETRY_S = 0.02


def _send_again(signum: int) -> None:
    """Send ``signum`` to this process again, from a thread that blocks it: the kernel then hands it to a
    thread that takes it (the main thread, or none until the main thread unblocks it), never to this one,
    whose receipt would let the handler interrupt the main thread anywhere, e.g. inside a worker's start,
    where SIGINT is blocked on purpose (:func:`~ambiseg_metrics.files.runner.children_deaf_to_ctrl_c`)."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        os.kill(os.getpid(), signum)
    else:  # Windows: os.kill would end the process outright; raise_signal runs the handler
        signal.raise_signal(signum)


#: Code that an exception must not unwind: Python's import machinery (a C extension importing a module
#: may turn the exception into another error), and multiprocessing starting a process (a spawned child
#: whose start is cut short reads a closed pipe and prints ``EOFError``).
_NO_UNWIND = ("<frozen importlib", os.path.join(os.path.dirname(multiprocessing.__file__), "popen_"))


def _must_not_unwind(frame: object) -> bool:
    """Whether the interrupted code runs under the import machinery or a process start (``_NO_UNWIND``)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith(_NO_UNWIND):  # type: ignore[attr-defined]
            return True
        frame = frame.f_back  # type: ignore[attr-defined]
    return False


def _on_signal(signum: int, frame: object) -> None:
    FIRED.append(signum)
    if _must_not_unwind(frame):
        # Raised here, Stopped can reach a C extension's import, which may turn it into another error (numba's
        # "numba._devicearray failed to import": exit 1 with a traceback, seen once in 64 runs), or cut a
        # worker's start short. The signal is sent again shortly, until it lands outside such code; FIRED
        # holds it meanwhile.
        timer = threading.Timer(RETRY_S, _send_again, (signum,))
        timer.daemon = True
        timer.start()
        return
    for sig in (signal.SIGINT, signal.SIGTERM):  # one signal is enough: the clean-up is not interrupted
        signal.signal(sig, _noted)
    # the run is over. What Dask's threads log about the cluster it stops (e.g. tornado reporting Dask's own
    # error in cancelling a wait the signal interrupted) would come before the one line that says so, and a
    # Stopped raised inside a callback Python cannot unwind (a weakref callback of the import machinery)
    # would be printed as "Exception ignored": FIRED holds the signal, checked before anything is written
    quiet_after_stop()
    raise Stopped(signum)


def _noted(signum: int, frame: object) -> None:
    """A further SIGINT or SIGTERM while the run cleans up: noted, and nothing else. A handler rather than
    ``SIG_IGN``, which a worker process started meanwhile (Dask may still be starting one) would keep
    through ``exec`` and then survive the SIGTERM that stops it at exit."""
    FIRED.append(signum)


def _in_forked_child() -> None:
    """After a fork (a worker of ours, or of a Dask ``local:N`` cluster): the routing above belongs to the
    run's own process, not to its workers. A worker ignores SIGINT (a terminal's Ctrl-C reaches the whole
    process group; the run's process stops the workers) and dies of SIGTERM, instead of raising
    :class:`Stopped` in the middle of its own work. This holds too for a worker forked after a signal
    arrived, while the run's process only notes further ones as it cleans up (Dask may still be starting
    a worker then): the SIGTERM that stops that worker at exit must not be ignored."""
    if signal.getsignal(signal.SIGINT) in (_on_signal, _noted):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if signal.getsignal(signal.SIGTERM) in (_on_signal, _noted):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


_AT_FORK: list[bool] = []  # os.register_at_fork cannot be undone: register once per process


def catch_signals() -> dict[int, object]:
    """Route SIGINT and SIGTERM through :class:`Stopped` (main thread only; a signal the parent chose to
    ignore, as for a background job, stays ignored); return the handlers replaced. A process forked from
    this one does not keep the routing (:func:`_in_forked_child`)."""
    FIRED.clear()
    if threading.current_thread() is not threading.main_thread():
        return {}
    if hasattr(os, "register_at_fork") and not _AT_FORK:
        os.register_at_fork(after_in_child=_in_forked_child)
        _AT_FORK.append(True)
    sigs = [sig for sig in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(sig) is not signal.SIG_IGN]
    return {sig: signal.signal(sig, _on_signal) for sig in sigs}


def end_process(code: int) -> None:
    """End this process with exit status ``code`` once the run is over: run the atexit handlers (other
    libraries' clean-up: coverage data, logging, temporary folders), flush the standard streams, then
    ``os._exit``. This skips the teardown that frees every module and object one by one, which took
    0.14 s once numba is loaded, against 0.01 s this way (``python -m benchmarks.cli_runner``, fixed
    costs "teardown" and "quick"). The output files were closed and renamed before
    :func:`~ambiseg_metrics.files.cli.main` returned, and no worker process outlives a run."""
    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, OSError, ValueError):  # closed early (e.g. piped into head)
                pass
        os._exit(code)


def quiet_after_stop() -> None:
    """Silence Dask's, asyncio's and tornado's loggers and Python's "Exception ignored" reports for the rest
    of this process: a run stopped by a signal while its ``local:N`` cluster was starting says so in one
    line, and Dask's threads, still starting or stopping workers, would otherwise report the failure with
    tracebacks after it."""
    roots = {"distributed", "asyncio", "tornado"}  # with their children that Dask's config set a level on
    names = [name for name in logging.root.manager.loggerDict if name.split(".")[0] in roots]
    for name in {*roots, *names}:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    sys.unraisablehook = lambda unraisable: None


def keep_worker_start_method() -> None:
    """Set Dask's ``distributed.worker.multiprocessing-method`` to
    :func:`~ambiseg_metrics.files.runner.start_method` for the rest of this process (the command's own):
    :func:`~ambiseg_metrics.files.distributed.scheduler_client` sets it only while the cluster starts, and a
    run stopped then leaves Dask's thread starting workers after that setting was undone."""
    import dask

    from .runner import start_method

    dask.config.set({"distributed.worker.multiprocessing-method": start_method()})
