"""The file-based runner (``ambiseg-eval``) against the time to merely decode its files (issue 20).

Writes a tree of cases in a temporary folder — ``preds/<case>/<k>.png`` (N samples) and
``gts/<case>/<k>.png`` (M annotations), 0/255 greyscale PNGs of synthetic lesions
(:func:`benchmarks.data.make_masks`); or one ``.npy`` stack per case and side — and times, each as a fresh
process, as a user would run them:

* **decode only**: a Python process that imports Pillow and numpy and decodes every file of the tree
  (``np.asarray(Image.open(path))``; ``np.load`` for ``.npy``) — the floor for one process;
* ``ambiseg-eval preds gts --out x.csv --jobs 1`` / ``--jobs 2`` / ``--scheduler local:2`` (and ``--jobs
  auto``, the default);

medians of ``--repeats`` runs, interleaved (one of each per round, so a change of the load hits them all),
with the load average printed before and after. The CSVs of every way of running must be byte-identical;
the script checks that.

Examples
--------
python -m benchmarks.cli_runner                       # 2000 PNG cases (22k files) and 2000 .npy cases
python -m benchmarks.cli_runner --cases 200 --repeats 1 --formats png
python -m benchmarks.cli_runner --crossover           # --jobs 1 vs 2 (and auto), 25..1600 cases, per format
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cli_scripts import DECODE_SCRIPT, READER_SCRIPT, STARTUP_SCRIPT

__all__ = ["write_tree", "run", "png_reader_costs"]


def png_reader_costs(tree: Path, repeats: int) -> list[str]:
    """CPU µs per file to read the PNGs of ``tree`` with Pillow (``np.asarray(Image.open(path))``) and with
    the library's fast path for 8-bit grey PNGs (:mod:`ambiseg_metrics.files.png_plain`), in one fresh
    process per repeat (medians)."""
    runs = [[float(x) for x in subprocess.run([sys.executable, "-c", READER_SCRIPT, str(tree)], env=_env(),
                                              capture_output=True, text=True, check=True).stdout.split()]
            for _ in range(repeats)]
    pillow, fast = (statistics.median(r[k] for r in runs) for k in (0, 1))
    return [f"  CPU us per PNG file: Pillow {pillow:.1f}, fast 8-bit grey path {fast:.1f} "
            f"({pillow / fast:.2f}x; load {_load()})"]


SPIN = "import sys; n = int(sys.argv[1]); s = 0\nfor i in range(n): s += i"


def parallel_capacity(repeats: int, n: int = 4_000_000) -> tuple[float, list[str]]:
    """How many cores two CPU-bound processes get right now: 2 × (time of one) / (time of two at once);
    2.0 on two idle cores, about 1.0 when other jobs hold one core's worth."""
    ratios = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", SPIN, str(n)], check=True)
        one = time.perf_counter() - t0
        t0 = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", SPIN, str(n)]) for _ in range(2)]
        for proc in procs:
            proc.wait()
        two = time.perf_counter() - t0
        ratios.append(2 * one / two)
    value = statistics.median(ratios)
    return value, [f"parallel capacity (2 busy-loop processes, 2 x time of one / time of two): {value:.2f} "
                   f"cores (runs: {', '.join(f'{r:.2f}' for r in ratios)}; load {_load()})"]


