"""Cases evaluated in chunks and batches (issue 20): the same table, bit for bit, for every way of running —
one case at a time, chunks of any size, ``--jobs 1/2/auto``, ``--scheduler local:2`` — and errors still
raised for the first bad case, naming its file."""

from __future__ import annotations

import math
import os
import sys
import time

import numpy as np
import pytest
from PIL import Image

from ambiseg_metrics.files import case_eval, runner
from ambiseg_metrics.files.cases import EvalOptions, evaluate_case, evaluate_cases
from ambiseg_metrics.files.cli import main
from ambiseg_metrics.files.io import InputFileError, discover_cases


def _png_case(folder, masks: np.ndarray) -> None:
    folder.mkdir(parents=True)
    for k, m in enumerate(masks):
        Image.fromarray(m.astype(np.uint8) * 255 if m.dtype == bool else m).save(folder / f"{k:02d}.png")


def _mixed_tree(root, n_big: int = 6):
    """Cases of several kinds: 2D PNG folders of two sizes and several N/M, an N=1 case (pair metrics
    undefined), float probability stacks, a 3D stack, a multi-valued label PNG."""
    rng = np.random.default_rng(7)
    preds, gts = root / "preds", root / "gts"
    for i in range(n_big):  # 128^2 x 11 masks each: batches above the numpy-count size (numba kernels)
        base = rng.random((128, 128))
        _png_case(preds / f"big{i}", np.stack([base + rng.normal(0, .2, base.shape) > .5 for _ in range(8)]))
        _png_case(gts / f"big{i}", np.stack([base + rng.normal(0, .2, base.shape) > .5 for _ in range(3)]))
    for i, (n, m) in enumerate([(4, 3), (4, 3), (5, 2), (1, 3), (4, 3)]):
        _png_case(preds / f"small{i}", rng.random((n, 13, 17)) > 0.5)
        _png_case(gts / f"small{i}", rng.random((m, 13, 17)) > 0.5)
    for i in range(3):
        np.save(preds / f"prob{i}.npy", rng.random((6, 20, 20)).astype(np.float32))
        np.save(gts / f"prob{i}.npy", rng.random((2, 20, 20)) > 0.5)
    np.save(preds / "vol.npy", rng.random((3, 5, 9, 11)) > 0.5)
    np.save(gts / "vol.npy", rng.random((2, 5, 9, 11)) > 0.5)
    labels = rng.integers(0, 3, (3, 13, 17)).astype(np.uint8)
    _png_case(preds / "labels", labels)
    _png_case(gts / "labels", rng.random((2, 13, 17)) > 0.5)
    return preds, gts


def _bits(table) -> list[tuple]:
    out = []
    for row in table.rows:
        out.append(tuple((k, np.float64(v).tobytes() if isinstance(v, float) else v) for k, v in row.items()))
    return out


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    return _mixed_tree(root)


def test_chunks_give_the_one_case_at_a_time_table_bit_for_bit(mixed, monkeypatch):
    found = discover_cases(*mixed)
    options = EvalOptions().checked()
    with pytest.warns(UserWarning):
        single = [evaluate_case(c.pred, c.gt, options, name=c.name) for c in found]
    nan_rows = [r for r in single if any(isinstance(v, float) and math.isnan(v) for v in r.values())]
    assert nan_rows and nan_rows[0]["case"] == "small3"  # the N=1 case: pair metrics undefined
    reference = [tuple((k, np.float64(v).tobytes() if isinstance(v, float) else v) for k, v in r.items())
                 for r in single]
    monkeypatch.setattr(case_eval, "BATCH_MIN_CASES", 1)
    for max_chunk, batch_bytes in [(1, 1 << 30), (3, 1 << 30), (64, 1 << 30), (64, 200_000)]:
        monkeypatch.setattr(runner, "MAX_CHUNK", max_chunk)
        monkeypatch.setattr(case_eval, "BATCH_BYTES", batch_bytes)
        with pytest.warns(UserWarning):
            table = evaluate_cases(found, options, progress=False)
        assert _bits(table) == reference, (max_chunk, batch_bytes)


