"""Summaries of a per-case table and the files ``ambiseg-eval`` writes.

* :func:`summarize`: for every metric the number of cases where it is defined, mean, sample standard
  deviation (``ddof=1``), median and a seeded percentile-bootstrap 95% confidence interval of the mean
  over cases (cases with an undefined value, NaN, are left out of that metric's statistics);
* :func:`csv_text` / :func:`json_text`: the texts of the files, written by
  :mod:`ambiseg_metrics.files.atomic` (so an interrupted run never leaves a truncated file);
* :func:`format_summary`: the plain-text table printed by the CLI.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..summary import bootstrap_ci, nan_summaries
from .cases import CaseTable

__all__ = [
    "MetricSummary",
    "bootstrap_ci",
    "csv_number",
    "csv_text",
    "format_summary",
    "json_number",
    "json_text",
    "summarize",
]


@dataclass(frozen=True)
class MetricSummary:
    """Statistics of one metric over cases (NaN where undefined, e.g. std of a single case)."""

    metric: str
    n: int
    mean: float
    std: float
    median: float
    ci_low: float
    ci_high: float

    def as_dict(self) -> dict[str, object]:
        return {
            "n": self.n, "mean": json_number(self.mean), "std": json_number(self.std),
            "median": json_number(self.median), "ci95": [json_number(self.ci_low), json_number(self.ci_high)],
        }


def summarize(
    table: CaseTable, *, n_boot: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> list[MetricSummary]:
    """Mean, std (ddof=1), median and bootstrap CI of every metric of ``table`` over its cases.

    Each metric uses its own ``numpy.random.default_rng(seed)`` stream, so its interval does not depend
    on which other metrics were computed.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1; got {n_boot!r}")
    summaries = nan_summaries([table.column(name) for name in table.metrics], n_boot=n_boot,
                              confidence=confidence, seed=seed)
    return [MetricSummary(name, s.n, s.mean, s.std, s.median, s.ci_low, s.ci_high)
            for name, s in zip(table.metrics, summaries, strict=True)]


# ------------------------------------------------------------------------------------------------ files
def json_number(v: object) -> object:
    """A value as strict JSON takes it: NaN -> None, numpy scalars -> Python numbers, others unchanged."""
    if isinstance(v, (float, np.floating)):
        return None if math.isnan(v) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    return v


def csv_number(v: object) -> str:
    """The CSV text of a cell: floats as ``repr`` (round-trips exactly; NaN -> ``nan``), others as ``str``."""
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    return str(v)


def csv_text(table: CaseTable) -> str:
    """The per-case table as CSV text: a header, then one row per case with every column."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow([csv_number(row[c]) for c in table.columns])
    return buf.getvalue()


def json_text(
    table: CaseTable, summary: Sequence[MetricSummary], meta: Mapping[str, object] | None = None
) -> str:
    """The summary (and the per-case rows) as JSON text; NaN is written as ``null``."""
    doc = {
        **(dict(meta) if meta else {}),
        "n_cases": len(table),
        "metrics": list(table.metrics),
        "summary": {s.metric: s.as_dict() for s in summary},
        "notes": list(table.notes),
        "cases": [{k: json_number(v) for k, v in row.items()} for row in table.rows],
    }
    return json.dumps(doc, indent=2, allow_nan=False) + "\n"


# ------------------------------------------------------------------------------------------------ printing
def _fmt(v: float, digits: int) -> str:
    return "—" if math.isnan(v) else f"{v:.{digits}f}"


def format_summary(summary: Sequence[MetricSummary], *, digits: int = 4, confidence: float = 0.95) -> str:
    """A plain-text table: metric, n, mean, std, median, bootstrap CI."""
    ci_head = f"{round(confidence * 100):d}% CI (bootstrap)"
    header = ["metric", "n", "mean", "std", "median", ci_head]
    lines = [
        [s.metric, str(s.n), _fmt(s.mean, digits), _fmt(s.std, digits), _fmt(s.median, digits),
         f"[{_fmt(s.ci_low, digits)}, {_fmt(s.ci_high, digits)}]"]
        for s in summary
    ]
    widths = [max(len(r[j]) for r in [header, *lines]) for j in range(len(header))]

    def render(r: list[str]) -> str:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:-1], widths[1:-1], strict=True)]
        return "  ".join([*cells, r[-1]]).rstrip()  # the last column is left-aligned: no padding

    rule = "-" * len(render(header))
    return "\n".join([render(header), rule, *map(render, lines)])