def startup_costs(root: Path, repeats: int, dask: bool) -> list[str]:
    """Medians of the fixed costs of a parallel run, each in fresh processes."""
    script = root / "startup_probe.py"
    script.write_text(STARTUP_SCRIPT)
    probes = {"kernels": "CPU s to import numba and load the kernels (one process)",
              "spawn": "wall s until a spawned worker has warmed up and returned a task",
              "fork": "wall s until a forked worker (after the warm-up here) has returned a task",
              "teardown": "wall s of the interpreter's teardown once the kernels are loaded",
              "quick": "wall s of the atexit handlers and os._exit instead (how ambiseg-eval ends)",
              "bootstrap": "wall s of the summary, 10 metrics x 2000 cases, 10,000 resamples",
              "bootstrap-alone": "the same one metric at a time (each drawing its resamples)"}
    if dask:
        probes["dask"] = "wall s to import Dask, start and close a local:2 cluster (forked workers on Linux)"
        probes["dask-spawn"] = "the same with spawned workers (Dask's default)"
    lines = []
    for key, label in probes.items():
        values = []
        for _ in range(repeats):
            done = subprocess.run([sys.executable, str(script), key], env=_env(), capture_output=True,
                                  text=True, check=True)
            values.append(float(done.stdout.strip().splitlines()[-1]))
        lines.append(f"  {label}: {statistics.median(values):.2f} "
                     f"(runs: {', '.join(f'{v:.2f}' for v in values)})")
    return ["fixed costs (fresh processes; load " + _load() + "):", *lines]


