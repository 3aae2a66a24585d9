"""Timing helpers and the result table (rendered as text for stdout and as Markdown)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Row", "Table", "median_time", "median_cpu_time", "per_image_timed", "max_abs_diff"]


def median_time(fn: Callable[[], object], repeats: int) -> tuple[float, list[float], object]:
    """Median wall time of ``repeats`` calls of ``fn`` (after the caller's warm-up); also all times and
    the last result."""
    times, result = [], None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, result


def median_cpu_time(fn: Callable[[], object], repeats: int) -> float:
    """Median CPU time of the process (all threads) over ``repeats`` calls of ``fn``.

    On a busy machine the wall time includes waiting for a core; the CPU time does not (it does include
    threads spinning at barriers, so it is an upper bound of the work).
    """
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return statistics.median(times)


def per_image_timed(
    fn: Callable[[np.ndarray, np.ndarray], Mapping[str, np.ndarray]],
    preds: np.ndarray,
    gts: np.ndarray,
    *,
    budget_s: float,
    max_images: int,
) -> tuple[float, int, dict[str, np.ndarray]]:
    """Run a slow per-image method image by image until ``budget_s`` is spent (at least one image).

    Returns
    -------
    seconds_per_image : float
        Mean wall time per image over the images run.
    n_images : int
        How many of the first images were run.
    values : dict
        The method's metrics of those images.
    """
    parts: list[Mapping[str, np.ndarray]] = []
    spent = 0.0
    n = 0
    while n < min(max_images, len(preds)) and (n == 0 or spent < budget_s):
        t0 = time.perf_counter()
        parts.append(fn(preds[n : n + 1], gts[n : n + 1]))
        spent += time.perf_counter() - t0
        n += 1
    values = {k: np.concatenate([np.atleast_1d(p[k]) for p in parts]) for k in parts[0]}
    return spent / n, n, values


def max_abs_diff(values: Mapping[str, np.ndarray], ours: Mapping[str, np.ndarray]) -> tuple[float, int]:
    """Largest |value - ours| over the metrics both have (compared on the images ``values`` has).

    Returns the difference and the number of metrics compared.
    """
    shared = [k for k in values if k in ours]
    if not shared:
        return float("nan"), 0
    worst = 0.0
    for k in shared:
        v = np.asarray(values[k], dtype=np.float64)
        o = np.asarray(ours[k], dtype=np.float64).reshape(-1)[: v.size]
        worst = max(worst, float(np.max(np.abs(v.reshape(-1) - o))))
    return worst, len(shared)


@dataclass
class Row:
    """One method's line of a workload table.

    ``seconds`` is the wall time for the whole workload (extrapolated from ``timed_on`` where the method
    was run on part of it); ``diff`` is the max abs difference vs ours (None: not comparable).
    """

    method: str
    seconds: float
    timed_on: str
    diff: float | None = None
    n_metrics: int = 0
    note: str = ""


@dataclass
class Table:
    """A workload's results: rows, the reference row name for ratios, and notes printed under it."""

    title: str
    description: str
    ours: str
    images: int
    pixels_per_image: int
    masks_per_image: int
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unit: str = "images/s"

    def _ours_seconds(self) -> float:
        return next(r.seconds for r in self.rows if r.method == self.ours)

    def _cells(self, row: Row) -> list[str]:
        ours = self._ours_seconds()
        if self.unit == "images/s":
            throughput = f"{self.images / row.seconds:,.0f}" if row.seconds > 0 else "-"
        else:
            vox = self.images * self.masks_per_image * self.pixels_per_image
            throughput = f"{vox / row.seconds / 1e9:,.2f}" if row.seconds > 0 else "-"
        ratio = row.seconds / ours if ours > 0 else float("nan")
        if row.diff is None:
            diff = "-"
        else:
            diff = f"{row.diff:.1e} ({row.n_metrics} metrics)"
        return [row.method + (f" [{row.note}]" if row.note else ""), row.timed_on, _fmt_s(row.seconds),
                throughput, f"{ratio:,.1f}×" if ratio >= 10 else f"{ratio:,.2f}×", diff]

    def header(self) -> list[str]:
        unit = "images/s" if self.unit == "images/s" else "Gvoxel/s (mask voxels)"
        return ["method", "timed on", "time (whole workload)", unit, "time / ours", "max abs diff vs ours"]

    def to_text(self) -> str:
        head = self.header()
        cells = [self._cells(r) for r in self.rows]
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
        lines = [f"== {self.title} ==", self.description]
        lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
        lines += [f"  * {n}" for n in self.notes]
        return "\n".join(lines)

    def to_markdown(self) -> str:
        head = self.header()
        lines = [f"### {self.title}", "", self.description, ""]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
        lines += ["| " + " | ".join(c.replace("|", "/") for c in self._cells(r)) + " |" for r in self.rows]
        lines.append("")
        lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines)


def _fmt_s(seconds: float) -> str:
    if seconds >= 100:
        return f"{seconds:,.0f} s"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} µs"