def test_notes_are_kept_through_chunks(mixed, monkeypatch):
    monkeypatch.setattr(case_eval, "BATCH_MIN_CASES", 1)
    with pytest.warns(UserWarning) as caught:
        table = evaluate_cases(discover_cases(*mixed), progress=False)
    text = " ".join(table.notes)
    assert "small3" in text and "undefined" in text  # N=1
    assert "values 0, 1, 2" in text  # the label PNG
    assert len(caught) == len(table.notes)


@pytest.mark.parametrize("batch_min", [1, 10_000])  # batched chunks / one case at a time
def test_every_way_of_running_writes_the_same_bytes(mixed, tmp_path, capsys, monkeypatch, batch_min):
    monkeypatch.setattr(case_eval, "BATCH_MIN_CASES", batch_min)  # decided here, passed to the workers
    preds, gts = mixed
    ways = [["--jobs", "1"], ["--jobs", "2"], ["--jobs", "auto"], []]
    try:
        import distributed  # noqa: F401

        ways.append(["--scheduler", "local:2"])
    except ImportError:
        pass
    outputs = []
    for k, extra in enumerate(ways):
        csv, js = tmp_path / f"r{k}.csv", tmp_path / f"s{k}.json"
        code = main([str(preds), str(gts), "--out", str(csv), "--json", str(js), "--bootstrap", "200",
                     "--no-progress", *extra])
        _, err = capsys.readouterr()
        assert code == 0, err
        outputs.append((csv.read_bytes(), js.read_bytes()))
    assert all(o == outputs[0] for o in outputs[1:])


