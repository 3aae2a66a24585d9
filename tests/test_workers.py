"""The local process pool of ``evaluate_cases(jobs=N)``: results, errors, dead workers, no leftovers — with
worker processes only, and with this process taking a share of the tasks (``here``, one worker fewer); every
test runs with forked and with spawned workers."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ambiseg_metrics.files import runner
from ambiseg_metrics.files.io import InputFileError
from ambiseg_metrics.files.workers import WorkerDiedError, run_in_processes

METHODS = ["fork", "spawn"] if "fork" in multiprocessing.get_all_start_methods() else ["spawn"]


@pytest.fixture(autouse=True, params=METHODS)
def start(request, monkeypatch):
    """Every test, once per way of starting a worker (the default is the platform's, start_method())."""
    monkeypatch.setattr(runner, "start_method", lambda: request.param)
    return request.param


def _started(x: int) -> None:
    """In a worker (which gets AMBISEG_TEST_DIR): leave a mark that task x started."""
    folder = os.environ.get("AMBISEG_TEST_DIR")
    if folder:
        open(os.path.join(folder, f"started-{x}-{os.getpid()}"), "w").close()


def square(x: int) -> tuple[int, str]:
    _started(x)
    return x * x, os.environ.get("AMBISEG_TEST_DIR", "")


def fail_on_three(x: int) -> int:
    _started(x)
    if x == 3:
        raise InputFileError(f"bad {x}", f"/data/{x}.npy")
    return x


class Unpicklable(Exception):
    def __init__(self, a, b):  # pickling re-calls __init__ with one argument: fails
        super().__init__(a)
        # and a lock cannot be pickled at all: with Dask imported (a forked worker inherits it), tblib's
        # exception pickling bypasses __init__, but not this
        self.lock = threading.Lock()


def raise_unpicklable(x: int) -> int:
    _started(x)
    if os.environ.get("AMBISEG_TEST_DIR"):  # in a worker only: the error must cross the pipe
        raise Unpicklable("lost", x)
    return x


def die(x: int) -> int:
    _started(x)
    if os.environ.get("AMBISEG_TEST_DIR"):  # in a worker only (not in pytest's process)
        os._exit(7)
    return x


def _patient(folder):
    """A share for this process that starts only once a worker has started a task, so that every test
    also sees a worker's result or error (this process takes the back of the list, the workers the
    front; without the wait it may run every task before a worker is ready)."""
    ran = []

    def here(func, *args):
        deadline = time.monotonic() + 60
        while not any(p.name.startswith("started-") for p in folder.iterdir()):
            assert time.monotonic() < deadline, "no worker started a task"
            time.sleep(0.01)
        ran.append(args)
        return func(*args)

    here.ran = ran
    return here


SHARES = pytest.mark.parametrize("share", [False, True], ids=["workers only", "this process too"])


def _run(func, tasks, jobs, tmp_path, share, **kwargs):
    here = _patient(tmp_path) if share else None
    return run_in_processes(func, tasks, jobs, env={"AMBISEG_TEST_DIR": str(tmp_path)}, here=here,
                            **kwargs), here


@SHARES
def test_results_and_environment(tmp_path, share):
    stream, here = _run(square, [(i,) for i in range(7)], 2, tmp_path, share)
    got = dict(stream)
    assert sorted(got) == list(range(7))
    assert all(value == i * i for i, (value, _) in got.items())
    # the workers see env, this process (its share taken from the back) does not
    by_here = {i for i, (_, seen) in got.items() if seen != str(tmp_path)}
    assert by_here == ({i for (i,) in here.ran} if share else set())
    if share:
        assert 6 in by_here and 0 not in by_here
    assert multiprocessing.active_children() == []


@SHARES
def test_task_error_keeps_its_type_and_path(tmp_path, share):
    with pytest.raises(InputFileError, match="bad 3") as info:
        list(_run(fail_on_three, [(i,) for i in range(6)], 2, tmp_path, share)[0])
    assert info.value.path == "/data/3.npy"
    assert multiprocessing.active_children() == []


@SHARES
def test_unpicklable_error_becomes_a_runtime_error(tmp_path, share):
    with pytest.raises(RuntimeError, match="Unpicklable: lost"):
        list(_run(raise_unpicklable, [(1,), (2,), (3,)], 2, tmp_path, share)[0])
    assert multiprocessing.active_children() == []


@SHARES
def test_a_dead_worker_is_noticed_not_waited_for(tmp_path, share):
    with pytest.raises(WorkerDiedError, match="exit code 7"):
        list(_run(die, [(i,) for i in range(4)], 2, tmp_path, share)[0])
    assert multiprocessing.active_children() == []


@SHARES
def test_closing_the_stream_early_stops_the_workers(tmp_path, share):
    stream, _ = _run(square, [(i,) for i in range(50)], 2, tmp_path, share)
    next(stream)
    stream.close()
    assert multiprocessing.active_children() == []


def fail_on_three_else_hang(x: int) -> int:
    """Task 3 fails; in a worker, any other task starts and never ends (until the worker is killed), so
    that the workers, which take tasks from the front, cannot reach task 3 before this process does."""
    if x != 3 and os.environ.get("AMBISEG_TEST_DIR"):
        _started(x)
        time.sleep(120)
    return fail_on_three(x)


def test_an_error_here_stops_the_workers(tmp_path):
    """This process's own task fails (task 3: its share starts at the back): the workers are killed."""
    stream, here = _run(fail_on_three_else_hang, [(i,) for i in range(4)], 3, tmp_path, True)
    with pytest.raises(InputFileError, match="bad 3"):
        list(stream)
    assert here.ran[0] == (3,)
    assert multiprocessing.active_children() == []


def test_each_task_runs_once_in_one_process(tmp_path):
    stream, here = _run(square, [(i,) for i in range(20)], 3, tmp_path, True)
    assert dict(stream).keys() == set(range(20))
    in_workers = [int(p.name.split("-")[1]) for p in tmp_path.iterdir()]
    assert sorted(in_workers + [i for (i,) in here.ran]) == list(range(20))
    assert multiprocessing.active_children() == []


_WARM: list[int] = []  # pids that ran the warm-up in this process's memory (a fork inherits it)
_SET_UP: list[str] = []


def warm(folder: str) -> None:
    _WARM.append(os.getpid())
    open(os.path.join(folder, f"warm-{os.getpid()}"), "w").close()


def warmed(x: int, folder: str) -> list[int]:
    return list(_WARM)


def fail(folder: str) -> None:
    raise RuntimeError("a warm-up error is not the run's")


def set_up(value: str) -> None:
    _SET_UP.append(value)


def seen_set_up(x: int) -> tuple[list[str], int]:
    _started(x)
    return list(_SET_UP), os.getpid()


def test_a_worker_warms_up_before_its_first_task(tmp_path, start):
    """Spawned: each worker runs the warm-up itself. Forked: this process runs it once, before the forks,
    which inherit what it did (here: a list in memory), so that no worker pays for it again."""
    tasks = [(i, str(tmp_path)) for i in range(3)]
    try:
        got = dict(run_in_processes(warmed, tasks, 2, warm_up=(warm, (str(tmp_path),))))
        marks = sorted(int(p.name.split("-")[1]) for p in tmp_path.glob("warm-*"))
        if start == "fork":
            assert marks == [os.getpid()] and _WARM == [os.getpid()]
            assert got == dict.fromkeys(range(3), [os.getpid()])
        else:
            # one warm-up per worker (a worker still starting when the run ends is stopped before its own)
            assert os.getpid() not in marks and 1 <= len(marks) <= 2 and _WARM == []
            assert all(len(pids) == 1 and pids[0] in marks for pids in got.values())
        _WARM.clear()
        got = dict(run_in_processes(warmed, tasks[:1], 1, warm_up=(fail, (str(tmp_path),))))
        assert got == {0: []}
        assert multiprocessing.active_children() == []
    finally:
        _WARM.clear()


@SHARES
def test_setup_runs_in_every_worker_and_not_here(tmp_path, share):
    stream, here = _run(seen_set_up, [(i,) for i in range(6)], 3, tmp_path, share, setup=(set_up, ("on",)))
    got = dict(stream)
    for seen, pid in got.values():
        assert seen == (["on"] if pid != os.getpid() else [])
    assert _SET_UP == []
    assert multiprocessing.active_children() == []


def _sleep_then_square(x: int) -> int:
    _started(x)
    time.sleep(60)
    return x * x


def _wait_for_a_started_task(folder) -> int:
    deadline = time.monotonic() + 60
    while not (marks := list(folder.glob("started-*"))):
        assert time.monotonic() < deadline, "no worker started a task"
        time.sleep(0.01)
    return int(marks[0].name.split("-")[2])


def test_a_worker_dies_of_sigterm_without_running_our_handler(tmp_path, start):
    """A fork inherits this process's Python signal handlers: the worker resets SIGTERM to the default, so
    a SIGTERM sent to it kills it as it would a spawned one (the CLI's handler would unwind the worker
    instead, printing a traceback), and the parent reports the dead worker."""
    ran = []
    old = signal.signal(signal.SIGTERM, lambda *a: ran.append(os.getpid()))
    try:
        stream = run_in_processes(_sleep_then_square, [(1,)], 1, env={"AMBISEG_TEST_DIR": str(tmp_path)})
        killer = threading.Thread(target=lambda: os.kill(_wait_for_a_started_task(tmp_path), signal.SIGTERM))
        killer.start()
        with pytest.raises(WorkerDiedError, match=f"exit code -{int(signal.SIGTERM)}"):
            list(stream)  # starts the worker, which starts the task; blocks until the worker dies
        killer.join()
        assert ran == []
        assert multiprocessing.active_children() == []
    finally:
        signal.signal(signal.SIGTERM, old)


def test_start_method_is_checked():
    with pytest.raises(ValueError, match="start must be"):
        list(run_in_processes(square, [(1,)], 1, start="threads"))


def test_a_failing_setup_is_a_dead_worker(tmp_path):
    with pytest.raises(WorkerDiedError, match="while starting"):
        list(run_in_processes(square, [(i,) for i in range(3)], 2, setup=(fail, (str(tmp_path),))))
    assert multiprocessing.active_children() == []


def test_the_progress_bar_starts_no_thread():
    """The bar over cases is shown while workers are forked: it must not start tqdm's monitor thread (a
    plain tqdm bar does, which the second count shows), so that the fork copies a one-thread process."""
    script = (
        "import threading, sys\n"
        "from ambiseg_metrics.files.cases import progress_bar\n"
        "bar = progress_bar(3, True); bar.update(1); print(threading.active_count()); bar.close()\n"
        "from tqdm.auto import tqdm\n"
        "plain = tqdm(total=3, file=sys.stderr); plain.update(1)\n"
        "print(threading.active_count()); plain.close()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["1", "2"]


_MASK_PROBE = '''
import json, multiprocessing, signal, sys, threading
sys.path.insert(0, {root!r})
from ambiseg_metrics.files.runner import children_deaf_to_ctrl_c


def report(queue):
    queue.put(sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, set())))


def start(out):
    # as Dask's thread does: a spawn-context queue (its semaphore needs the resource tracker) and a process
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=report, args=(queue,))
    process.start()
    out.append(queue.get(timeout=60))
    process.join(60)


if __name__ == "__main__":
    out = []
    with children_deaf_to_ctrl_c({method!r}):
        thread = threading.Thread(target=start, args=(out,))
        thread.start()
    thread.join(120)
    main_mask = sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, set()))
    print(json.dumps({{"child": out[0], "main": main_mask}}))
'''


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="no signal masks on this platform")
def test_processes_started_meanwhile_do_not_take_ctrl_c(tmp_path):
    """A process started from a thread created while workers start (as Dask's threads are) inherits a mask
    that blocks SIGINT, even when launching multiprocessing's resource tracker would unblock it (a fresh
    interpreter, so the tracker is not running yet); the caller's own mask is restored."""

    script = tmp_path / "probe.py"
    script.write_text(_MASK_PROBE.format(root=str(Path(__file__).resolve().parents[1]), method="spawn"))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    masks = json.loads(done.stdout)
    assert int(signal.SIGINT) in masks["child"], done.stdout
    assert int(signal.SIGINT) not in masks["main"]


_POOL_PROBE = '''
import json, signal, sys
sys.path.insert(0, {root!r})
from ambiseg_metrics.files.workers import run_in_processes


def mask(i):
    return sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, set()))


if __name__ == "__main__":
    print(json.dumps([m for _, m in run_in_processes(mask, [(i,) for i in range(4)], jobs=2, start="spawn")]))
'''


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="no signal masks on this platform")
def test_spawned_workers_start_with_ctrl_c_blocked(tmp_path):
    """``run_in_processes`` in a fresh interpreter: its first spawned worker launches multiprocessing's
    resource tracker, whose launch unblocks SIGINT; every worker must still start with it blocked."""
    script = tmp_path / "pool_probe.py"
    script.write_text(_POOL_PROBE.format(root=str(Path(__file__).resolve().parents[1])))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    masks = json.loads(done.stdout)
    assert len(masks) == 4 and all(int(signal.SIGINT) in m for m in masks), masks
