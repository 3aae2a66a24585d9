"""The four workloads of the benchmark (issue 4): LIDC scale, many samples, 3D volumes, scaling.

Every comparison runs in one process on the same arrays: ambiseg-metrics (``evaluate`` with all
metrics, end to end from in-memory bool arrays), the research-code-style reference, the installed peers
and the memory-bandwidth bound. Slow methods run image by image for a time budget and are extrapolated
per image (the table says on how many images they were timed); their results are compared with ours on
exactly those images.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import ambiseg_metrics as am

from .data import MaskSet, make_masks
from .harness import Row, Table, max_abs_diff, median_cpu_time, median_time, per_image_timed
from .machine import Bandwidth, PopcountRate, popcount_rate, subprocess_peak_rss, traced_peak
from .peers import PairScorer, Peer, pairs_needed, peer_batch
from .reference import research_batch

__all__ = ["Settings", "ScalingTable", "lidc_scale", "many_samples", "volumes_3d", "scaling",
           "ours_breakdown"]

OURS = "ambiseg-metrics evaluate() (all metrics)"
BOUND = "memory-bandwidth bound (read the masks once)"
REFERENCE = "research-code numpy loops ((a & b).sum() per pair)"
POPCOUNT = "popcount bound (one popcount per word pair of the Gram)"

_POPCOUNT: dict[bool, PopcountRate] = {}


def _popcount(quick: bool) -> PopcountRate:
    """This CPU's popcount rate, measured once per run (:func:`benchmarks.machine.popcount_rate`)."""
    if quick not in _POPCOUNT:
        _POPCOUNT[quick] = popcount_rate(reps=500 if quick else 20_000, repeats=2 if quick else 5)
    return _POPCOUNT[quick]


@dataclass(frozen=True)
class Settings:
    """Run-wide options: sizes shrink with ``quick``; ``budget_s`` caps each slow method per workload."""

    quick: bool = False
    repeats: int = 5
    budget_s: float = 8.0
    peers: tuple[tuple[Peer, PairScorer], ...] = ()
    skipped_peers: tuple[str, ...] = ()
    workdir: Path = Path("/tmp")


