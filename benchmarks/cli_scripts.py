"""The scripts ``python -m benchmarks.cli_runner`` runs in fresh processes (``python -c SCRIPT``; the
start-up probe from a file, since its worker processes re-import it): each measures one thing with
nothing of the benchmark's own process around it."""

__all__ = ["DECODE_SCRIPT", "READER_SCRIPT", "STARTUP_SCRIPT"]

#: Decode every file of a tree with Pillow (``.npy``: ``np.load``) in one process: the floor for one process.
DECODE_SCRIPT = r"""
import os, sys
import numpy as np
from PIL import Image
root = sys.argv[1]
total = 0
for side in ("preds", "gts"):
    base = os.path.join(root, side)
    for case in sorted(os.listdir(base)):
        path = os.path.join(base, case)
        if case.endswith(".npy"):
            total += int(np.load(path).sum() > 0)
            continue
        for name in sorted(os.listdir(path)):
            with Image.open(os.path.join(path, name)) as im:
                total += int(np.asarray(im).any())
print(total)
"""


#: Fixed costs, by its argument: ``kernels`` (CPU s to import numba and load the kernels of one batched
#: call); ``fork`` / ``spawn`` (wall s until a worker started that way has returned its first task, from a
#: process that has loaded the kernels; the worker warms up as a run's does); ``teardown`` / ``quick``
#: (wall s from the end of a batched call to the end of the process: the interpreter's teardown, or the
#: atexit handlers and ``os._exit`` as ``ambiseg-eval`` ends); ``bootstrap`` (wall s of the summary of 10
#: metric columns of 2000 cases with 10,000 resamples, as ``ambiseg-eval``'s default; ``bootstrap-alone``:
#: the same one column at a time, drawing the resamples anew for each); else the wall s to
#: start and close a Dask local:2 cluster (``dask-spawn``: with spawned workers, Dask's default).
STARTUP_SCRIPT = r"""
import os, resource, subprocess, sys, time
import numpy as np


def _noop(chunk):
    return [None] * len(chunk)


def _cpu(who):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


#: a child that loads the kernels, runs one batched call, says so, and ends (normally, or quickly)
_ENDING = '''
import sys
import numpy as np
from ambiseg_metrics.core._kernel_load import load_kernels
from ambiseg_metrics.evaluation import evaluate
load_kernels()
evaluate(np.zeros((16, 8, 128, 128), bool), np.zeros((16, 3, 128, 128), bool), batch=True)
sys.stdout.write("x")
sys.stdout.flush()
if sys.argv[1] == "quick":
    from ambiseg_metrics.files.cli_process import end_process
    end_process(0)
'''


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "kernels":  # a fresh process: numba import and the kernels of one batched call
        from ambiseg_metrics.core._kernel_load import load_kernels
        from ambiseg_metrics.evaluation import evaluate
        p = np.zeros((16, 8, 128, 128), bool)
        g = np.zeros((16, 3, 128, 128), bool)
        c0 = _cpu(resource.RUSAGE_SELF)
        load_kernels()  # as a batched ambiseg-eval run does (a call this small alone would stay in numpy)
        evaluate(p, g, batch=True)
        print(_cpu(resource.RUSAGE_SELF) - c0)
    elif what in ("fork", "spawn"):  # one worker, from a process that has the kernels loaded
        from ambiseg_metrics.files.case_eval import warm_up
        from ambiseg_metrics.files.cases import EvalOptions
        from ambiseg_metrics.files.workers import run_in_processes
        options = EvalOptions().checked()
        warm_up(options, True)
        t0 = time.perf_counter()
        list(run_in_processes(_noop, [([0],)], 1, warm_up=(warm_up, (options, True)), start=what))
        print(time.perf_counter() - t0)
    elif what in ("teardown", "quick"):
        child = subprocess.Popen([sys.executable, "-c", _ENDING, what], stdout=subprocess.PIPE)
        child.stdout.read(1)
        t0 = time.perf_counter()
        child.wait()
        print(time.perf_counter() - t0)
    elif what in ("bootstrap", "bootstrap-alone"):  # shared draws / one column at a time
        from ambiseg_metrics.summary import nan_summaries, nan_summary
        columns = list(np.random.default_rng(0).random((10, 2000)))
        t0 = time.perf_counter()
        if what == "bootstrap":
            nan_summaries(columns, n_boot=10_000, seed=0)
        else:
            [nan_summary(x, n_boot=10_000, seed=0) for x in columns]
        print(time.perf_counter() - t0)
    else:  # a Dask local:2 cluster started and closed around one trivial task ("dask-spawn": spawned workers)
        from ambiseg_metrics.files import runner
        from ambiseg_metrics.files.distributed import scheduler_client
        if what == "dask-spawn":
            runner.start_method = lambda: "spawn"
        t0 = time.perf_counter()
        with scheduler_client("local:2") as client:
            client.submit(sum, [1, 2]).result()
        print(time.perf_counter() - t0)
"""


#: CPU µs per PNG file of a tree read with Pillow and with the library's fast 8-bit grey path.
READER_SCRIPT = r"""
import os, sys, time
import numpy as np
from PIL import Image
from ambiseg_metrics.core._kernel_load import load_kernels
from ambiseg_metrics.files.png_plain import read_plain_png
root = sys.argv[1]
files = [os.path.join(root, side, case, name) for side in ("preds", "gts")
         for case in sorted(os.listdir(os.path.join(root, side)))
         for name in sorted(os.listdir(os.path.join(root, side, case)))]
load_kernels()
assert read_plain_png(files[0]) is not None  # the first call also loads the unfilter kernel
def pillow(path):
    with Image.open(path) as im:
        return np.asarray(im)
out = []
for reader in (pillow, read_plain_png):
    t0 = time.process_time()
    for path in files:
        reader(path)
    out.append((time.process_time() - t0) / len(files) * 1e6)
print(*out)
"""
