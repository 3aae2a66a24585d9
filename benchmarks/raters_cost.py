"""Cost of the rater-vote family on benchmark workload 1 (1992 images of 128×128, N=16, M=4, bool).

Times ``evaluate(preds, gts, batch=True)`` with the default metrics and with the default metrics plus
every rater-vote metric (``metrics=[*METRICS, "raters"]``), same process, same arrays, interleaved,
median of the repeats, as wall time and as CPU time (``time.process_time``, all threads: on a loaded
machine the wall time mostly measures waiting); prints the stages of the rater family.
Run: python -m benchmarks.raters_cost [--quick] [--repeats R]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

import ambiseg_metrics as am

from .data import make_masks


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    b, hw = (24, 32) if args.quick else (1992, 128)
    data = make_masks(b, 16, 4, (hw, hw), seed=1, radius=(3.0, 16.0), p_empty_gt=0.3, p_empty_pred=0.15)
    with_raters = [*am.METRICS, "raters"]
    am.evaluate(data.preds[:2], data.gts[:2], batch=True, metrics=with_raters)  # compile
    base, full, base_cpu, full_cpu = [], [], [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        am.evaluate(data.preds, data.gts, batch=True)
        t1, c1 = time.perf_counter(), time.process_time()
        am.evaluate(data.preds, data.gts, batch=True, metrics=with_raters)
        t2, c2 = time.perf_counter(), time.process_time()
        base.append(t1 - t0)
        full.append(t2 - t1)
        base_cpu.append(c1 - c0)
        full_cpu.append(c2 - c1)
    # stages of the rater family alone
    from ambiseg_metrics.metrics.raters import rater_metrics_from_counts

    t0 = time.process_time()
    am.pair_counts(data.preds, data.gts, batch=True)
    t1 = time.process_time()
    _, votes = am.pair_and_vote_counts(data.preds, data.gts, batch=True)
    t2 = time.process_time()
    rater_metrics_from_counts(votes)
    t3 = time.process_time()
    tb, tf = statistics.median(base), statistics.median(full)
    cb, cf = statistics.median(base_cpu), statistics.median(full_cpu)
    threads = os.environ.get("NUMBA_NUM_THREADS", "default")
    print(f"workload 1: B={b}, {hw}x{hw}, N=16, M=4; threads={threads}; load: {os.getloadavg()}")
    print(f"evaluate(default metrics):        wall {tb:.3f} s, CPU {cb:.3f} s (medians of {args.repeats})")
    print(f"evaluate(default + rater family): wall {tf:.3f} s, CPU {cf:.3f} s  -> "
          f"+{100 * (tf - tb) / tb:.1f}% wall, +{100 * (cf - cb) / cb:.1f}% CPU")
    print(f"  CPU of the pass: {t1 - t0:.3f} s without, {t2 - t1:.3f} s with the vote tables; "
          f"rater readouts (compiled kernel): {t3 - t2:.3f} s")
    a, g = data.preds[:5], data.gts[:5]
    via_evaluate = am.evaluate(a, g, batch=True, metrics=["qubiq"])["qubiq"]
    same = np.array_equal(via_evaluate, am.qubiq_score(a, g, batch=True))
    print(f"  evaluate()'s qubiq equals qubiq_score(): {same}")


if __name__ == "__main__":
    main()
