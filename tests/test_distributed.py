"""Evaluation on a Dask cluster (loopback LocalCluster only): same table as a local run, worker faults."""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import threading
import time

import numpy as np
import pytest

distributed = pytest.importorskip("distributed", reason="needs the [distributed] extra")

from test_cli_data import write_dataset  # noqa: E402

from ambiseg_metrics.files import case_eval  # noqa: E402
from ambiseg_metrics.files.cases import EvalOptions, evaluate_cases  # noqa: E402
from ambiseg_metrics.files.cli import main  # noqa: E402
from ambiseg_metrics.files.distributed import (  # noqa: E402
    SchedulerUnreachableError,
    parse_scheduler,
    scheduler_client,
)
from ambiseg_metrics.files.io import InputFileError, discover_cases  # noqa: E402

DEADLINE = 240  # seconds: no test here may wait longer than this for the cluster


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
        env={"NUMBA_NUM_THREADS": "1"}, silence_logs=50,
    )
    c = distributed.Client(cluster, timeout=60)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def same_table(a, b):
    assert a.metrics == b.metrics and a.cases == b.cases
    for ra, rb in zip(a.rows, b.rows, strict=True):
        assert ra.keys() == rb.keys()
        for k in ra:
            va, vb = ra[k], rb[k]
            assert va == vb or (isinstance(va, float) and math.isnan(va) and math.isnan(vb)), (ra["case"], k)


def test_cluster_gives_the_local_table(client, tmp_path):
    preds, gts, _ = write_dataset(tmp_path, "folder", ".png", n_cases=6)
    found = discover_cases(preds, gts)
    local = evaluate_cases(found, progress=False)
    remote = evaluate_cases(found, client=client, progress=False)
    same_table(local, remote)
    assert len(remote) == 6


def test_cluster_takes_arrays_and_options(client):
    rng = np.random.default_rng(3)
    pairs = {
        f"img{i}": (rng.random((4, 9, 9)).astype(np.float32), rng.random((3, 9, 9)) > 0.5) for i in range(3)
    }
    options = EvalOptions(metrics=("ged", "ci"), threshold=0.3, estimator="unbiased")
    same_table(evaluate_cases(pairs, options, progress=False),
               evaluate_cases(pairs, options, client=client, progress=False))


def test_bad_file_on_a_worker_names_it(client, tmp_path):
    preds, gts, _ = write_dataset(tmp_path, "file", ".npy", n_cases=4)
    (preds / "case02.npy").write_bytes(b"not an array")
    with pytest.raises(InputFileError, match=r"case02\.npy: cannot read"):
        evaluate_cases(discover_cases(preds, gts), client=client, progress=False)


def _count_done(dask_scheduler, prefix):
    tasks = dask_scheduler.tasks.items()
    return sum(1 for key, ts in tasks if str(key).startswith(prefix) and ts.state == "memory")


def test_worker_killed_mid_run_loses_and_duplicates_nothing(client, tmp_path):
    n_cases = 120
    preds, gts, _ = write_dataset(tmp_path, "file", ".npy", n_cases=n_cases, n=8, m=4)
    found = discover_cases(preds, gts)
    local = evaluate_cases(found, progress=False)
    before = set(client.scheduler_info()["workers"])
    box = {}

    def run():
        try:
            box["table"] = evaluate_cases(found, client=client, progress=False)
        except BaseException as exc:  # reported by the main thread
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    killed = None
    deadline = time.monotonic() + DEADLINE
    while killed is None and thread.is_alive() and time.monotonic() < deadline:
        done = client.run_on_scheduler(_count_done, prefix="ambiseg-case-")
        busy = [w for w, keys in client.processing().items() if keys]
        if done >= 1 and busy:
            box["done_at_kill"] = done
            killed = busy[0]
            pid = client.run(os.getpid, workers=[killed])[killed]
            os.kill(pid, signal.SIGKILL)  # a hard crash mid-task; the nanny starts a new worker
        else:
            time.sleep(0.005)
    thread.join(timeout=max(1.0, deadline - time.monotonic()))
    assert not thread.is_alive(), "the run did not finish after the worker was killed"
    assert killed is not None, "the run finished before a worker could be killed"
    assert box["done_at_kill"] < n_cases
    assert "error" not in box, box.get("error")
    table = box["table"]
    assert len(table) == n_cases and len(set(table.cases)) == n_cases
    same_table(local, table)
    # the nanny brought a worker back: the cluster has two workers again
    client.wait_for_workers(2, timeout=60)
    assert len(client.scheduler_info()["workers"]) == 2 and before  # before: the original pair