def test_first_bad_case_of_a_chunk_is_the_one_reported(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    preds, gts = tmp_path / "preds", tmp_path / "gts"
    for i in range(6):
        _png_case(preds / f"c{i}", rng.random((3, 8, 8)) > 0.5)
        _png_case(gts / f"c{i}", rng.random((2, 8, 8)) > 0.5)
    (preds / "c4" / "01.png").write_bytes(b"not a png")  # a read error, later in the chunk
    bad = rng.random((3, 8, 8)).astype(np.float32)
    bad[1, 2, 3] = 1.5  # an evaluation error (probability out of [0, 1]), earlier in the chunk
    import shutil

    shutil.rmtree(preds / "c2")
    np.save(preds / "c2.npy", bad)
    found = discover_cases(preds, gts)
    monkeypatch.setattr(runner, "MAX_CHUNK", 64)
    monkeypatch.setattr(case_eval, "BATCH_MIN_CASES", 1)
    with pytest.raises(InputFileError, match=r"c2\.npy") as info:
        evaluate_cases(found, progress=False)
    assert "1.5" in str(info.value)
    (preds / "c2.npy").unlink()
    _png_case(preds / "c2", rng.random((3, 8, 8)) > 0.5)
    with pytest.raises(InputFileError, match=r"c4/01\.png: cannot read"):
        evaluate_cases(discover_cases(preds, gts), progress=False)


@pytest.mark.parametrize("n", [0, 1, 5, 16, 17, 100, 2000, 5003])
@pytest.mark.parametrize("workers", [1, 2, 3, 16])
def test_chunk_ranges_cover_everything_in_order(n, workers):
    ranges = runner.chunk_ranges(n, workers)
    assert [i for r in ranges for i in r] == list(range(n))
    assert all(1 <= len(r) <= runner.MAX_CHUNK for r in ranges)
    if n <= runner.CHUNKS_PER_WORKER * workers:
        assert all(len(r) == 1 for r in ranges)  # small runs: one case per task, as before
    elif n >= runner.MAX_CHUNK * runner.CHUNKS_PER_WORKER * workers:
        assert len(ranges[0]) == runner.MAX_CHUNK


def test_auto_jobs_and_checks(monkeypatch):
    monkeypatch.setattr(runner, "busy_cpus", lambda: None)  # no /proc/stat: the load average decides
    monkeypatch.setattr(os, "getloadavg", lambda: (0.3, 0.0, 0.0))  # an idle machine
    ref = runner.AUTO_REFERENCE_PIXELS
    for kind, least in runner.AUTO_MIN_CASES.items():
        assert runner.auto_jobs(10, cpus=8, kind=kind) == 1
        assert runner.auto_jobs(least - 1, cpus=8, kind=kind) == 1
        assert runner.auto_jobs(least - 1, cpus=8, kind=kind, pixels_per_case=ref) == 1
        assert 1 < runner.auto_jobs(least, cpus=2, kind=kind) <= 2
        assert runner.auto_jobs(100_000, cpus=8, kind=kind) == 8
        assert runner.auto_jobs(100_000, cpus=1, kind=kind) == 1
        # larger cases: proportionally fewer of them pay for a second process; smaller ones: not more
        quarter = math.ceil(least / 4)
        assert runner.auto_jobs(quarter, cpus=2, kind=kind, pixels_per_case=4 * ref) == 2
        assert runner.auto_jobs(quarter - 1, cpus=2, kind=kind, pixels_per_case=4 * ref) == 1
        assert runner.auto_jobs(least, cpus=2, kind=kind, pixels_per_case=ref // 16) == 2
        assert runner.auto_jobs(2, cpus=2, kind=kind, pixels_per_case=10**6 * ref) == 2  # 2 huge 3D cases
        assert runner.auto_jobs(1, cpus=2, kind=kind, pixels_per_case=10**6 * ref) == 1
    assert runner.AUTO_MIN_CASES["arrays"] >= runner.AUTO_MIN_CASES["images"]  # cheaper to read
    assert runner.auto_jobs(100_000, cpus=8, kind="memory") == 1  # arrays in memory: never shipped
    monkeypatch.setattr(os, "getloadavg", lambda: (5.6, 0.0, 0.0))  # busy: the cores are shared already
    assert runner.free_cpus(8) == 2 and runner.auto_jobs(100_000, cpus=8) == 2
    assert runner.auto_jobs(100_000, cpus=2) == 1
    # what the CPUs do now wins over the lagging load average, both ways
    monkeypatch.setattr(runner, "busy_cpus", lambda: 0.1)
    assert runner.free_cpus(2) == 2 and runner.auto_jobs(100_000, cpus=2) == 2
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    monkeypatch.setattr(runner, "busy_cpus", lambda: 1.9)
    assert runner.free_cpus(2) == 1 and runner.free_cpus(8) == 6
    assert runner.check_jobs("auto") == "auto" and runner.check_jobs(3) == 3
    for bad in (0, -1, True, 1.5, "4", None):
        with pytest.raises(ValueError, match="jobs must be"):
            runner.check_jobs(bad)
    assert runner.jobs_value(" Auto ") == "auto" and runner.jobs_value("3") == 3
    assert 1 <= runner.usable_cpus() <= (os.cpu_count() or 1)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="/proc/stat and affinity: Linux")
def test_busy_cpus_sees_a_busy_process():
    """A process spinning on one of our CPUs shows as (about) one busy CPU more than an idle sample."""
    import subprocess
    import sys

    cpus = len(os.sched_getaffinity(0))
    first = runner.busy_cpus(0.3)
    assert first is not None and 0.0 <= first <= cpus + 1e-9
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)
        busy = runner.busy_cpus(0.5)
    finally:
        spin.kill()
        spin.wait()
    assert busy is not None and busy <= cpus + 1e-9
    assert busy >= min(cpus, first + 1) - 0.5  # one CPU more, unless they were all busy already


def test_workload_of_a_case(tmp_path):
    """What --jobs auto reads of the first case: its kind, and its mask pixels from headers only."""
    preds, gts = _mixed_tree(tmp_path)
    cases = {c.name: c for c in discover_cases(preds, gts)}
    assert case_eval.workload(cases["big0"]) == ("images", 11 * 128 * 128)
    assert case_eval.workload(cases["prob0"]) == ("arrays", 8 * 20 * 20)
    rng = np.random.default_rng(0)
    in_memory = case_eval.Case("m", rng.random((2, 4, 4)), rng.random((2, 4, 4)))
    assert case_eval.workload(in_memory) == ("memory", None)
    np.savez(preds / "z.npz", masks=np.zeros((2, 4, 4), bool))
    np.savez(gts / "z.npz", masks=np.zeros((2, 4, 4), bool))
    assert case_eval.workload(case_eval.Case("z", preds / "z.npz", gts / "z.npz")) == ("arrays", None)
    assert case_eval.workload(case_eval.Case("gone", preds / "nothing", gts / "nothing")) == ("images", None)


