"""Comparing models on the same cases: paired differences, intervals, tests, Holm correction.

:func:`compare_runs` takes the per-case tables of two or more models (:class:`~ambiseg_metrics.CaseTable`,
as :func:`~ambiseg_metrics.evaluate_cases` returns them, all scored against the same annotations) and
returns a tidy :class:`ComparisonTable`: one row per metric and per pair of models ``(A, B)`` (every pair
in the order the models were given) with

==================  ======================================================================================
``n``               cases where the metric is defined for both models (NaN cases are left out)
``mean_a/mean_b``   the two means over those cases
``mean_diff``       mean of the paired differences ``d_i = A_i - B_i``
``ci_low/ci_high``  paired percentile bootstrap interval of ``mean_diff`` (seeded)
``p_perm``          two-sided paired sign-flip permutation p-value (exact for <= 16 non-zero differences,
                    seeded Monte Carlo otherwise; ``perm_exact`` says which)
``p_wilcoxon``      two-sided Wilcoxon signed-rank p-value (scipy; zero differences dropped)
``p_perm_holm``,    the same p-values Holm-corrected over every row of the table (all metrics x pairs);
``p_wilcoxon_holm``
``wins_a/ties/``    cases where A is better / equal (``|d| <= 1e-12``) / worse than B, by ``direction``
``wins_b``
``effect_dz``       Cohen's d_z = mean(d) / sd(d), sign of A - B
``rank_biserial``   matched-pairs rank-biserial correlation, sign of A - B
``better``          the model with the better mean (empty when equal or the metric has no direction)
==================  ======================================================================================

**Direction.** :data:`DIRECTIONS` says whether lower (GED and its cross term) or higher (CI, its
components, HM-IoU) is better. The diversity terms of the GED (``ged_sample_diversity``,
``ged_annotator_diversity``) describe the sets rather than score a model, so they have no direction: there
``wins_a`` counts cases where A's value is larger and ``better`` is empty. ``ged_annotator_diversity``
depends only on the annotations, so it is identical for every model (differences 0, p = 1).
"""

from __future__ import annotations

import csv
import io
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .cases import CaseTable
from .paired_stats import TIE_TOL, effect_sizes, holm, paired_bootstrap_ci, sign_flip_p, wilcoxon_p

__all__ = ["COLUMNS", "DIRECTIONS", "CaseSetMismatchError", "ComparisonTable", "compare_runs"]

#: Which way is better, per metric: "lower", "higher" or None (descriptive, no better direction).
DIRECTIONS: dict[str, str | None] = {
    "ged": "lower",
    "ged_cross": "lower",
    "ged_sample_diversity": None,
    "ged_annotator_diversity": None,
    "ci": "higher",
    "ci_harmonic": "higher",
    "combined_sensitivity": "higher",
    "max_dice_matching": "higher",
    "diversity_agreement": "higher",
    "hm_iou": "higher",
}

#: The columns of every comparison row, in order.
COLUMNS: tuple[str, ...] = (
    "metric", "direction", "model_a", "model_b", "n", "mean_a", "mean_b", "mean_diff", "ci_low", "ci_high",
    "p_perm", "perm_exact", "p_wilcoxon", "p_perm_holm", "p_wilcoxon_holm", "wins_a", "ties", "wins_b",
    "effect_dz", "rank_biserial", "better",
)


class CaseSetMismatchError(ValueError):
    """The models were not scored on the same cases (and ``allow_missing`` was not given)."""