def test_duplicated_or_missing_results_are_detected(monkeypatch):
    import ambiseg_metrics.files.distributed as glue

    arrays = {f"c{i}": (np.ones((2, 3, 3), bool), np.ones((2, 3, 3), bool)) for i in range(3)}

    def duplicating(client, items, options, task):
        for i in (0, 1, 1, 2):
            yield i, task([items[i]], options)[0]

    monkeypatch.setattr(glue, "run_on_client", duplicating)
    with pytest.raises(RuntimeError, match=r"case 'c1' was returned twice"):
        evaluate_cases(arrays, client=object(), progress=False)

    def losing(client, items, options, task):
        yield 0, task([items[0]], options)[0]

    monkeypatch.setattr(glue, "run_on_client", losing)
    with pytest.raises(RuntimeError, match=r"2 case\(s\) never returned a result: c1, c2"):
        evaluate_cases(arrays, client=object(), progress=False)


def test_cli_local_scheduler_equals_local_run(tmp_path, capsys):
    preds, gts, _ = write_dataset(tmp_path, "file", ".npz", n_cases=5)
    texts = []
    for extra in ([], ["--scheduler", "local:2"]):
        out = tmp_path / f"r{len(extra)}.csv"
        code = main([str(preds), str(gts), "--out", str(out), "--no-progress", "--bootstrap", "100", *extra])
        _, err = capsys.readouterr()
        assert code == 0, err
        texts.append(out.read_text())
    assert texts[0] == texts[1]


def _kernel_threads() -> tuple[int, bool]:
    from ambiseg_metrics.core import _kernels

    return _kernels._n_threads(), multiprocessing.parent_process() is not None


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_local_workers_share_the_cores_however_they_start(method, monkeypatch):
    """local:2 on 2 cores: one kernel thread per worker, whether a worker was forked from this process,
    which has loaded numba (and its thread count) already, or spawned, reading NUMBA_NUM_THREADS."""
    from ambiseg_metrics.core._kernel_load import load_kernels
    from ambiseg_metrics.files import runner

    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} here")
    load_kernels()
    monkeypatch.setattr(runner, "start_method", lambda: method)
    monkeypatch.setattr(runner, "usable_cpus", lambda: 2)
    with scheduler_client("local:2") as c:
        got = c.run(_kernel_threads)
    assert sorted(got.values()) == [(1, True), (1, True)]


_WARMED: list[int] = []


def _warm_here() -> None:
    _WARMED.append(os.getpid())


def _seen_warm() -> list[int]:
    return list(_WARMED)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_local_warm_up_runs_here_once_for_forked_workers(method, monkeypatch):
    """Forked workers inherit what the warm-up loaded here (run once, before the cluster starts);
    spawned ones would not, so it is not run here for them."""
    from ambiseg_metrics.files import runner

    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} here")
    monkeypatch.setattr(runner, "start_method", lambda: method)
    _WARMED.clear()
    try:
        with scheduler_client("local:2", warm_up=(_warm_here, ())) as c:
            seen = c.run(_seen_warm)
        if method == "fork":
            assert _WARMED == [os.getpid()] and list(seen.values()) == [[os.getpid()]] * 2
        else:
            assert _WARMED == [] and list(seen.values()) == [[]] * 2
    finally:
        _WARMED.clear()


def test_cli_scheduler_errors(tmp_path, capsys, monkeypatch):
    preds, gts, _ = write_dataset(tmp_path, "file", ".npy", n_cases=1)
    code = main([str(preds), str(gts), "--scheduler", "local:0"])
    assert code == 2 and "local:N with N >= 1" in capsys.readouterr().err
    code = main([str(preds), str(gts), "--scheduler", "local:2", "--jobs", "2"])
    assert code == 2 and "do not combine" in capsys.readouterr().err
    monkeypatch.setitem(__import__("sys").modules, "distributed", None)  # as if not installed
    out = str(tmp_path / "r.csv")
    code = main([str(preds), str(gts), "--scheduler", "tcp://127.0.0.1:8786", "--out", out])
    err = capsys.readouterr().err
    assert code == 2 and 'pip install "ambiseg-metrics[distributed]"' in err
    assert not (tmp_path / "r.csv").exists()


def test_parse_scheduler_and_unreachable_address():
    assert parse_scheduler("local:3") == ("local", 3)
    assert parse_scheduler("tcp://10.0.0.1:8786") == ("address", "tcp://10.0.0.1:8786")
    for bad in ("", "local", "local:x", "nonsense"):
        with pytest.raises(ValueError, match="scheduler"):
            parse_scheduler(bad)
    with pytest.raises(SchedulerUnreachableError, match="no Dask scheduler answered"):
        with scheduler_client("tcp://127.0.0.1:9", timeout=2):
            pass


def test_cases_evaluated_from_several_threads_match(tmp_path):
    # a Dask worker with --nthreads > 1 runs its tasks, batched chunks of cases, in threads: same numbers
    # as one case at a time
    from concurrent.futures import ThreadPoolExecutor

    preds, gts, _ = write_dataset(tmp_path, "file", ".npy", n_cases=8)
    found = discover_cases(preds, gts)
    options = EvalOptions().checked()
    sequential = [case_eval.run_case(c.name, c.pred, c.gt, options)[0] for c in found]
    chunks = [found[k:k + 2] for k in range(0, len(found), 2)]
    with ThreadPoolExecutor(4) as pool:
        done = pool.map(lambda chunk: case_eval.evaluate_chunk(chunk, options, batched=True), chunks)
        threaded = [row for results in done for row, _ in results]
    assert threaded == sequential