def _threads_used(chunk: list, folder: str) -> list:
    """The kernel threads of the process that runs the chunk, and whether it is a worker (this process
    first waits for a worker to have run a chunk, so that both are seen)."""
    from ambiseg_metrics.core import _kernels

    worker = os.environ.get("NUMBA_NUM_THREADS") is not None
    if worker:
        open(os.path.join(folder, f"ran-{os.getpid()}"), "w").close()
    else:
        deadline = time.monotonic() + 60
        while not os.listdir(folder) and time.monotonic() < deadline:
            time.sleep(0.01)
    return [(_kernels._n_threads(), worker)] * len(chunk)


def test_workers_get_their_share_of_the_cores(monkeypatch, tmp_path):
    """--jobs 2: one worker and this process, each with half the cores; this process's setting is restored."""
    from ambiseg_metrics.core import _kernels  # loaded: this process limits its threads while it computes

    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    before = _kernels._n_threads()
    got = dict(runner.run_local(_threads_used, list(range(10)), (str(tmp_path),), 2))
    assert sorted(got) == list(range(10))
    assert {threads for threads, _ in got.values()} == {max(1, runner.usable_cpus() // 2)}
    assert {worker for _, worker in got.values()} == {True, False}  # both did a share
    assert _kernels._n_threads() == before


def test_more_jobs_than_chunks_share_the_cores_among_the_processes_started(monkeypatch, tmp_path):
    """--jobs 8 on 2 cases runs 2 processes (this one and one worker): the cores are shared between
    those 2, not between 8."""
    from ambiseg_metrics.core import _kernels  # noqa: F401 - loaded, as in the test above

    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    monkeypatch.setattr(runner, "usable_cpus", lambda: 8)
    got = dict(runner.run_local(_threads_used, [0, 1], (str(tmp_path),), 8))
    assert got == {0: (4, True), 1: (4, False)}  # the worker takes the front, this process the back


def test_cli_jobs_flag(tmp_path, capsys):
    preds, gts = _mixed_tree(tmp_path, n_big=0)
    for value, message in (("0", "--jobs must be >= 1"), ("x", "invalid jobs value")):
        assert main([str(preds), str(gts), "--jobs", value, "--no-progress"]) == 2
        assert message in capsys.readouterr().err


def test_multivalued_check_matches_its_definition():
    from ambiseg_metrics.files.masks import multivalued

    def reference(a):
        if a.dtype.kind == "b" or a.size == 0:
            return False
        low, high = a.min(), a.max()
        return bool(low < 0 or (high > 0 and np.any((a != 0) & (a != high))))

    rng = np.random.default_rng(3)
    for dtype in (np.uint8, np.uint16, np.int8, np.int32, np.int64, bool):
        for values in ([0], [0, 1], [0, 255], [0, 1, 2], [-1, 0, 1], [-1, 0], [5], [3, 7], [0, 0, 9]):
            if dtype is bool:
                values = [bool(v) for v in values]
            elif not np.iinfo(dtype).min <= min(values) <= max(values) <= np.iinfo(dtype).max:
                continue
            a = rng.choice(np.asarray(values, dtype=dtype), size=(3, 7, 5))
            assert multivalued(a) == reference(a), (dtype, values)
        assert multivalued(np.zeros((0, 4), dtype=dtype)) is False


def test_a_stack_check_still_names_each_multivalued_file(tmp_path):
    """One check per stacked case; when it finds something, each file is checked and named."""
    from ambiseg_metrics.files.io import read_source
    from ambiseg_metrics.files.masks import ReadOptions

    folder = tmp_path / "c"
    folder.mkdir()
    Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8)).save(folder / "a.png")  # 0/1
    Image.fromarray(np.array([[0, 255], [0, 0]], np.uint8)).save(folder / "b.png")  # 0/255: fine alone
    Image.fromarray(np.array([[0, 2], [3, 0]], np.uint8)).save(folder / "c.png")  # two foreground values
    notes = []
    stack = read_source(folder, lambda kind, msg: notes.append((kind, msg)), ReadOptions())
    assert stack.shape == (3, 2, 2)
    assert [k for k, _ in notes] == ["multivalued"] and "c.png" in notes[0][1]
    with pytest.raises(InputFileError, match=r"c\.png.*--strict"):
        read_source(folder, None, ReadOptions(strict=True))


