"""``--html report.html``: one self-contained page a person can read offline.

The page holds the summary table with its intervals (and, for ``ambiseg-eval compare``, the paired
comparison), the per-metric distributions over cases (one overlaid outline per model), the worst, median
and best cases of a chosen metric as image grids (annotations, samples, sample and rater frequency maps,
per-pixel disagreement), the sample-count curve when it was computed, the conventions used and the exact
command line. Every figure is a PNG inlined as a base64 ``data:`` URI and the style sheet is inline: the
page makes no network request and runs no script. matplotlib is imported only when a report is built.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .cases import CaseTable
from .io import Case, read_source

__all__ = ["ReportInput", "build_html", "pick_cases"]

CSS = """
body{font-family:system-ui,Helvetica,Arial,sans-serif;margin:24px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:2px;margin-top:1.6em}
table{border-collapse:collapse;font-size:12px;margin:8px 0}div.wide{overflow-x:auto}
th,td{border:1px solid #ccc;padding:2px 5px}td.num,td.ci{white-space:nowrap}
th{background:#f0f0f0}td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;height:auto;display:block;margin:6px 0}code,pre{background:#f6f6f6;font-size:12px}
pre{padding:8px;white-space:pre-wrap;word-break:break-all}.note{color:#555;font-size:13px}
"""


@dataclass
class ReportInput:
    """Everything the page shows.

    ``tables`` maps model name → per-case table (one model for ``ambiseg-eval``, several for ``compare``);
    ``cases`` maps model name → the :class:`Case` list (to draw the image grids); ``summaries`` maps model
    name → the :func:`~ambiseg_metrics.files.report.summarize` list; ``comparison`` is a
    :class:`~ambiseg_metrics.files.compare.ComparisonTable` or None; ``curve`` a
    :class:`~ambiseg_metrics.files.sample_curve.SampleCurve` or None.
    """

    tables: Mapping[str, CaseTable]
    cases: Mapping[str, Sequence[Case]]
    summaries: Mapping[str, Sequence[object]]
    conventions: Mapping[str, object]
    command: str
    threshold: float = 0.5
    grid_metric: str = "ged"
    comparison: object | None = None
    curve: object | None = None
    notes: Sequence[str] = field(default_factory=list)
    title: str = "ambiseg-eval report"


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _cell(v: object, digits: int = 4) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return '<td class="num">—</td>'
        text = f"{v:.2e}" if 0 < abs(v) < 1e-3 else f"{v:.{digits}f}"
        return f'<td class="num">{text}</td>'
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return f'<td class="num">{v}</td>'
    text = html.escape(str(v))
    return f'<td class="ci">{text}</td>' if text.startswith("[") else f"<td>{text}</td>"


def _table(head: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    out += ["<tr>" + "".join(_cell(v) for v in r) + "</tr>" for r in rows]
    return "\n".join([*out, "</table>"])


def pick_cases(table: CaseTable, metric: str, direction: str | None) -> list[tuple[str, str]]:
    """``[(label, case)]`` for the worst, median and best case of ``metric`` (NaN cases skipped).

    Lower-is-better metrics have their worst case at the top value; without a direction, "highest",
    "median" and "lowest" are used.
    """
    x = table.column(metric)
    ok = np.flatnonzero(~np.isnan(x))
    if ok.size == 0:
        return []
    order = ok[np.argsort(x[ok], kind="stable")]  # ascending
    names = table.cases
    hi, mid, lo = names[order[-1]], names[order[len(order) // 2]], names[order[0]]
    if direction == "lower":
        picks = [("worst", hi), ("median", mid), ("best", lo)]
    elif direction == "higher":
        picks = [("worst", lo), ("median", mid), ("best", hi)]
    else:
        picks = [("highest", hi), ("median", mid), ("lowest", lo)]
    seen, out = set(), []
    for label, case in picks:
        if case not in seen:
            seen.add(case)
            out.append((label, case))
    return out


def _summary_section(rep: ReportInput) -> str:
    parts = ["<h2>Summary over cases</h2>",
             '<p class="note">mean, standard deviation (ddof=1), median and the seeded percentile '
             "bootstrap 95% interval of the mean over cases.</p>"]
    for model, summary in rep.summaries.items():
        if len(rep.summaries) > 1:
            parts.append(f"<h3>{html.escape(model)}</h3>")
        rows = [[s.metric, s.n, s.mean, s.std, s.median, f"[{s.ci_low:.4f}, {s.ci_high:.4f}]"]
                for s in summary]
        parts.append(_table(["metric", "n", "mean", "std", "median", "95% CI (bootstrap)"], rows))
    return "\n".join(parts)


def _comparison_section(cmp) -> str:
    head = ["metric", "direction", "A", "B", "n", "mean A", "mean B", "mean A−B", "95% CI of A−B", "p perm",
            "p Wilcoxon", "p perm (Holm)", "p Wilcoxon (Holm)", "A win/tie/loss", "d_z", "better"]
    rows = [[r["metric"], r["direction"], r["model_a"], r["model_b"], r["n"], r["mean_a"], r["mean_b"],
             r["mean_diff"], f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]", r["p_perm"], r["p_wilcoxon"],
             r["p_perm_holm"], r["p_wilcoxon_holm"], f"{r['wins_a']}/{r['ties']}/{r['wins_b']}",
             r["effect_dz"], r["better"]] for r in cmp.rows]
    s = cmp.settings
    note = (f"Paired over {len(cmp.cases)} shared cases ({cmp.dropped} dropped). Interval: paired percentile "
            f"bootstrap ({s.get('n_boot')} resamples); p perm: sign-flip permutation test (exact up to "
            f"{s.get('exact_max')} non-zero differences, else {s.get('n_perm')} seeded flips); Holm over all "
            f"{len(cmp.rows)} rows; seed {s.get('seed')}.")
    return "\n".join(["<h2>Paired comparison</h2>", f'<p class="note">{html.escape(note)}</p>',
                      '<div class="wide">', _table(head, rows), "</div>"])


def _grid_section(rep: ReportInput) -> str:
    from .compare import DIRECTIONS
    from .figures import binarize, case_grid

    metric = rep.grid_metric
    direction = DIRECTIONS.get(metric)
    parts = [f"<h2>Worst, median and best cases by {html.escape(metric)}</h2>",
             '<p class="note">Rows: the annotations; the first samples; the fraction of samples and of '
             "annotators marking each pixel, and their absolute difference.</p>"]
    for model, table in rep.tables.items():
        if metric not in table.metrics:
            parts.append(f"<p>{html.escape(metric)} was not computed.</p>")
            continue
        by_name = {c.name: c for c in rep.cases[model]}
        values = dict(zip(table.cases, table.column(metric), strict=True))
        for label, name in pick_cases(table, metric, direction):
            case = by_name[name]
            preds = binarize(read_source(case.pred), rep.threshold)
            gts = binarize(read_source(case.gt), rep.threshold)
            title = f"{model}: {label} case {name}, {metric} = {values[name]:.4f}"
            parts.append(_img(case_grid(preds, gts, title), title))
    return "\n".join(parts)


def build_html(rep: ReportInput) -> str:
    """The whole page as one string (UTF-8 HTML, no external resource)."""
    from .figures import distributions, sample_curve_figure

    first = next(iter(rep.tables.values()))
    metrics = [m for m in first.metrics if all(m in t.metrics for t in rep.tables.values())]
    values = {model: {m: t.column(m) for m in metrics} for model, t in rep.tables.items()}
    models = ", ".join(rep.tables)
    n = {len(t) for t in rep.tables.values()}
    body = [f"<h1>{html.escape(rep.title)}</h1>",
            f"<p>{'/'.join(map(str, sorted(n)))} cases; model(s): {html.escape(models)}.</p>"]
    if rep.notes:
        body.append("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in rep.notes) + "</ul>")
    body.append(_summary_section(rep))
    if rep.comparison is not None:
        body.append(_comparison_section(rep.comparison))
    body += ["<h2>Distributions over cases</h2>", _img(distributions(values, metrics), "distributions")]
    if rep.grid_metric in metrics:
        body.append(_grid_section(rep))
    if rep.curve is not None:
        from .sample_curve import GED_BIAS_NOTE

        curve_metrics = list(dict.fromkeys(r["metric"] for r in rep.curve.rows))
        body += ["<h2>How many samples are enough</h2>",
                 _img(sample_curve_figure(rep.curve.rows, curve_metrics), "sample curve"),
                 f'<p class="note">{html.escape(GED_BIAS_NOTE)} {rep.curve.repeats} random subsets per case '
                 f"and n, seed {rep.curve.seed}.</p>"]
    conv = [[k, v] for k, v in rep.conventions.items()]
    body += ["<h2>Conventions</h2>", '<div class="wide">', _table(["option", "value"], conv), "</div>",
             "<h2>Command line</h2>", f"<pre>{html.escape(rep.command)}</pre>"]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(rep.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")
