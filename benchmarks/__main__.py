"""``python -m benchmarks``: run the workloads, print the tables (``--write``: into benchmarks/RESULTS.md).

The tracked ``benchmarks/RESULTS.md`` is rewritten only when asked for (``--write``), so a trial run on
another machine does not silently replace the committed results.

Examples
--------
python -m benchmarks                          # everything (about 4 minutes on 2 cores), printed only
python -m benchmarks --write                  # ... and rewrite benchmarks/RESULTS.md
python -m benchmarks --quick                  # tiny sizes: checks the harness works
python -m benchmarks --workloads 1,3 --skip-peers monai
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

from ambiseg_metrics.files.atomic import atomic_write

from .cli_runner import workload as cli_workload
from .harness import Table
from .machine import copy_bandwidth, machine_info
from .peers import available_peers
from .startup import startup_times
from .workloads import ScalingTable, Settings, lidc_scale, many_samples, scaling, volumes_3d

WORKLOADS = {"1": lidc_scale, "2": many_samples, "3": volumes_3d, "4": scaling}
WORKLOADS["5"] = cli_workload  # ambiseg-eval on files (issue 20); not in the default list: --workloads 5
DEFAULT_OUT = Path(__file__).with_name("RESULTS.md")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes and budgets (a smoke run)")
    p.add_argument("--workloads", default="1,2,3,4",
                   help="comma-separated subset of 1,2,3,4,5 (5: the CLI on files, not run by default)")
    p.add_argument("--write", action="store_true",
                   help="write the results to benchmarks/RESULTS.md (or to --out)")
    p.add_argument("--out", default=None,
                   help="Markdown file for the results (default: none; benchmarks/RESULTS.md with --write)")
    p.add_argument("--repeats", type=int, default=None, help="repeats of our timings (default 5; quick 2)")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds per slow method (reference, each peer) per workload (default 8; quick 0.2)")
    p.add_argument("--no-startup", action="store_true",
                   help="skip the fresh-process import / first-call timings")
    p.add_argument("--skip-peers", default="",
                   help="comma-separated peers not to run: monai,torchmetrics,medpy")
    args = p.parse_args(argv)
    if args.out is None and args.write:
        args.out = str(DEFAULT_OUT)
    unknown = sorted(set(args.workloads.split(",")) - set(WORKLOADS))
    if unknown:
        p.error(f"--workloads: unknown workload(s) {unknown}; choose from {','.join(WORKLOADS)}")
    return args


def _targets(figures: dict[str, dict[str, object]]) -> list[str]:
    """The issue's targets, checked against this run's figures."""
    out = []
    if "1" in figures:
        f = figures["1"]
        ours = float(f["ours_s"])
        ref = next(v for k, v in f["rows"].items() if k.startswith("research"))
        out.append(f"Workload 1 end to end under 1 s: {ours:.3f} s — {'met' if ours < 1 else 'MISSED'}")
        out.append(f"Workload 1 at least 100× faster than the research-code reference: {ref / ours:,.0f}× — "
                   f"{'met' if ref / ours >= 100 else 'MISSED'}")
    if "3" in figures:
        f = figures["3"]
        ratio = float(f["ours_s"]) / float(f["bound_s"])
        out.append(f"Workload 3 within 3× of the memory-bandwidth bound: {ratio:.1f}× (median wall time) — "
                   f"{'met' if ratio <= 3 else 'MISSED'}")
        per_thread = float(f["cpu_s"]) / int(f["threads"]) / float(f["bound_s"])
        out.append(f"Workload 3 within 3× of the bound, from the CPU time of all threads / {f['threads']} "
                   f"(the wall time with the cores free of other processes): {per_thread:.1f}× — "
                   f"{'met' if per_thread <= 3 else 'MISSED'}")
        peak, size = int(f["traced_peak"]), int(f["input_bytes"])
        rss = f.get("rss_growth")
        worst = max(peak, int(rss)) if rss is not None else peak
        out.append(f"Workload 3 extra peak memory under the input size: {worst / 1e6:.1f} MB vs "
                   f"{size / 1e6:.0f} MB — {'met' if worst < size else 'MISSED'}")
    return out


def _startup_targets(start: dict[str, float]) -> list[str]:
    """Issue 20's start-up target (the 21 MB first call), with numba's own floor and the first call that
    loads the kernels beside it."""
    first = next((v for k, v in start.items() if k.startswith("first call, 64 images")), None)
    loads = next((v for k, v in start.items() if k.startswith("first call, 256 images")), None)
    floor = [v for k, v in start.items() if k.startswith("floor:")]
    if first is None or loads is None or len(floor) != 2:
        return []
    return [f"first call (64 images 128×128, N=16, M=4) with a warm numba cache under 250 ms: "
            f"{first * 1e3:.0f} ms — {'met' if first < 0.25 else 'MISSED'} (numpy: the kernels are not "
            f"loaded yet; a first call large enough to load them, 256 images: {loads * 1e3:.0f} ms; numba's "
            f"floor here, `import numba` + one trivial cached kernel: {sum(floor) * 1e3:.0f} ms)"]


def run(argv: list[str] | None = None) -> dict[str, object]:
    """Run the benchmark; returns the tables and figures (used by the smoke test)."""
    args = _parse(argv)
    quick = args.quick
    t_start = time.perf_counter()
    command = "python -m benchmarks" + ("" if argv is None else " " + shlex.join(argv))
    if argv is None:
        command = "python -m benchmarks " + shlex.join(sys.argv[1:])
    info = machine_info()
    print("ambiseg-metrics benchmarks —", command.strip())
    for k, v in info.items():
        print(f"  {k}: {v}")

    start = {} if args.no_startup else startup_times(cold=not quick)
    print("start-up (fresh processes):")
    for k, v in start.items():
        print(f"  {k}: {v * 1e3:.0f} ms")
    bw = copy_bandwidth(nbytes=(16 << 20) if quick else (256 << 20), repeats=3 if quick else 5)
    print(f"memory bandwidth (np.copyto, read+write bytes/s): 1 thread {bw.one_thread / 1e9:.1f} GB/s, "
          f"{bw.n_threads} threads {bw.all_threads / 1e9:.1f} GB/s")

    skip = {s.strip() for s in args.skip_peers.split(",") if s.strip()}
    peers, skipped = available_peers(skip)
    for s in skipped:
        print("peer", s)
    settings = Settings(quick=quick, repeats=args.repeats or (2 if quick else 5),
                        budget_s=args.budget if args.budget is not None else (0.2 if quick else 8.0),
                        peers=tuple(peers), skipped_peers=tuple(skipped),
                        workdir=Path(tempfile.gettempdir()) / f"ambiseg-bench-{os.getpid()}")
    tables: list[Table | ScalingTable] = []
    figures: dict[str, dict[str, object]] = {}
    for key in sorted(set(args.workloads.split(","))):
        t0 = time.perf_counter()
        result, figs = WORKLOADS[key](settings, bw)
        for table in result if isinstance(result, list) else [result]:
            print()
            print(table.to_text())
            tables.append(table)
        figures[key] = figs
        print(f"  (workload {key} took {time.perf_counter() - t0:.0f} s)")
    targets = _targets(figures) + _startup_targets(start)
    if quick:
        targets = [t + " (quick sizes: not the issue's workloads)" for t in targets]
    print()
    for line in targets:
        print("target:", line)
    load_end = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    elapsed = time.perf_counter() - t_start
    print(f"total {elapsed:.0f} s; load average at the end: {load_end}")
    if args.out:
        _write_markdown(Path(args.out), command.strip(), info, start, bw, tables, targets, load_end,
                        elapsed)
        print(f"wrote {args.out}")
    else:
        print("results not written (pass --write to update benchmarks/RESULTS.md)")
    return {"tables": tables, "figures": figures, "targets": targets}


METHODS = """\
## What is compared

