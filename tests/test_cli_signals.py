"""Issue 13, items 4-5: real signals to a real ``ambiseg-eval --jobs 2`` leave no process and no file behind.

Each run gets two cases whose prediction file is a FIFO: a worker that reads one blocks in the middle of
the case until this test lets it go, so the signal always arrives while both workers are busy.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

psutil = pytest.importorskip("psutil")

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="FIFOs, process groups and /proc: Linux")


def _tree(root: Path, fifos: int = 2, good: int = 2, bad: bool = False) -> tuple[Path, Path, list[Path]]:
    preds, gts = root / "preds", root / "gts"
    preds.mkdir()
    gts.mkdir()
    rng = np.random.default_rng(0)
    names = [f"a_hang{i}" for i in range(fifos)] + [f"c_good{i}" for i in range(good)]
    pipes = []
    for name in names:
        np.save(gts / f"{name}.npy", rng.random((3, 16, 16)) > 0.5)
        if name.startswith("a_hang"):
            os.mkfifo(preds / f"{name}.npy")
            pipes.append(preds / f"{name}.npy")
        else:
            np.save(preds / f"{name}.npy", rng.random((4, 16, 16)) > 0.5)
    if bad:
        (preds / "b_bad.npy").write_bytes(b"not an array")
        np.save(gts / "b_bad.npy", rng.random((3, 16, 16)) > 0.5)
    return preds, gts, pipes


def _start(preds: Path, gts: Path, out: Path, *runner: str, env: dict | None = None) -> subprocess.Popen:
    argv = [sys.executable, "-m", "ambiseg_metrics", str(preds), str(gts), *(runner or ("--jobs", "2")),
            "--out", str(out), "--bootstrap", "50"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})},
                            start_new_session=True)  # its own process group, as a shell job would be


def _hold_open(pipes: list[Path], proc: subprocess.Popen, timeout: float = 120.0) -> list[int]:
    """Wait until a worker opened each FIFO for reading, and keep the writing end open (it then blocks
    reading the case's bytes)."""
    fds: list[int] = []
    deadline = time.monotonic() + timeout
    for pipe in pipes:
        while True:
            try:
                fds.append(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
                break
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise
            if proc.poll() is not None:
                raise AssertionError(f"run ended early: {proc.communicate()}")
            if time.monotonic() > deadline:
                raise AssertionError("the workers never opened the case files")
            time.sleep(0.05)
    return fds


def _signal_when_busy(proc: subprocess.Popen, pipes: list[Path], send) -> tuple[list[int], str, float]:
    """Wait until the run's readers block on the FIFO cases, note the run's processes, call ``send()``
    and wait for the run to end: the processes, its standard error, and the seconds from the signal to
    the end."""
    fds = []
    try:
        fds = _hold_open(pipes, proc)
        children = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        sent = time.monotonic()
        send()
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        for fd in fds:
            os.close(fd)
        if proc.poll() is None:
            proc.kill()
    return children, err, took


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def _wait_gone(pids: list[int], timeout: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _alive(pids)


@pytest.mark.parametrize(("how", "signum", "code", "word"), [
    ("pid", signal.SIGINT, 130, "interrupted"),
    ("group", signal.SIGINT, 130, "interrupted"),  # a terminal's Ctrl-C: every process of the job
    ("pid", signal.SIGTERM, 143, "terminated"),
    ("group", signal.SIGTERM, 143, "terminated"),
    ("group twice", signal.SIGINT, 130, "interrupted"),  # an impatient second Ctrl-C: still no traceback
])
def test_one_signal_ends_the_run_quickly_and_cleanly(tmp_path, how, signum, code, word):
    preds, gts, pipes = _tree(tmp_path)
    out = tmp_path / "results.csv"
    proc = _start(preds, gts, out)

    def send() -> None:
        if how.startswith("group"):
            os.killpg(proc.pid, signum)
            if how.endswith("twice"):
                time.sleep(0.02)
                try:
                    os.killpg(proc.pid, signum)
                except ProcessLookupError:
                    pass
        else:
            os.kill(proc.pid, signum)

    children, err, took = _signal_when_busy(proc, pipes, send)
    assert len(children) >= 1  # the worker (a spawned one comes with multiprocessing's resource tracker)
    print(f"{signal.Signals(signum).name} to {how}: exit {proc.returncode} after {took:.2f} s")
    assert proc.returncode == code, err
    assert took < 2.0, f"took {took:.2f} s"
    assert f"{word}, no output written" in err and "Traceback" not in err, err
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    assert _wait_gone(children, timeout=1.0) == [], "worker processes outlived the run"


def test_an_error_in_one_worker_stops_the_others(tmp_path):
    """a_hang0 blocks its reader (the worker, which takes from the front) forever; b_bad, read by this
    process's own share (from the back), is a FIFO too, fed its bad bytes only once both readers are in
    place, so the worker is surely running (a forked worker starts in milliseconds, and the run could
    otherwise fail and kill it before this test sees it)."""
    preds, gts, _ = _tree(tmp_path, fifos=1, good=1, bad=True)
    bad = preds / "b_bad.npy"
    bad.unlink()
    os.mkfifo(bad)
    out = tmp_path / "results.csv"
    proc = _start(preds, gts, out)
    fds = []
    try:
        fds = _hold_open([preds / "a_hang0.npy", bad], proc)
        seen = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        os.write(fds[1], b"not an array")
        os.close(fds.pop())
        _, err = proc.communicate(timeout=30)
    finally:
        for fd in fds:
            os.close(fd)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, err
    assert "b_bad.npy" in err and "Traceback" not in err
    assert not out.exists()
    assert len(seen) >= 1  # the worker of --jobs 2 (with spawn, multiprocessing's resource tracker too)
    assert _wait_gone(sorted(seen), timeout=1.0) == [], "a worker blocked on a case outlived the failed run"


def test_workers_die_with_a_killed_parent(tmp_path):
    preds, gts, pipes = _tree(tmp_path)
    proc = _start(preds, gts, tmp_path / "results.csv")
    fds = []
    try:
        fds = _hold_open(pipes, proc)
        children = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        proc.kill()  # SIGKILL: no clean-up code of ours can run
        proc.communicate(timeout=30)
        assert _wait_gone(children, timeout=5.0) == []
    finally:
        for fd in fds:
            os.close(fd)


def _naming(path: Path) -> list[int]:
    """Live processes whose command line names ``path`` (a forked worker has its parent's)."""
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        if p.info["status"] != psutil.STATUS_ZOMBIE and str(path) in (p.info["cmdline"] or []):
            found.append(p.pid)
    return found


def test_closed_stdout_leaves_no_process(tmp_path):
    """stdout closed early (``| head -0``): exit 141, the files are written, no worker survives: neither a
    child seen during the run (a forked worker may live too briefly to be seen) nor any process that
    names the tree on its command line, as a forked worker does."""
    preds, gts, _ = _tree(tmp_path, fifos=0, good=4)
    out = tmp_path / "results.csv"
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody reads: the first print fails with EPIPE
    argv = [sys.executable, "-m", "ambiseg_metrics", str(preds), str(gts), "--jobs", "2", "--out", str(out),
            "--bootstrap", "50"]
    proc = subprocess.Popen(argv, stdout=write_end, stderr=subprocess.PIPE, text=True, start_new_session=True)
    os.close(write_end)
    seen: set[int] = set()
    parent = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            seen.update(p.pid for p in parent.children(recursive=True))
        except psutil.NoSuchProcess:
            break
        time.sleep(0.005)
    err = proc.stderr.read()
    proc.wait(timeout=60)
    assert proc.returncode == 141, err
    assert "Traceback" not in err and out.read_text().startswith("case,")
    assert _wait_gone(sorted(seen), timeout=1.0) == []
    assert _naming(preds) == []


@pytest.mark.parametrize(("how", "signum", "code", "word", "method"), [
    ("group", signal.SIGINT, 130, "interrupted", "fork"),
    ("pid", signal.SIGTERM, 143, "terminated", "fork"),
    # spawned workers (macOS, Windows): a group Ctrl-C must not reach them as their own KeyboardInterrupt
    ("group", signal.SIGINT, 130, "interrupted", "spawn"),
])
def test_a_local_dask_cluster_stops_as_cleanly(tmp_path, how, signum, code, word, method):
    """The same with ``--scheduler local:2``, whose workers are forks of the run's process on Linux: a
    worker must neither run the run's signal routing (a traceback from inside Dask) nor outlive it."""
    pytest.importorskip("distributed", reason="needs the [distributed] extra")
    preds, gts, pipes = _tree(tmp_path)
    out = tmp_path / "results.csv"
    proc = _start(preds, gts, out, "--scheduler", "local:2", env={"AMBISEG_START_METHOD": method})
    send = (lambda: os.killpg(proc.pid, signum)) if how == "group" else (lambda: os.kill(proc.pid, signum))
    children, err, took = _signal_when_busy(proc, pipes, send)  # both workers blocked on a case
    assert len(children) >= 2
    print(f"local:2 ({method}), {signal.Signals(signum).name} to {how}: exit {proc.returncode} after "
          f"{took:.2f} s")
    assert proc.returncode == code, err
    assert took < 10.0, f"took {took:.2f} s"
    assert f"{word}, no output written" in err and "Traceback" not in err, err
    assert not out.exists()
    assert _wait_gone(children, timeout=5.0) == [], "Dask worker processes outlived the run"
    assert _naming(preds) == []


_UNRAISABLE_PROBE = '''
import gc, os, signal, sys, weakref
sys.path.insert(0, {root!r})
from ambiseg_metrics.files import cli_process


class Thing:
    pass


def bad(ref):
    raise ValueError("before")


def callback(ref):
    os.kill(os.getpid(), signal.SIGINT)  # the handler raises Stopped inside the callback
    for _ in range(1000):  # give the pending handler a bytecode boundary inside the callback
        pass


cli_process.catch_signals()
first = Thing()
ref0 = weakref.ref(first, bad)
del first
gc.collect()  # an unraisable error before any signal: reported as usual
thing = Thing()
ref = weakref.ref(thing, callback)
del thing
gc.collect()
print("fired", cli_process.FIRED)
'''


def test_a_signal_raised_inside_a_callback_is_noted_not_printed(tmp_path):
    """A signal arriving while Python runs a callback it cannot unwind (here a weakref callback) makes
    ``Stopped`` unraisable: no "Exception ignored" report, and the signal is in FIRED (the command checks
    it before writing anything). Before a signal, unraisable exceptions are reported as usual."""
    script = tmp_path / "probe.py"
    script.write_text(_UNRAISABLE_PROBE.format(root=str(Path(__file__).resolve().parents[1])))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "fired [2]" in done.stdout, (done.stdout, done.stderr)
    assert "Stopped" not in done.stderr, done.stderr
    assert "ValueError: before" in done.stderr  # reported before the signal
    assert done.stderr.count("Exception ignored") == 1


_IMPORT_PROBE = '''
import os, signal, sys, time
sys.path.insert(0, {root!r})
sys.path.insert(0, {here!r})
from ambiseg_metrics.files import cli_process

cli_process.catch_signals()
try:
    import slow_module  # sends itself SIGTERM, then keeps importing for 0.3 s
    print("imported", slow_module.DONE)
    time.sleep(5)
    print("not stopped")
except cli_process.Stopped as exc:
    print("stopped after the import", exc.signum, "slow_module" in sys.modules)
'''

_SLOW_MODULE = '''
import os, signal, time
os.kill(os.getpid(), signal.SIGTERM)
end = time.monotonic() + 0.3
while time.monotonic() < end:
    pass
DONE = True
'''


def test_a_signal_during_an_import_stops_the_run_after_it(tmp_path):
    """Stopped is not raised inside an import (a C extension importing a module may turn it into an
    ImportError: the run then ended with "internal error", exit 1): the signal is sent again until it
    lands outside, and the run stops right after the import."""
    (tmp_path / "slow_module.py").write_text(_SLOW_MODULE)
    script = tmp_path / "probe.py"
    script.write_text(_IMPORT_PROBE.format(root=str(Path(__file__).resolve().parents[1]), here=str(tmp_path)))
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "imported True" in done.stdout and "stopped after the import 15 True" in done.stdout, done.stdout
    assert time.monotonic() - started < 4.0


def test_an_error_after_a_signal_reports_the_signal(tmp_path, monkeypatch, capsys):
    """A signal's Stopped turned into another exception on its way (numba's C import turned it into
    ImportError) ends the run as stopped (143), not as an internal error (1)."""
    from ambiseg_metrics.files import cli, cli_process

    preds = tmp_path / "preds"
    gts = tmp_path / "gts"
    preds.mkdir()
    gts.mkdir()
    np.save(preds / "a.npy", np.zeros((2, 8, 8), bool))
    np.save(gts / "a.npy", np.zeros((2, 8, 8), bool))

    def converted(*args, **kwargs):
        cli_process.FIRED.append(int(signal.SIGTERM))
        raise ImportError("numba._devicearray failed to import")

    monkeypatch.setattr(cli, "evaluate_cases", converted)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = cli.main([str(preds), str(gts), "--out", str(tmp_path / "r.csv")])
    finally:
        cli_process.FIRED.clear()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert code == 143
    err = capsys.readouterr().err
    assert "terminated, no output written" in err and "internal error" not in err
    assert not (tmp_path / "r.csv").exists()