def write_tree(root: Path, n_cases: int, n_pred: int = 8, n_gt: int = 3, size: int = 128,
               fmt: str = "png", seed: int = 0) -> tuple[Path, Path, int]:
    """Write ``root/preds`` and ``root/gts`` with ``n_cases`` cases; return the two folders and the number
    of files. ``fmt``: ``"png"`` (a folder per case, one 0/255 PNG per mask) or ``"npy"`` (one bool stack
    per case and side)."""
    from PIL import Image

    from .data import make_masks

    preds, gts = root / "preds", root / "gts"
    preds.mkdir(parents=True)
    gts.mkdir(parents=True)
    files = 0
    step = 250  # generate in slices: 2000 cases x 11 masks of 128^2 bool is 360 MB at once
    for start in range(0, n_cases, step):
        count = min(step, n_cases - start)
        data = make_masks(count, n_pred, n_gt, (size, size), seed=seed + start)
        for b in range(count):
            name = f"case_{start + b:05d}"
            for side, stack in ((preds, data.preds[b]), (gts, data.gts[b])):
                if fmt == "npy":
                    np.save(side / f"{name}.npy", stack)
                    files += 1
                    continue
                folder = side / name
                folder.mkdir()
                for k, mask in enumerate(stack):
                    Image.fromarray(mask.astype(np.uint8) * 255).save(folder / f"{k:03d}.png")
                    files += 1
    return preds, gts, files


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for key in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS"):
        env.pop(key, None)  # the runner chooses its own threads
    return env


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _timed(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, the process and every worker it waited for)."""
    c0, t0 = _cpu(), time.perf_counter()
    done = subprocess.run(argv, env=_env(), capture_output=True, text=True)
    elapsed, cpu = time.perf_counter() - t0, _cpu() - c0
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return elapsed, cpu


@dataclass
class Result:
    """Median seconds per way of running, all timings, and whether the CSVs were byte-identical."""

    fmt: str
    cases: int
    files: int
    medians: dict[str, float] = field(default_factory=dict)
    times: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    cpu_times: dict[str, list[float]] = field(default_factory=dict)
    identical: bool = True
    load_before: str = ""
    load_after: str = ""


def _variants(dask: bool) -> dict[str, list[str]]:
    out = {"jobs 1": ["--jobs", "1"], "jobs 2": ["--jobs", "2"], "jobs auto": []}
    if dask:
        out["local:2"] = ["--scheduler", "local:2"]
    return out


def bench(root: Path, fmt: str, n_cases: int, repeats: int, dask: bool = True,
          variants: list[str] | None = None) -> Result:
    """Time decode-only and every way of running on one tree (written under ``root``)."""
    preds, gts, files = write_tree(root / fmt, n_cases, fmt=fmt)
    result = Result(fmt, n_cases, files, load_before=_load())
    ways = _variants(dask)
    if variants is not None:
        ways = {k: v for k, v in ways.items() if k in variants}
    commands = {"decode only": [sys.executable, "-c", DECODE_SCRIPT, str(root / fmt)]}
    for label, extra in ways.items():
        out = root / f"{fmt}-{label.replace(' ', '_').replace(':', '_')}.csv"
        commands[label] = [sys.executable, "-m", "ambiseg_metrics", str(preds), str(gts), "--out", str(out),
                           "--bootstrap", "100", "--quiet", *extra]
    _timed(commands["jobs 1"] if "jobs 1" in commands else commands["decode only"])  # warm caches
    for _ in range(repeats):
        for label, argv in commands.items():
            wall, cpu = _timed(argv)
            result.times.setdefault(label, []).append(wall)
            result.cpu_times.setdefault(label, []).append(cpu)
    result.medians = {k: statistics.median(v) for k, v in result.times.items()}
    result.cpu = {k: statistics.median(v) for k, v in result.cpu_times.items()}
    csvs = sorted(root.glob(f"{fmt}-*.csv"))
    result.identical = len({p.read_bytes() for p in csvs}) == 1
    result.load_after = _load()
    return result


def report(r: Result) -> list[str]:
    lines = [f"{r.fmt}: {r.cases} cases, {r.files} files; load before {r.load_before}, after {r.load_after}"]
    for label, t in r.medians.items():
        runs = ", ".join(f"{x:.2f}" for x in r.times[label])
        lines.append(f"  {label:12s} {t:7.2f} s wall, {r.cpu[label]:6.2f} s CPU (all processes)   "
                     f"(wall of each run: {runs})")
    m = r.medians
    c = r.cpu
    if "jobs 1" in c:
        lines.append(f"  CPU time jobs 1 / decode only: {c['jobs 1'] / c['decode only']:.2f}x")
    if "jobs 1" in m:
        lines.append(f"  jobs 1 / decode only: {m['jobs 1'] / m['decode only']:.2f}x (target <= 1.3)")
    if "jobs 1" in m and "jobs 2" in m:
        lines.append(f"  speed-up jobs 2 over jobs 1: {m['jobs 1'] / m['jobs 2']:.2f}x (target >= 1.6)")
    if "jobs auto" in m and "jobs 1" in m and "jobs 2" in m:
        best = min(m["jobs 1"], m["jobs 2"])
        lines.append(f"  jobs auto / best of jobs 1 and jobs 2: {m['jobs auto'] / best:.2f}x (ideal 1.0)")
    if "local:2" in m and "jobs 2" in m:
        lines.append(f"  local:2 / jobs 2: {m['local:2'] / m['jobs 2']:.2f}x (target <= 1.25)")
    lines.append(f"  CSVs byte-identical across ways of running: {'yes' if r.identical else 'NO'}")
    return lines


#: Case counts of the crossover sweep in ``python -m benchmarks --workloads 5``.
CROSSOVER_SIZES = (50, 100, 200, 400, 800)


def crossover(root: Path, sizes: list[int], repeats: int, formats: tuple[str, ...] = ("png", "npy"),
              echo: bool = True) -> list[str]:
    """--jobs 1 against --jobs 2 (and what --jobs auto does) on trees of growing size, per format: where a
    second process starts to pay."""
    lines = []
    for fmt in formats:
        lines.append(f"crossover ({fmt}, N=8, M=3, 128^2): cases, jobs 1 s, jobs 2 s, jobs 1 / jobs 2, "
                     "jobs auto s, auto / best of 1 and 2, load")
        if echo:
            print(lines[-1], flush=True)
        for n in sizes:
            r = bench(root / f"x{fmt}{n}", fmt, n, repeats, dask=False,
                      variants=["jobs 1", "jobs 2", "jobs auto"])
            m = r.medians
            best = min(m["jobs 1"], m["jobs 2"])
            one, two, auto = m["jobs 1"], m["jobs 2"], m["jobs auto"]
            lines.append(f"  {n:5d}  {one:6.2f}  {two:6.2f}  {one / two:.2f}x  "
                         f"{auto:6.2f}  {auto / best:.2f}x  load {r.load_after}"
                         + ("" if r.identical else "  CSVs DIFFER"))
            if echo:
                print(lines[-1], flush=True)
    return lines


def workload(settings, bw) -> tuple[object, dict[str, object]]:
    """Workload 5 of ``python -m benchmarks`` (``--workloads 5``): this benchmark as one table
    (``settings.quick``: 24 cases, no Dask, no fixed-cost probes)."""
    from .workloads import ScalingTable

    quick = bool(settings.quick)
    n_cases, repeats = (24, 1) if quick else (2000, min(3, max(1, settings.repeats)))
    try:
        import distributed  # noqa: F401

        dask = not quick
    except ImportError:
        dask = False
    root = Path(tempfile.mkdtemp(prefix="ambiseg-cli-bench-"))
    notes: list[str] = []
    figures: dict[str, object] = {}
    rows = []
    try:
        if not quick:
            capacity, lines = parallel_capacity(repeats)
            figures["capacity"] = capacity
            notes += [line.strip() for line in lines + startup_costs(root, repeats, dask)[1:]]
        for fmt in ("png", "npy"):
            r = bench(root, fmt, n_cases, repeats, dask=dask)
            if fmt == "png":
                notes += [f"png: {line.strip()}" for line in png_reader_costs(root / fmt, repeats)]
            figures[fmt] = {"wall": r.medians, "cpu": r.cpu, "identical": r.identical}
            for label in r.medians:
                rows.append([fmt, label, f"{r.medians[label]:.2f}", f"{r.cpu[label]:.2f}"])
            notes += [f"{fmt}: {line.strip()}" for line in report(r)[1:] if " s wall" not in line]
        if not quick:  # where a second process starts to pay, and whether --jobs auto follows it
            notes += [line.strip() for line in crossover(root / "crossover", list(CROSSOVER_SIZES), repeats,
                                                         echo=False)]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    table = ScalingTable(
        title="Workload 5: ambiseg-eval on a tree of files",
        description=f"{n_cases} cases of 8 + 3 masks of 128x128 (PNG folders / .npy stacks), fresh "
                    f"processes, medians of {repeats}; decode only = Pillow/numpy reading every file in one "
                    "process",
        header=["files", "way of running", "wall s", "CPU s (all processes)"], rows=rows, notes=notes)
    return table, figures


def run(argv: list[str] | None = None) -> list[str]:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cli_runner", description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--formats", default="png,npy", help="comma-separated: png, npy")
    p.add_argument("--no-dask", action="store_true", help="skip --scheduler local:2")
    p.add_argument("--crossover", action="store_true", help="only the jobs 1 / jobs 2 crossover sweep")
    p.add_argument("--no-startup", action="store_true", help="skip the fixed-cost probes")
    p.add_argument("--sizes", default="25,50,100,200,400,800,1600", help="case counts of --crossover")
    args = p.parse_args(argv)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"cpus usable: {cpus}; load {_load()}", flush=True)
    root = Path(tempfile.mkdtemp(prefix="ambiseg-cli-bench-"))
    lines: list[str] = []
    try:
        if args.crossover:
            return crossover(root, [int(s) for s in args.sizes.split(",")], args.repeats,
                             tuple(f.strip() for f in args.formats.split(",")))
        dask = not args.no_dask
        if dask:
            try:
                import distributed  # noqa: F401
            except ImportError:
                dask = False
        if not args.no_startup:
            for line in parallel_capacity(args.repeats)[1] + startup_costs(root, args.repeats, dask):
                print(line, flush=True)
                lines.append(line)
        for fmt in args.formats.split(","):
            r = bench(root, fmt.strip(), args.cases, args.repeats, dask=dask)
            extra = png_reader_costs(root / "png", args.repeats) if fmt.strip() == "png" else []
            for line in report(r) + extra:
                print(line, flush=True)
                lines.append(line)
        if not args.no_startup:
            line = "at the end: " + parallel_capacity(args.repeats)[1][0]
            print(line, flush=True)
            lines.append(line)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return lines


if __name__ == "__main__":
    run()