def test_cli_on_a_running_scheduler_address(client, tmp_path, capsys):
    preds, gts, _ = write_dataset(tmp_path, "folder", ".nii.gz", n_cases=3)
    texts = []
    for extra in ([], ["--scheduler", client.scheduler.address]):
        out = tmp_path / f"r{len(extra)}.csv"
        code = main([str(preds), str(gts), "--out", str(out), "--no-progress", "--bootstrap", "100", *extra])
        _, err = capsys.readouterr()
        assert code == 0, err
        texts.append(out.read_text())
    assert texts[0] == texts[1]
    assert len(client.scheduler_info()["workers"]) == 2  # the CLI did not close someone else's cluster


def test_cluster_tasks_take_explicit_options_over_the_preset(client):
    # every evaluate() option, explicit (falsy where it can be) against a preset that sets another value
    from option_cases import PRESET_VS_EXPLICIT, binary_case, preset_with

    from ambiseg_metrics.options import evaluate_options

    p, g = binary_case()
    for name in evaluate_options():
        base = preset_with(name)
        explicit = PRESET_VS_EXPLICIT[name][1]
        options = EvalOptions(conventions=base, **{name: explicit})
        remote = evaluate_cases({"c": (p, g)}, options, client=client, progress=False)
        local = evaluate_cases({"c": (p, g)}, EvalOptions(conventions=base.with_options(**{name: explicit})),
                               progress=False)
        preset_only = evaluate_cases({"c": (p, g)}, EvalOptions(conventions=base), progress=False)
        same_table(remote, local)
        assert remote.rows != preset_only.rows, name
def test_cli_dask_bad_file_is_one_clean_line_and_clean_exit_is_quiet(tmp_path):
    """Issue 13: a bad file on a Dask worker prints the local run's one-line error (no "Compute Failed"
    traceback from the worker first); a clean run prints no ERROR line."""
    import subprocess
    import sys

    preds, gts, _ = write_dataset(tmp_path, "file", ".npy", n_cases=3)
    argv = [sys.executable, "-m", "ambiseg_metrics", str(preds), str(gts), "--scheduler", "local:1",
            "--bootstrap", "20"]
    clean = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert clean.returncode == 0, clean.stderr
    assert "ERROR" not in clean.stderr and "Traceback" not in clean.stderr, clean.stderr
    (preds / "case01.npy").write_bytes(b"junk")
    bad = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    lines = [line for line in bad.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("ambiseg-eval: error: ") and "case01.npy" in lines[0]


def _sleep_long() -> None:
    time.sleep(60)


def test_processes_of_an_interrupted_start_are_ended():
    from ambiseg_metrics.files.distributed import _end_processes

    process = multiprocessing.get_context("spawn").Process(target=_sleep_long, daemon=True)
    process.start()
    started = time.monotonic()
    _end_processes({process, multiprocessing.get_context("spawn").Process(target=_sleep_long)})
    assert time.monotonic() - started < 5.0
    process.join(5)
    assert process.exitcode == -signal.SIGTERM


def test_a_close_interrupted_by_a_signal_ends_the_workers():
    """Dask cancels an interrupted close and leaves the cluster "closing" (its exit hook would wait 10 s):
    the workers started since the cluster's start are ended, the exit hook is told to leave it, and the
    interruption goes on. A process that was there before is left alone."""
    from ambiseg_metrics.files.distributed import _close

    ctx = multiprocessing.get_context("spawn")
    mine = ctx.Process(target=_sleep_long, daemon=True)
    mine.start()
    before = set(multiprocessing.active_children())
    worker = ctx.Process(target=_sleep_long, daemon=True)
    worker.start()

    class Interrupted:
        shutdown_on_close = True

        def close(self) -> None:
            raise KeyboardInterrupt

    cluster = Interrupted()
    try:
        with pytest.raises(KeyboardInterrupt):
            _close(cluster, before)
        assert cluster.shutdown_on_close is False
        worker.join(5)
        assert worker.exitcode == -signal.SIGTERM
        assert mine.is_alive()
    finally:
        for process in (mine, worker):
            process.kill()
            process.join(5)


def test_quiet_after_stop_reaches_the_loggers_dask_configured():
    """Dask's config gives ``tornado.application`` its own level (ERROR), so silencing ``tornado`` alone
    would let it report Dask's error in cancelling an interrupted wait after the run's stop."""
    import logging
    import sys

    from ambiseg_metrics.files.cli_process import quiet_after_stop

    names = ["tornado.application", "distributed.worker", "asyncio", "tornado"]
    saved = {name: logging.getLogger(name).level for name in names}
    hook = sys.unraisablehook
    try:
        assert logging.getLogger("tornado.application").level == logging.ERROR  # set by Dask's config
        quiet_after_stop()
        for name in names:
            assert not logging.getLogger(name).isEnabledFor(logging.CRITICAL), name
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
        sys.unraisablehook = hook
