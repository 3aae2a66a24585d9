"""The local process pool of ``evaluate_cases(jobs=N)``: results, errors, dead workers, no leftovers."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from ambiseg_metrics.files.io import InputFileError
from ambiseg_metrics.files.workers import WorkerDiedError, run_in_processes


def square(x: int) -> tuple[int, str]:
    return x * x, os.environ.get("AMBISEG_TEST_ENV", "")


def fail_on_three(x: int) -> int:
    if x == 3:
        raise InputFileError(f"bad {x}", f"/data/{x}.npy")
    return x


class Unpicklable(Exception):
    def __init__(self, a, b):  # pickling re-calls __init__ with one argument: fails
        super().__init__(a)


def raise_unpicklable(x: int) -> int:
    raise Unpicklable("lost", x)


def die(x: int) -> int:
    if x == 1:
        os._exit(7)
    return x


def test_results_and_environment():
    got = dict(run_in_processes(square, [(i,) for i in range(7)], 2, env={"AMBISEG_TEST_ENV": "yes"}))
    assert got == {i: (i * i, "yes") for i in range(7)}
    assert multiprocessing.active_children() == []


def test_task_error_keeps_its_type_and_path():
    with pytest.raises(InputFileError, match="bad 3") as info:
        list(run_in_processes(fail_on_three, [(i,) for i in range(6)], 2))
    assert info.value.path == "/data/3.npy"
    assert multiprocessing.active_children() == []


def test_unpicklable_error_becomes_a_runtime_error():
    with pytest.raises(RuntimeError, match="Unpicklable: lost"):
        list(run_in_processes(raise_unpicklable, [(1,), (2,)], 2))
    assert multiprocessing.active_children() == []


def test_a_dead_worker_is_noticed_not_waited_for():
    with pytest.raises(WorkerDiedError, match="exit code 7"):
        list(run_in_processes(die, [(i,) for i in range(4)], 2))
    assert multiprocessing.active_children() == []


def test_closing_the_stream_early_stops_the_workers():
    stream = run_in_processes(square, [(i,) for i in range(50)], 2)
    next(stream)
    stream.close()
    assert multiprocessing.active_children() == []