- **ambiseg-metrics `evaluate()`**: `evaluate(preds, gts, batch=True)` with every metric of
  `ambiseg_metrics.METRICS` (listed under each workload), end to end from in-memory bool arrays:
  validation, the fused bit-packing + Gram-count kernel, readouts. Numba compilation / cache loading
  is excluded (each workload warms up on one image first) and reported under *Start-up*.
- **memory-bandwidth bound**: the bytes of the masks as stored (1 byte per pixel for bool), read once,
  divided by the best measured copy bandwidth of this machine (large `np.copyto`, one thread and one per
  core; read + written bytes per second, the STREAM convention). No implementation can read its input
  faster; the ratio ours / bound says how close the library is to the hardware.
- **research-code numpy loops** (`benchmarks/reference.py`): what published evaluation code does: for
  every pair of masks `(a & b).sum()` and `(a | b).sum()`, the GED as the V-statistic over all N², N·M and
  M² ordered pairs, Dice per pair for D_max and D_a, unions for S_c, and the HM-IoU by scipy's
  `linear_sum_assignment` on the IoU matrix tiled to lcm(N, M); each metric a separate function.
- **peers** (`benchmarks/peers.py`): MONAI `DiceMetric` + `MeanIoU`, torchmetrics `dice_score` +
  `mean_iou`, medpy `dc` + `jc`, used per pair of masks (MONAI and torchmetrics with all pairs of an image
  in one batched call on torch tensors, with torch's default threads; medpy one call per pair). None of
  them computes the GED or the CI score; the adapters compute IoU and Dice for every pair the metrics
  need and the GED terms, D_max and D_a are read from those matrices. Two empty masks give NaN in
  torchmetrics and in medpy's `dc`; the adapters set those pairs to 1 (the library's convention).
