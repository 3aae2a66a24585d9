"""How many samples are enough: every metric re-scored on subsets of each case's N samples.

For n = 1, 2, 4, ... (powers of two below N, then N itself) :func:`sample_curve` scores every case with

* the **first n** samples (what a user who draws only n samples gets), and
* ``repeats`` **random subsets** of n samples (without replacement, ``numpy.random.default_rng(seed)``),

against all the case's annotations, and reports per metric and n: the mean over cases of the first-n
value, the mean over cases and subsets of the random-subset values (the estimator's expectation at n;
its drift with n is the bias), the mean over cases of the standard deviation across subsets (how much
one case's value depends on which n samples were drawn), and the standard deviation over subsets of the
cohort mean (how much the reported mean does).

The GED's within-set term uses the V-statistic by default (self-pairs included, distance 0), which is
biased low by a factor (n - 1) / n: at small n the sample-diversity term is underestimated and the GED
overestimated; the ``unbiased`` estimator removes that (see :mod:`ambiseg_metrics.metrics.ged`). Metrics
that need two samples (``needs_pairs``) are undefined (NaN) at n = 1.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..evaluation import FAMILIES, evaluate
from .cases import EvalOptions
from .io import Case, read_source

__all__ = ["GED_BIAS_NOTE", "SampleCurve", "sample_curve", "subset_sizes"]

COLUMNS = ("metric", "n", "n_cases", "first_mean", "random_mean", "within_case_sd", "cohort_mean_sd")

#: The sentence printed beside every curve.
GED_BIAS_NOTE = (
    "GED with the V-statistic estimator (the default) includes self-pairs in the within-set terms, so the "
    "sample-diversity term is biased low by (n-1)/n and the GED high at small n; --estimator unbiased "
    "removes that bias. Metrics needing two samples are undefined at n = 1."
)


def subset_sizes(n_max: int) -> list[int]:
    """1, 2, 4, ... below ``n_max``, then ``n_max``."""
    if n_max < 1:
        raise ValueError(f"n_max must be >= 1; got {n_max}")
    out, n = [], 1
    while n < n_max:
        out.append(n)
        n *= 2
    return [*out, n_max]


@dataclass
class SampleCurve:
    """Rows ``{metric, n, n_cases, first_mean, random_mean, within_case_sd, cohort_mean_sd}``."""

    rows: list[dict[str, object]]
    repeats: int
    seed: int
    notes: list[str] = field(default_factory=list)

    def csv_text(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(COLUMNS)
        for r in self.rows:
            w.writerow([repr(r[c]) if isinstance(r[c], float) else r[c] for c in COLUMNS])
        return buf.getvalue()

    def as_dict(self) -> dict[str, object]:
        def clean(v: object) -> object:
            return None if isinstance(v, float) and math.isnan(v) else v

        return {"repeats": self.repeats, "seed": self.seed, "note": GED_BIAS_NOTE, "notes": list(self.notes),
                "rows": [{c: clean(r[c]) for c in COLUMNS} for r in self.rows]}

    def format(self, digits: int = 4) -> str:
        head = ["metric", "n", "cases", "first n: mean", "random: mean", "sd within case", "sd of mean"]

        def f(v: object) -> str:
            return "—" if isinstance(v, float) and math.isnan(v) else f"{v:.{digits}f}"

        lines = [[str(r["metric"]), str(r["n"]), str(r["n_cases"]), f(r["first_mean"]), f(r["random_mean"]),
                  f(r["within_case_sd"]), f(r["cohort_mean_sd"])] for r in self.rows]
        widths = [max(len(x[j]) for x in [head, *lines]) for j in range(len(head))]

        def render(x: list[str]) -> str:
            cells = enumerate(zip(x, widths, strict=True))
            return "  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in cells)

        rule = "-" * len(render(head))
        return "\n".join([render(head), rule, *map(render, lines), "", "note: " + GED_BIAS_NOTE])


def sample_curve(
    cases: Sequence[Case],
    options: EvalOptions | None = None,
    *,
    repeats: int = 10,
    seed: int = 0,
    sizes: Sequence[int] | None = None,
    progress: bool = False,
) -> SampleCurve:
    """Score every case on subsets of its samples; see the module docstring.

    Parameters
    ----------
    cases : sequence of Case
        As from :func:`~ambiseg_metrics.discover_cases`.
    options : EvalOptions, optional
        Metrics and conventions (default: every metric, library conventions).
    repeats : int, default 10
        Random subsets per case and n.
    seed : int, default 0
        Seed of the subsets.
    sizes : sequence of int, optional
        Subset sizes (default :func:`subset_sizes` of the smallest N over cases).
    """
    options = (options or EvalOptions()).checked()
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1; got {repeats}")
    if not cases:
        raise ValueError("no cases")
    pair_metrics = frozenset().union(*(f.needs_pairs for f in FAMILIES))
    names = list(options.names)
    rng = np.random.default_rng(seed)
    stacks = []
    from tqdm.auto import tqdm

    for case in tqdm(cases, disable=not progress, unit="case", desc="reading", leave=False):
        stacks.append((read_source(case.pred), read_source(case.gt)))
    n_min = min(p.shape[0] for p, _ in stacks)
    sizes = subset_sizes(n_min) if sizes is None else sorted({int(s) for s in sizes})
    if sizes[0] < 1 or sizes[-1] > n_min:
        raise ValueError(f"subset sizes must lie in [1, {n_min}] (the smallest N over cases); got {sizes}")

    # first[n][metric] -> per-case values; rand[n][metric] -> (cases, repeats)
    first = {n: {m: np.full(len(stacks), np.nan) for m in names} for n in sizes}
    rand = {n: {m: np.full((len(stacks), repeats), np.nan) for m in names} for n in sizes}
    for i, (preds, gts) in enumerate(tqdm(stacks, disable=not progress, unit="case", desc="sample curve",
                                          leave=False)):
        for n in sizes:
            wanted = [m for m in names if m not in pair_metrics or (n >= 2 and gts.shape[0] >= 2)]
            if not wanted:
                continue
            picks = [np.arange(n)] + [np.sort(rng.choice(preds.shape[0], n, replace=False))
                                      for _ in range(repeats)]
            for r, idx in enumerate(picks):
                values = evaluate(preds[idx], gts, metrics=wanted, conventions=options.conventions)
                for m in wanted:
                    if r == 0:
                        first[n][m][i] = float(values[m])
                    else:
                        rand[n][m][i, r - 1] = float(values[m])
    rows = []
    for m in names:
        for n in sizes:
            f, x = first[n][m], rand[n][m]
            ok = ~np.isnan(f)
            k = int(ok.sum())
            rows.append({
                "metric": m, "n": n, "n_cases": k,
                "first_mean": float(f[ok].mean()) if k else math.nan,
                "random_mean": float(x[ok].mean()) if k else math.nan,
                "within_case_sd": float(x[ok].std(axis=1, ddof=1).mean()) if k and repeats > 1 else math.nan,
                "cohort_mean_sd": float(x[ok].mean(axis=0).std(ddof=1)) if k and repeats > 1 else math.nan,
            })
    notes = []
    if any(p.shape[0] != n_min for p, _ in stacks):
        notes.append(f"cases have different N; the curve stops at the smallest, N = {n_min}")
    return SampleCurve(rows, repeats, seed, notes)