@dataclass
class ComparisonTable:
    """The tidy result of :func:`compare_runs`.

    Attributes
    ----------
    rows : list of dict
        One row per metric and pair of models, keys :data:`COLUMNS`.
    models : list of str
        Model names in the order given.
    cases : list of str
        The cases compared (shared by every model).
    dropped : int
        Cases present for some models but not all, left out (only with ``allow_missing``).
    settings : dict
        ``n_boot``, ``n_perm``, ``seed``, ``confidence``, ``exact_max``.
    notes : list of str
        Findings worth printing (dropped cases, metrics left out because undefined).
    """

    rows: list[dict[str, object]]
    models: list[str]
    cases: list[str]
    dropped: int = 0
    settings: dict[str, object] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def row(self, metric: str, model_a: str, model_b: str) -> dict[str, object]:
        """The row of ``metric`` for the pair ``(model_a, model_b)`` (in the order compared)."""
        for r in self.rows:
            if (r["metric"], r["model_a"], r["model_b"]) == (metric, model_a, model_b):
                return r
        raise KeyError(f"no row for metric {metric!r} and pair ({model_a!r}, {model_b!r})")

    def csv_text(self) -> str:
        """The table as CSV (floats written with ``repr``, so they round-trip; NaN as ``nan``)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(COLUMNS)
        for r in self.rows:
            w.writerow([repr(float(r[c])) if isinstance(r[c], float) else r[c] for c in COLUMNS])
        return buf.getvalue()

    def as_dict(self) -> dict[str, object]:
        """JSON-ready: NaN as None."""

        def clean(v: object) -> object:
            return None if isinstance(v, float) and math.isnan(v) else v

        return {
            "models": list(self.models), "n_cases": len(self.cases), "cases": list(self.cases),
            "dropped": self.dropped, "settings": dict(self.settings), "notes": list(self.notes),
            "rows": [{c: clean(r[c]) for c in COLUMNS} for r in self.rows],
        }

    def format(self, digits: int = 4) -> str:
        """A plain-text table: metric, pair, n, mean difference [interval], p-values, W/T/L, d_z."""
        conf = round(100 * float(self.settings.get("confidence", 0.95)))
        head = ["metric", "A vs B", "n", "mean A-B", f"{conf}% CI (bootstrap)", "p perm", "p Wilcoxon",
                "p perm (Holm)", "A win/tie/loss", "d_z", "better"]

        def f(v: object) -> str:
            return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"

        def fp(v: float) -> str:
            return "—" if math.isnan(v) else (f"{v:.2e}" if v < 1e-3 else f"{v:.4f}")

        lines = []
        for r in self.rows:
            arrow = {"lower": " (lower better)", "higher": " (higher better)"}.get(str(r["direction"]), "")
            lines.append([
                f"{r['metric']}{arrow}", f"{r['model_a']} vs {r['model_b']}", str(r["n"]),
                f(r["mean_diff"]), f"[{f(r['ci_low'])}, {f(r['ci_high'])}]",
                fp(r["p_perm"]) + ("" if r["perm_exact"] else "*"), fp(r["p_wilcoxon"]), fp(r["p_perm_holm"]),
                f"{r['wins_a']}/{r['ties']}/{r['wins_b']}", f(r["effect_dz"]), str(r["better"]),
            ])
        widths = [max(len(x[j]) for x in [head, *lines]) for j in range(len(head))]

        def render(x: list[str]) -> str:
            return "  ".join(c.ljust(w) if j < 2 else c.rjust(w)
                             for j, (c, w) in enumerate(zip(x, widths, strict=True))).rstrip()

        text = [render(head), "-" * len(render(head)), *map(render, lines)]
        if any(not r["perm_exact"] for r in self.rows):
            text.append(f"* Monte Carlo permutation p ({self.settings.get('n_perm')} sign flips, seed "
                        f"{self.settings.get('seed')}); others exact")
        return "\n".join(text)


def _aligned(runs: Mapping[str, CaseTable], allow_missing: bool) -> tuple[list[str], int, list[str]]:
    sets = {name: set(t.cases) for name, t in runs.items()}
    for name, t in runs.items():
        if len(sets[name]) != len(t.cases):
            raise ValueError(f"model {name!r}: a case name appears twice in its table")
    union = set().union(*sets.values())
    common = set.intersection(*sets.values())
    notes: list[str] = []
    if common != union:
        parts = [f"{name} lacks {len(union - s)} ({', '.join(sorted(union - s)[:5])}"
                 + (", ..." if len(union - s) > 5 else "") + ")" for name, s in sets.items() if union - s]
        message = f"the models were not scored on the same cases: {'; '.join(parts)}"
        if not allow_missing:
            raise CaseSetMismatchError(message + " (pass allow_missing=True / --allow-missing to compare "
                                       "the shared cases)")
        notes.append(f"{message}; comparing the {len(common)} shared cases, {len(union - common)} dropped")
    if not common:
        raise CaseSetMismatchError("the models share no case")
    return sorted(common), len(union - common), notes


def compare_runs(
    runs: Mapping[str, CaseTable],
    *,
    metrics: Sequence[str] | None = None,
    n_boot: int = 10_000,
    n_perm: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
    exact_max: int = 16,
    allow_missing: bool = False,
) -> ComparisonTable:
    """Compare two or more models case by case on every metric; see the module docstring for the columns.

    Parameters
    ----------
    runs : mapping of model name -> CaseTable
        Per-case tables of the models (scored against the same annotations), in the order to report.
    metrics : sequence of str, optional
        The metrics to compare (default: every metric all tables have, in the first table's order).
    n_boot, n_perm, seed : int
        Bootstrap resamples, Monte Carlo sign flips (used when more than ``exact_max`` differences are
        non-zero) and the seed of both (each row draws from its own ``default_rng(seed)`` stream, so a
        row does not depend on which other rows were computed).
    confidence : float, default 0.95
        Level of the bootstrap interval.
    allow_missing : bool, default False
        Compare the cases all models share and report how many were dropped, instead of raising
        :class:`CaseSetMismatchError` when the case sets differ.

    Returns
    -------
    ComparisonTable
    """
    if not isinstance(runs, Mapping) or len(runs) < 2:
        raise ValueError("runs must map at least two model names to their CaseTable")
    for name, t in runs.items():
        if not isinstance(t, CaseTable):
            raise TypeError(f"runs[{name!r}] must be a CaseTable; got {type(t).__name__}")
    models = [str(m) for m in runs]
    if len(set(models)) != len(models):
        raise ValueError(f"model names must be distinct; got {models}")
    tables = list(runs.values())
    shared = [m for m in tables[0].metrics if all(m in t.metrics for t in tables[1:])]
    if metrics is None:
        chosen = shared
    else:
        chosen = list(dict.fromkeys(metrics))
        missing = [m for m in chosen if m not in shared]
        if missing:
            raise ValueError(f"metric(s) {missing} are not in every table; shared: {', '.join(shared)}")
    if not chosen:
        raise ValueError("no metric is shared by every table")
    cases, dropped, notes = _aligned(runs, allow_missing)
    values = {}
    for name, t in runs.items():
        index = {c: i for i, c in enumerate(t.cases)}
        order = [index[c] for c in cases]
        values[name] = {m: t.column(m)[order] for m in chosen}

    rows: list[dict[str, object]] = []
    for metric in chosen:
        direction = DIRECTIONS.get(metric)
        for a, b in itertools.combinations(models, 2):
            xa, xb = values[a][metric], values[b][metric]
            ok = ~(np.isnan(xa) | np.isnan(xb))
            if not ok.any():
                notes.append(f"{metric}: undefined for every case of {a} or {b}; left out")
                continue
            rows.append(_row(metric, direction, a, b, xa[ok], xb[ok], n_boot=n_boot, n_perm=n_perm,
                             seed=seed, confidence=confidence, exact_max=exact_max))
    for key in ("p_perm", "p_wilcoxon"):
        for r, adj in zip(rows, holm([float(r[key]) for r in rows]), strict=True):
            r[f"{key}_holm"] = adj
    settings = {"n_boot": n_boot, "n_perm": n_perm, "seed": seed, "confidence": confidence,
                "exact_max": exact_max, "tie_tolerance": TIE_TOL}
    rows = [{c: r[c] for c in COLUMNS} for r in rows]
    return ComparisonTable(rows, models, cases, dropped, settings, notes)


def _row(metric: str, direction: str | None, a: str, b: str, xa: np.ndarray, xb: np.ndarray, *,
         n_boot: int, n_perm: int, seed: int, confidence: float, exact_max: int) -> dict[str, object]:
    d = xa - xb
    mean_diff = float(d.mean())
    low, high = paired_bootstrap_ci(d, n_boot=n_boot, confidence=confidence, seed=seed)
    p_perm, exact = sign_flip_p(d, n_perm=n_perm, seed=seed, exact_max=exact_max)
    dz, rb = effect_sizes(d)
    up, down = int(np.count_nonzero(d > TIE_TOL)), int(np.count_nonzero(d < -TIE_TOL))
    wins_a, wins_b = (down, up) if direction == "lower" else (up, down)
    better = ""
    if direction is not None and abs(mean_diff) > TIE_TOL:
        better = a if (mean_diff < 0) == (direction == "lower") else b
    return {
        "metric": metric, "direction": direction or "none", "model_a": a, "model_b": b, "n": int(d.size),
        "mean_a": float(xa.mean()), "mean_b": float(xb.mean()), "mean_diff": mean_diff,
        "ci_low": low, "ci_high": high, "p_perm": float(p_perm), "perm_exact": bool(exact),
        "p_wilcoxon": wilcoxon_p(d), "wins_a": wins_a, "ties": int(d.size) - up - down, "wins_b": wins_b,
        "effect_dz": dz, "rank_biserial": rb, "better": better,
    }
