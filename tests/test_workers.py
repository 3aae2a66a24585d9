"""The local process pool of ``evaluate_cases(jobs=N)``: results, errors, dead workers, no leftovers — with
worker processes only, and with this process taking a share of the tasks (``here``, one worker fewer)."""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest

from ambiseg_metrics.files.io import InputFileError
from ambiseg_metrics.files.workers import WorkerDiedError, run_in_processes


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


def test_an_error_here_stops_the_workers(tmp_path):
    """This process's own task fails (task 3: its share starts at the back): the workers are killed."""
    stream, here = _run(fail_on_three, [(i,) for i in range(4)], 3, tmp_path, True)
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


def warm(folder: str) -> None:
    open(os.path.join(folder, f"warm-{os.getpid()}"), "w").close()


def warmed(x: int, folder: str) -> bool:
    return os.path.exists(os.path.join(folder, f"warm-{os.getpid()}"))


def fail(folder: str) -> None:
    raise RuntimeError("a warm-up error is not the run's")


def test_a_worker_warms_up_before_its_first_task(tmp_path):
    tasks = [(i, str(tmp_path)) for i in range(3)]
    got = dict(run_in_processes(warmed, tasks, 2, warm_up=(warm, (str(tmp_path),))))
    assert got == dict.fromkeys(range(3), True)
    got = dict(run_in_processes(warmed, tasks[:1], 1, warm_up=(fail, (str(tmp_path),))))
    assert got == {0: False}
    assert multiprocessing.active_children() == []