def ours_breakdown(preds: np.ndarray, gts: np.ndarray, repeats: int,
                   clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Seconds (median of ``repeats``) of the stages of ``evaluate(preds, gts, batch=True)``, by
    ``clock`` (wall time by default; ``time.process_time`` gives the CPU time of all threads).

    The library's stages: validation and grouping, the fused pack + count kernel, the readouts of all
    metrics. For the profile, the kernel's two halves are also timed on their own through the unfused
    path (bit-packing into an array, then the Gram counts of that array).
    """
    from ambiseg_metrics.core import _kernels
    from ambiseg_metrics.core._validate import prepare_inputs
    from ambiseg_metrics.core.counts import PairCounts, count_group, pack_into

    stages: dict[str, list[float]] = {"validation + grouping": [], "pack + count (fused kernel)": [],
                                      "readouts (all metrics)": [], "packing alone": [],
                                      "Gram counts alone": []}
    for _ in range(max(1, repeats)):
        t0 = clock()
        n_images, groups = prepare_inputs(preds, gts, True)
        t1 = clock()
        blocks = tuple(count_group(g, 0.5, True) for g in groups)
        t2 = clock()
        am.evaluate_counts(PairCounts(blocks, n_images, True))
        t3 = clock()
        packed_all = []
        for g in groups:
            k = g.n_pred + g.n_gt
            packed = np.empty((len(g.index), k, (g.n_pixels + 63) // 64), dtype=np.uint64)
            packed[...] = 0  # fault the pages in outside the timing, as the fused kernel needs none
            t4 = clock()
            pack_into("preds", g.preds, packed, 0, 0.5, g.index, True)
            pack_into("gts", g.gts, packed, g.n_pred, 0.5, g.index, True)
            packed_all.append((clock() - t4, packed, g.n_pred))
        t5 = clock()
        for _, packed, n_pred in packed_all:
            _kernels.gram_counts(packed, n_pred)
        t6 = clock()
        for name, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2, sum(p[0] for p in packed_all), t6 - t5),
                            strict=True):
            stages[name].append(dt)
    return {name: float(statistics.median(v)) for name, v in stages.items()}


def _threads() -> int:
    import numba

    return int(numba.get_num_threads())


def _breakdown_note(parts: dict[str, float]) -> str:
    main = ["validation + grouping", "pack + count (fused kernel)", "readouts (all metrics)"]
    total = sum(parts[k] for k in main)
    return ("where our time goes (stages timed separately, medians): " + ", ".join(
        f"{name} {parts[name] * 1e3:.1f} ms ({100 * parts[name] / total:.0f}%)" for name in main)
        + f"; the kernel's halves timed alone (unfused path): packing {parts['packing alone'] * 1e3:.1f} ms,"
        f" Gram counts {parts['Gram counts alone'] * 1e3:.1f} ms")


def _compare(
    title: str, description: str, data: MaskSet, settings: Settings, bw: Bandwidth, *, unit: str,
    max_slow_images: int, peer_pairs_only: bool = False,
) -> tuple[Table, dict[str, object]]:
    """Ours, the bound, the reference and the peers on one workload; returns the table and raw figures."""
    preds, gts = data.preds, data.gts
    B, N, M, P = data.n_images, preds.shape[1], gts.shape[1], data.n_pixels
    table = Table(title, description, OURS, B, P, N + M, unit=unit)

    am.evaluate(preds, gts, batch=True)  # warm-up: the kernels this size uses are compiled/loaded
    t_ours, times, ours = median_time(lambda: am.evaluate(preds, gts, batch=True), settings.repeats)
    table.rows.append(Row(OURS, t_ours, f"all {B} images, median of {len(times)}", 0.0, len(ours)))
    bound = bw.bound_seconds(data.nbytes)
    table.rows.append(Row(BOUND, bound, f"{data.nbytes / 1e6:,.0f} MB / {bw.best / 1e9:.1f} GB/s"))
    pc = _popcount(settings.quick)
    word_pairs = B * (N + M) * (N + M + 1) / 2 * ((P + 63) // 64)
    pc_bound = pc.bound_seconds(word_pairs)
    table.rows.append(Row(POPCOUNT, pc_bound, f"{word_pairs / 1e9:,.2f} G word pairs / {pc.best / 1e9:.1f} G "
                          "popcounts/s"))
    parts = ours_breakdown(preds, gts, settings.repeats)

    spi, n_ref, ref_vals = per_image_timed(research_batch, preds, gts, budget_s=settings.budget_s,
                                           max_images=max_slow_images)
    diff, n_metrics = max_abs_diff(ref_vals, ours)
    table.rows.append(Row(REFERENCE, spi * B, f"{n_ref} of {B} images", diff, n_metrics))

    for peer, scorer in settings.peers:
        if peer_pairs_only:
            table.rows.append(_peer_on_pairs(peer, scorer, data, settings.budget_s))
            continue
        scorer(np.concatenate([preds[0], gts[0]]), *(x[:2] for x in pairs_needed(N, M)))  # warm-up
        spi, n_peer, vals = per_image_timed(lambda p, g, s=scorer: peer_batch(s, p, g), preds, gts,
                                            budget_s=settings.budget_s, max_images=max_slow_images)
        diff, n_metrics = max_abs_diff(vals, ours)
        table.rows.append(Row(peer.name, spi * B, f"{n_peer} of {B} images", diff, n_metrics))

    cpu = median_cpu_time(lambda: am.evaluate(preds, gts, batch=True), settings.repeats)
    threads = _threads()
    table.notes.append(f"ours: {t_ours * 1e3:.1f} ms median wall (all runs: "
                       + ", ".join(f"{t * 1e3:.0f}" for t in times) + " ms) = "
                       f"{t_ours / bound:.1f}× the memory-bandwidth bound; CPU time of all threads "
                       f"{cpu * 1e3:.1f} ms median, i.e. {cpu / threads * 1e3:.1f} ms per thread "
                       f"({cpu / threads / bound:.1f}× the bound) if the {threads} threads had the cores "
                       "to themselves")
    table.notes.append(_breakdown_note(parts))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    stages = sum(parts[k] for k in ("validation + grouping", "pack + count (fused kernel)",
                                    "readouts (all metrics)"))
    table.notes.append(
        f"ratios of this run (load average {load}): evaluate() / bandwidth bound {t_ours / bound:.1f}×; Gram "
        f"counts alone / popcount bound {parts['Gram counts alone'] / pc_bound:.1f}× (popcount rate, 4 KiB "
        f"in L1: one thread {pc.one_thread / 1e9:.1f} G/s, {pc.n_threads} threads {pc.all_threads / 1e9:.1f} "
        f"G/s); readouts {100 * parts['readouts (all metrics)'] / stages:.0f}% of the stages' time")
    table.notes.append("slow methods are run image by image for about "
                       f"{settings.budget_s:g} s each and extrapolated per image to all {B} images; "
                       "max abs diff is over the metrics each method computes, on the images it ran")
    table.notes += [f"peer {s}" for s in settings.skipped_peers]
    figures = {"ours_s": t_ours, "bound_s": bound, "breakdown": parts, "cpu_s": cpu, "threads": threads,
               "popcount_bound_s": pc_bound, "load": load,
               "rows": {r.method: r.seconds for r in table.rows}}
    return table, figures


def _peer_on_pairs(peer: Peer, scorer: PairScorer, data: MaskSet, budget_s: float) -> Row:
    """A peer on one huge image: time a subset of its pairs, extrapolate, compare the pair scores."""
    n, m = data.preds.shape[1], data.gts.shape[1]
    masks = np.concatenate([data.preds[0], data.gts[0]])
    i, j = pairs_needed(n, m)
    block = am.pair_counts(data.preds[0], data.gts[0]).blocks[0]
    iou_ours = am.iou_from_counts(block.inter[0])
    dice_ours = am.dice_from_counts(block.inter[0])
    scorer(masks[:, :4], i[:1], j[:1])  # warm-up on a sliver
    spent, done, worst = 0.0, 0, 0.0
    while done < len(i) and (done == 0 or spent < budget_s):
        sl = slice(done, done + 1)
        t0 = time.perf_counter()
        iou, dice = scorer(masks, i[sl], j[sl])
        spent += time.perf_counter() - t0
        worst = max(worst, float(np.max(np.abs(iou - iou_ours[i[sl], j[sl]]))),
                    float(np.max(np.abs(dice - dice_ours[i[sl], j[sl]]))))
        done += 1
    row = Row(peer.name, spent / done * len(i), f"{done} of {len(i)} pairs", worst, 2)
    row.note = "diff: pair IoU+Dice"
    return row


# ------------------------------------------------------------------------------------------ workloads
def lidc_scale(settings: Settings, bw: Bandwidth) -> tuple[Table, dict[str, object]]:
    """Workload 1: 1992 test images of 128×128, N=16 samples, M=4 annotators, many empty annotations."""
    b, hw = (24, 32) if settings.quick else (1992, 128)
    data = make_masks(b, 16, 4, (hw, hw), seed=1, radius=(3.0, 16.0) if not settings.quick else (2, 6),
                      p_empty_gt=0.3, p_empty_pred=0.15)
    empty = float(np.mean(~data.gts.reshape(b, 4, -1).any(axis=2)))
    desc = (f"B={b} images of {hw}×{hw}, N=16, M=4, bool masks; {100 * empty:.0f}% of annotations empty. "
            f"All {len(am.METRICS)} metrics: {', '.join(am.METRICS)}.")
    return _compare("Workload 1: LIDC scale", desc, data, settings, bw, unit="images/s",
                    max_slow_images=50 if not settings.quick else 4)


def many_samples(settings: Settings, bw: Bandwidth) -> tuple[Table, dict[str, object]]:
    """Workload 2: 200 images of 128×128 with N=100 samples (PHiSeg's evaluation), M=4."""
    b, hw, n = (8, 32, 20) if settings.quick else (200, 128, 100)
    data = make_masks(b, n, 4, (hw, hw), seed=2, radius=(3.0, 16.0) if not settings.quick else (2, 6))
    desc = f"B={b} images of {hw}×{hw}, N={n}, M=4, bool masks; all metrics."
    return _compare("Workload 2: many samples", desc, data, settings, bw, unit="images/s",
                    max_slow_images=20 if not settings.quick else 2)


def volumes_3d(settings: Settings, bw: Bandwidth) -> tuple[Table, dict[str, object]]:
    """Workload 3: one MS-lesion-sized volume 181×217×181 with N=16 samples and M=4 annotations."""
    shape = (12, 21, 19) if settings.quick else (181, 217, 181)
    data = make_masks(1, 16, 4, shape, seed=3, n_blobs=12,
                      radius=(2.0, 9.0) if not settings.quick else (1.0, 3.0), p_empty_gt=0.0,
                      p_empty_pred=0.0)
    desc = (f"1 volume of {'×'.join(map(str, shape))} ({data.n_pixels:,} voxels), 20 masks (N=16 "
            f"samples, M=4 annotations), bool, 12 lesions each; {data.nbytes / 1e6:,.0f} MB of masks.")
    table, figures = _compare("Workload 3: 3D volumes", desc, data, settings, bw, unit="voxels/s",
                              max_slow_images=1, peer_pairs_only=True)
    peak = traced_peak(lambda: am.evaluate(data.preds, data.gts, batch=True))
    figures["traced_peak"] = peak
    rss = subprocess_peak_rss(data.preds, data.gts, settings.workdir)
    figures["input_bytes"] = data.nbytes
    note = (f"extra peak memory of evaluate(): {peak / 1e6:.1f} MB of numpy/Python allocations "
            f"(tracemalloc) = {100 * peak / data.nbytes:.1f}% of the {data.nbytes / 1e6:.0f} MB input")
    if rss is not None:
        figures["rss_growth"] = rss[1] - rss[0]
        note += (f"; growth of peak RSS in a fresh process: {(rss[1] - rss[0]) / 1e6:.1f} MB "
                 f"(peak {rss[1] / 1e6:.0f} MB with the input loaded)")
    table.notes.insert(0, note)
    table.notes.append("peers are timed on the first pairs of the volume (each peer call: one pair of "
                       "masks) and extrapolated to all pairs; the diff compares their pair IoU/Dice with "
                       "ours")
    return table, figures


@dataclass
class ScalingTable:
    """Workload 4's tables: plain rows of strings with a header, and notes."""

    title: str
    description: str
    header: list[str]
    rows: list[list[str]]
    notes: list[str]

    def to_text(self) -> str:
        widths = [max(len(h), *(len(r[i]) for r in self.rows)) for i, h in enumerate(self.header)]
        lines = [f"== {self.title} ==", self.description,
                 "  ".join(h.rjust(w) for h, w in zip(self.header, widths, strict=True)),
                 "  ".join("-" * w for w in widths)]
        lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in self.rows]
        lines += [f"  * {n}" for n in self.notes]
        return "\n".join(lines)

    def to_markdown(self) -> str:
        lines = [f"### {self.title}", "", self.description, "",
                 "| " + " | ".join(self.header) + " |", "|" + "|".join(["---:"] * len(self.header)) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        lines.append("")
        lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines)


def _scaling_point(b: int, n: int, m: int, hw: int, repeats: int) -> dict[str, float]:
    data = make_masks(b, n, m, (hw, hw), seed=4 + n + hw, radius=(hw / 40, hw / 8))
    am.evaluate(data.preds, data.gts, batch=True)  # warm-up: load the kernels this size uses
    parts = ours_breakdown(data.preds, data.gts, repeats, clock=time.process_time)
    total = median_cpu_time(lambda: am.evaluate(data.preds, data.gts, batch=True), repeats)
    k, p = n + m, hw * hw
    return {"B": b, "N": n, "K": k, "P": p, "total": total, "pack": parts["packing alone"],
            "gram": parts["Gram counts alone"], "fused": parts["pack + count (fused kernel)"],
            "read": parts["readouts (all metrics)"],
            "kp": b * k * p, "k2p": b * k * (k + 1) / 2 * p / 64}


def scaling(settings: Settings, bw: Bandwidth) -> tuple[list[ScalingTable], dict[str, object]]:
    """Workload 4: time vs N (4…128) and vs pixels (64²…512²); packing ∝ K·P, Gram ∝ K²·P/64."""
    ns = [4, 8] if settings.quick else [4, 8, 16, 32, 64, 128]
    sizes = [32, 64] if settings.quick else [64, 128, 256, 512]
    b_n, hw_n = (4, 32) if settings.quick else (200, 128)
    b_p = 4 if settings.quick else 64
    reps = settings.repeats
    by_n = [_scaling_point(b_n, n, 4, hw_n, reps) for n in ns]
    by_p = [_scaling_point(b_p, 16, 4, hw, reps) for hw in sizes]
    points = by_n + by_p
    # Least-squares fit of the two stage costs: pack = a·(B·K·P), Gram = c·(B·K(K+1)/2·P/64).
    a = float(np.dot([q["pack"] for q in points], [q["kp"] for q in points])
              / np.dot([q["kp"] for q in points], [q["kp"] for q in points]))
    c = float(np.dot([q["gram"] for q in points], [q["k2p"] for q in points])
              / np.dot([q["k2p"] for q in points], [q["k2p"] for q in points]))
    header = ["B", "N", "K", "pixels", "evaluate()", "fused kernel", "packing alone", "Gram alone",
              "readouts",
              "pack ns / (B·K·P)", "Gram ns / (B·K²P/128)", "model a·BKP + c·BK²P/128"]

    def row(q: dict[str, float]) -> list[str]:
        model = a * q["kp"] + c * q["k2p"]
        return [str(int(q["B"])), str(int(q["N"])), str(int(q["K"])), f"{int(q['P']):,}",
                f"{q['total'] * 1e3:.1f} ms", f"{q['fused'] * 1e3:.1f} ms", f"{q['pack'] * 1e3:.1f} ms",
                f"{q['gram'] * 1e3:.1f} ms",
                f"{q['read'] * 1e3:.1f} ms", f"{q['pack'] / q['kp'] * 1e9:.3f}",
                f"{q['gram'] / q['k2p'] * 1e9:.3f}", f"{(q['pack'] + q['gram']) * 1e3:.1f} / "
                f"{model * 1e3:.1f} ms"]

    notes = ["packing and Gram are timed alone through the unfused path (pack into an array, then count "
             "it) to show each term; evaluate() runs them fused in one pass",
             f"fitted: packing a = {a * 1e9:.3f} ns per mask pixel (B·K·P), Gram c = {c * 1e9:.3f} ns "
             "per word pair (B·K(K+1)/2·P/64); the last column is measured pack+Gram / the model",
             "the per-unit columns settle to constants as the work grows, i.e. the costs grow as stated: "
             "packing linearly in K·P (memory-bound), the Gram counts as K²·P/64 (dominant from K ≈ 64 "
             "on); at the small end fixed per-call costs (starting the thread team, Python) dominate",
             "readouts grow as B·K² (the K×K matrices) plus a per-image Python cost of some metrics"]
    t_n = ScalingTable("Workload 4a: scaling with the number of samples N", f"B={b_n} images of "
                       f"{hw_n}×{hw_n}, M=4, N varies. CPU time of all threads (medians of {reps}): it "
                       "measures the work even when other processes share the cores.", header,
                       [row(q) for q in by_n], notes)
    t_p = ScalingTable("Workload 4b: scaling with the number of pixels", f"B={b_p} images, N=16, M=4, "
                       f"image side varies; CPU time of all threads, medians of {reps}.", header,
                       [row(q) for q in by_p], [])
    return [t_n, t_p], {"a": a, "c": c, "points": points}