def test_an_interrupt_while_reading_a_chunk_is_not_held_up_by_the_batch(monkeypatch):
    """Ctrl-C while a batched chunk is read propagates at once: the cases read so far are not evaluated
    first (only an error of one of them may come before a later case's read error), so it is neither
    delayed nor replaced by an earlier case's input error."""
    rng = np.random.default_rng(1)
    bad = rng.random((3, 8, 8)).astype(np.float32)
    bad[0, 0, 0] = 1.5  # an evaluation error in the first case, which would be raised first
    items = [case_eval.Case("c0", bad, rng.random((2, 8, 8)) > 0.5),
             case_eval.Case("c1", rng.random((3, 8, 8)) > 0.5, rng.random((2, 8, 8)) > 0.5)]
    read = case_eval._read_case

    def interrupted(case, options, read_options):
        if case.name == "c1":
            raise KeyboardInterrupt
        return read(case, options, read_options)

    monkeypatch.setattr(case_eval, "_read_case", interrupted)
    with pytest.raises(KeyboardInterrupt):
        case_eval.evaluate_chunk(items, EvalOptions().checked(), None, batched=True)


def test_auto_thresholds_follow_how_workers_start():
    """A forked worker costs milliseconds, a spawned one its own start and kernel load: each way has its
    own thresholds (measured, runner.py), and this platform uses its own way's."""
    assert runner.start_method() == ("fork" if sys.platform.startswith("linux") else "spawn")
    assert runner.AUTO_MIN_CASES == runner.AUTO_MIN_CASES_BY_START[runner.start_method()]
    fork, spawn = runner.AUTO_MIN_CASES_BY_START["fork"], runner.AUTO_MIN_CASES_BY_START["spawn"]
    assert fork.keys() == spawn.keys() == {"images", "arrays"}
    assert all(fork[kind] < spawn[kind] for kind in fork)


def test_the_start_method_can_be_chosen_by_environment(monkeypatch):
    monkeypatch.setenv("AMBISEG_START_METHOD", " Spawn ")
    assert runner.start_method() == "spawn"
    monkeypatch.setattr(runner, "busy_cpus", lambda: 0.0)
    spawn = runner.AUTO_MIN_CASES_BY_START["spawn"]["images"]
    assert runner.auto_jobs(spawn - 1, cpus=2) == 1 and runner.auto_jobs(spawn, cpus=2) == 2
    if hasattr(os, "fork"):
        monkeypatch.setenv("AMBISEG_START_METHOD", "fork")
        assert runner.start_method() == "fork"
        fork = runner.AUTO_MIN_CASES_BY_START["fork"]["images"]
        assert runner.auto_jobs(fork, cpus=2) == 2
    monkeypatch.setenv("AMBISEG_START_METHOD", "forkserver")
    with pytest.raises(ValueError, match="AMBISEG_START_METHOD='forkserver': use 'fork' or 'spawn'"):
        runner.start_method()
    monkeypatch.setenv("AMBISEG_START_METHOD", "")
    assert runner.start_method() == ("fork" if sys.platform.startswith("linux") else "spawn")


def test_cli_names_a_bad_start_method(monkeypatch, tmp_path, capsys):
    from ambiseg_metrics.files.cli import main

    monkeypatch.setenv("AMBISEG_START_METHOD", "threads")
    assert main(["--example", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "AMBISEG_START_METHOD='threads'" in err and "Traceback" not in err
