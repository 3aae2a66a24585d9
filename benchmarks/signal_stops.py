"""How ``ambiseg-eval --scheduler local:2`` (or ``--runner "--jobs 2"``) stops on real signals sent at many
moments of a run.

For each signal (``--signals``), each target (``--to``: ``pid``, the command's process; ``group``, its whole
process group, as a terminal's Ctrl-C is) and each delay after the start (``--delays``), this starts the
command on a tree of ``--cases`` PNG cases in its own session, sends the signal, and records the exit code,
the seconds from the signal to the exit, whether its standard error holds a ``Traceback``, and which of the
processes seen under it are still alive a second later (those are then killed). The rows and a summary per
signal and target are printed; the standard error of every run with a traceback is kept (``--keep``).

Run it in the foreground: a shell starts a background job with SIGINT ignored, and the command keeps a
signal its parent ignores (this refuses to run then).

Example: ``python -m benchmarks.signal_stops --start-method spawn`` (64 runs, about 4 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .cli_runner import write_tree


def _delays(spec: str) -> list[float]:
    start, stop, step = (float(x) for x in spec.split(":"))
    n = int(round((stop - start) / step)) + 1
    return [round(start + i * step, 3) for i in range(n)]


def one_run(tree: Path, signum: int, to: str, delay: float, method: str,
            runner: tuple[str, ...] = ("--scheduler", "local:2")) -> dict[str, object]:
    """Start the command, send ``signum`` after ``delay`` seconds, and describe how it ended."""
    import psutil

    env = dict(os.environ, AMBISEG_START_METHOD=method)
    with tempfile.TemporaryDirectory() as out:
        argv = [sys.executable, "-m", "ambiseg_metrics", str(tree / "preds"), str(tree / "gts"),
                "--out", str(Path(out) / "r.csv"), *runner, "--no-progress"]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                start_new_session=True)
        seen: set[int] = set()
        t0 = time.monotonic()
        while time.monotonic() - t0 < delay:
            try:
                seen |= {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
            except psutil.NoSuchProcess:
                break
            time.sleep(0.02)
        sent = time.monotonic()
        try:
            os.killpg(proc.pid, signum) if to == "group" else os.kill(proc.pid, signum)
        except ProcessLookupError:
            pass
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        took = time.monotonic() - sent
        time.sleep(1.0)
        left = []
        for pid in seen:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    left.append(pid)
                    os.kill(pid, signal.SIGKILL)
            except (psutil.NoSuchProcess, ProcessLookupError):
                pass
        wrote = (Path(out) / "r.csv").exists()
    return {"signal": signal.Signals(signum).name, "to": to, "delay": delay, "rc": proc.returncode,
            "seconds": took, "traceback": "Traceback" in err, "left": left, "children": len(seen),
            "wrote": wrote, "stderr": err}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.signal_stops",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--start-method", default="spawn", choices=["fork", "spawn"])
    ap.add_argument("--signals", default="SIGINT,SIGTERM")
    ap.add_argument("--to", default="pid,group")
    ap.add_argument("--delays", default="0.3:2.55:0.15",
                    help="start:stop:step in seconds (default: 16 delays)")
    ap.add_argument("--runner", default="--scheduler local:2",
                    help="how the command runs the cases (default: --scheduler local:2; e.g. --jobs 2)")
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--tree", default=None, help="existing tree with preds/ and gts/ (default: a new one)")
    ap.add_argument("--keep", default=None, help="folder for the standard error of runs with a traceback")
    args = ap.parse_args(argv)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN and "SIGINT" in args.signals:
        ap.error("SIGINT is ignored in this process (a background job?): the command would ignore it too")
    with tempfile.TemporaryDirectory() as scratch:
        tree = Path(args.tree) if args.tree else Path(scratch) / "tree"
        if not args.tree:
            write_tree(tree, args.cases, fmt="png")
        rows = []
        for name in args.signals.split(","):
            for to in args.to.split(","):
                for delay in _delays(args.delays):
                    row = one_run(tree, getattr(signal, name), to, delay, args.start_method,
                                  tuple(args.runner.split()))
                    rows.append(row)
                    print(f"{name} to {to} at {delay:.2f} s: exit {row['rc']} after {row['seconds']:.2f} s, "
                          f"{row['children']} processes seen, left {row['left']}, "
                          f"traceback {row['traceback']}", flush=True)
                    if row["traceback"] and args.keep:
                        Path(args.keep).mkdir(parents=True, exist_ok=True)
                        (Path(args.keep) / f"{name}_{to}_{delay:.2f}.txt").write_text(str(row["stderr"]))
    print(f"\n{args.runner}; start method {args.start_method}; {args.cases} cases")
    print("| signal | to | runs | exit codes | max s to exit | tracebacks | runs leaving processes "
          "| output written |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.signals.split(","):
        for to in args.to.split(","):
            group = [r for r in rows if r["signal"] == name and r["to"] == to]
            codes = sorted({int(r["rc"]) for r in group})  # type: ignore[call-overload]
            slowest = max(float(r["seconds"]) for r in group)  # type: ignore[arg-type]
            print(f"| {name} | {to} | {len(group)} | {codes} | {slowest:.2f} | "
                  f"{sum(bool(r['traceback']) for r in group)} | {sum(bool(r['left']) for r in group)} | "
                  f"{sum(bool(r['wrote']) for r in group)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