- Slow methods run image by image for a time budget (`--budget`, seconds per method and workload) and
  are extrapolated per image (per pair for the 3D volume); the *timed on* column says on how much. Every
  method's results are compared with ours on exactly what it ran: *max abs diff* is the largest absolute
  difference over the metrics it computes (float32 in the torch peers gives ~1e-8).
"""


def _noise_note(info: dict[str, str], load_end: str) -> list[str]:
    """A paragraph on how busy the machine was (load average vs cores), so the numbers can be judged."""
    try:
        loads = [float(info["load average (1, 5, 15 min) at start"].split()[0]), float(load_end.split()[0])]
        cores = int(info["cores (os.cpu_count)"])
    except (KeyError, ValueError, IndexError):
        return []
    if max(loads) < 0.75 * cores:
        return [f"The machine was quiet during the run (1-minute load average {loads[0]:.1f} at the start, "
                f"{loads[1]:.1f} at the end, on {cores} cores).", ""]
    return ["**Noise.** Other processes shared the machine during this run: 1-minute load average "
            f"{loads[0]:.1f} at the start and {loads[1]:.1f} at the end, on {cores} cores, so a thread often "
            "waited for a core. Wall times are inflated by that wait (most for short parallel calls, whose "
            "threads must all be scheduled), ratios measured in the same run are still comparable, and the "
            "CPU time of all threads, given next to our wall times, shows the work itself; divided by the "
            "number of threads it is what the wall time would be on free cores.", ""]


def _write_markdown(path: Path, command: str, info: dict[str, str], start: dict[str, float], bw,
                    tables: list, targets: list[str], load_end: str, elapsed: float) -> None:
    lines = ["# Benchmark results", "",
             "Written by `python -m benchmarks --write`; rerun it to refresh. Times are wall-clock on the "
             "machine below; ratios are measured in the same run, on the same arrays, with results checked "
             "equal.",
             "", f"Command: `{command}` — total run time {elapsed:.0f} s.", "", "## Machine", "",
             "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in info.items()]
    lines.append(f"| load average at the end | {load_end} |")
    lines += ["", f"Memory bandwidth (large `np.copyto`, bytes read + written per second): one thread "
              f"{bw.one_thread / 1e9:.1f} GB/s, {bw.n_threads} threads {bw.all_threads / 1e9:.1f} GB/s; "
              f"the bound uses the best, {bw.best / 1e9:.1f} GB/s.", ""]
    if start:
        lines += ["Start-up (fresh processes, not included in the tables):", ""]
        lines += [f"- {k}: {v * 1e3:.0f} ms" for k, v in start.items()]
        lines.append("")
    lines += ["## Targets", ""] + [f"- {t}" for t in targets] + [""]
    lines += _noise_note(info, load_end)
    lines += [METHODS, "## Workloads", ""]
    for table in tables:
        lines += [table.to_markdown(), ""]
    atomic_write(path, "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    run(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
