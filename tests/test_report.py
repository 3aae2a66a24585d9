"""Summary statistics, bootstrap CI, CSV/JSON text and atomic writes."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest

from ambiseg_metrics.files.cases import CaseTable
from ambiseg_metrics.files.report import (
    bootstrap_ci,
    csv_text,
    format_summary,
    json_text,
    summarize,
)


def _table(values: dict[str, list[float]]) -> CaseTable:
    n = len(next(iter(values.values())))
    rows = [
        {"case": f"c{i}", "n_pred": 4, "n_gt": 3, **{k: float(v[i]) for k, v in values.items()}}
        for i in range(n)
    ]
    return CaseTable(rows, tuple(values))


def test_bootstrap_is_seeded_and_brackets_the_mean():
    x = np.random.default_rng(1).random(40)
    lo, hi = bootstrap_ci(x, seed=3)
    assert (lo, hi) == bootstrap_ci(x, seed=3)
    assert bootstrap_ci(x, seed=4) != (lo, hi)
    assert lo < x.mean() < hi
    # the percentile interval of the mean is close to mean +- 1.96 standard errors
    se = x.std(ddof=1) / math.sqrt(x.size)
    assert abs((hi - lo) - 2 * 1.96 * se) < 0.25 * (2 * 1.96 * se)


def test_bootstrap_interval_is_pinned_at_its_percentiles():
    """Issue 22: the 95% interval is exactly the 2.5th and 97.5th percentile of the resampled means
    (a 90% interval at 5/95 passed the width check above)."""
    x = np.random.default_rng(11).random(23)
    n_boot = 4000
    idx = np.random.default_rng(5).integers(0, x.size, size=(n_boot, x.size))  # the documented stream
    means = x[idx].mean(axis=1)
    expected = tuple(float(v) for v in np.quantile(means, (0.025, 0.975)))
    assert bootstrap_ci(x, n_boot=n_boot, confidence=0.95, seed=5) == expected
    assert bootstrap_ci(x, n_boot=n_boot, seed=5) == expected  # the default is 95%
    assert expected != tuple(float(v) for v in np.quantile(means, (0.05, 0.95)))


def test_bootstrap_does_not_depend_on_chunking():
    x = np.random.default_rng(2).random(17)
    assert bootstrap_ci(x, n_boot=2500, chunk=1000) == bootstrap_ci(x, n_boot=2500, chunk=97)


def test_bootstrap_edge_cases():
    assert bootstrap_ci(np.array([0.3])) == (0.3, 0.3)
    assert all(math.isnan(v) for v in bootstrap_ci(np.array([])))
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(np.ones(3), confidence=1.5)
    with pytest.raises(ValueError, match="one-dimensional"):
        bootstrap_ci(np.ones((3, 2)))


def test_summarize_matches_numpy_and_skips_nan():
    a = [0.1, 0.4, 0.35, 0.9, 0.2]
    b = [0.5, math.nan, 0.7, 0.6, math.nan]
    s = {m.metric: m for m in summarize(_table({"a": a, "b": b}), n_boot=500, seed=7)}
    assert s["a"].n == 5 and s["b"].n == 3
    assert s["a"].mean == pytest.approx(np.mean(a)) and s["a"].std == pytest.approx(np.std(a, ddof=1))
    assert s["a"].median == pytest.approx(np.median(a))
    assert (s["a"].ci_low, s["a"].ci_high) == bootstrap_ci(np.array(a), n_boot=500, seed=7)
    bb = np.array([0.5, 0.7, 0.6])
    assert s["b"].mean == pytest.approx(bb.mean())
    assert (s["b"].ci_low, s["b"].ci_high) == bootstrap_ci(bb, n_boot=500, seed=7)
    single = summarize(_table({"a": [0.5]}))[0]
    assert single.n == 1 and math.isnan(single.std) and single.mean == 0.5


def test_csv_round_trips_exactly():
    x = np.random.default_rng(0).random(3)
    table = _table({"ged": list(x), "ci": [math.nan, 1.0, 0.25]})
    rows = list(csv.DictReader(io.StringIO(csv_text(table))))
    assert list(rows[0]) == ["case", "n_pred", "n_gt", "ged", "ci"]
    assert [float(r["ged"]) for r in rows] == list(x)
    assert math.isnan(float(rows[0]["ci"])) and rows[1]["n_pred"] == "4"


def test_json_is_strict_with_null_for_nan():
    table = _table({"ged": [0.1, 0.2], "ci": [math.nan, math.nan]})
    doc = json.loads(json_text(table, summarize(table, n_boot=10), {"tool": "t"}))
    assert doc["tool"] == "t" and doc["n_cases"] == 2
    assert doc["summary"]["ci"] == {"n": 0, "mean": None, "std": None, "median": None, "ci95": [None, None]}
    assert doc["cases"][0]["ci"] is None and doc["cases"][1]["ged"] == 0.2


def test_format_summary_has_every_metric():
    text = format_summary(summarize(_table({"ged": [0.1, 0.3], "ci": [math.nan, math.nan]}), n_boot=10))
    lines = text.splitlines()
    assert lines[0].split()[:5] == ["metric", "n", "mean", "std", "median"]
    assert lines[2].startswith("ged") and "0.2000" in lines[2]
    assert lines[3].startswith("ci") and "—" in lines[3]




def test_format_summary_layout_is_pinned():
    """The whole text, column by column: metric left-aligned, numbers right-aligned, CI left-aligned, two
    spaces between columns, a rule as wide as the header, the CI heading from the confidence."""
    from ambiseg_metrics.files.report import MetricSummary

    rows = [MetricSummary("ged", 12, 0.25, 0.125, 0.2, 0.1, 0.4),
            MetricSummary("hm_iou_long", 3, 0.5, math.nan, 0.5, 0.45, 0.55)]
    header = "metric        n    mean     std  median  95% CI (bootstrap)"
    want = [
        header,
        "-" * len(header),
        "ged          12  0.2500  0.1250  0.2000  [0.1000, 0.4000]",
        "hm_iou_long   3  0.5000       —  0.5000  [0.4500, 0.5500]",
    ]
    assert format_summary(rows).split("\n") == want
    assert format_summary(rows, confidence=0.9).splitlines()[0].endswith("90% CI (bootstrap)")
    assert "0.25000" in format_summary(rows, digits=5)


def test_json_text_layout_and_nan_are_pinned():
    table = _table({"ged": [0.1, math.nan]})
    text = json_text(table, summarize(table, n_boot=10))
    assert text == json.dumps(json.loads(text), indent=2) + "\n"  # indented by 2, one trailing newline
    assert "NaN" not in text and '"ged": null' in text
    with pytest.raises(ValueError):  # strict JSON: a NaN that escaped the null mapping is refused
        json_text(table, summarize(table, n_boot=10), {"x": math.nan})


def test_summarize_defaults_and_bounds():
    x = [0.1, 0.4, 0.35, 0.9, 0.2]
    s = summarize(_table({"a": x}))[0]
    assert (s.ci_low, s.ci_high) == bootstrap_ci(np.array(x), n_boot=10_000, seed=0)
    assert summarize(_table({"a": x}), n_boot=1)[0].n == 5  # one resample is allowed
    for bad in (0, -1):
        with pytest.raises(ValueError, match="n_boot must be >= 1"):
            summarize(_table({"a": x}), n_boot=bad)


def test_summarize_default_is_exactly_10000_resamples():
    """With 40 distinct values the percentile interval moves with every extra resample, so the default
    (documented as 10,000) is pinned by behaviour, not by reading the signature."""
    x = np.random.default_rng(3).random(40)
    def interval(**kw):
        s = summarize(_table({"a": x}), **kw)[0]
        return s.ci_low, s.ci_high

    assert interval() == interval(n_boot=10_000)
    for other in (9_999, 10_001):
        assert interval() != interval(n_boot=other)


def test_options_are_keyword_only_and_summaries_immutable():
    import dataclasses

    from ambiseg_metrics.files.report import MetricSummary

    table = _table({"a": [0.1, 0.2]})
    with pytest.raises(TypeError):
        summarize(table, 10)  # n_boot must be named
    rows = summarize(table, n_boot=10)
    with pytest.raises(TypeError):
        format_summary(rows, 3)  # digits must be named
    with pytest.raises(dataclasses.FrozenInstanceError):
        rows[0].mean = 0.0  # type: ignore[misc]
    assert isinstance(rows[0], MetricSummary)


def test_public_annotations_resolve():
    """Sphinx autodoc evaluates the annotations of the public functions: each must be a valid type."""
    import typing

    import ambiseg_metrics.files.report as report

    for name in report.__all__:
        obj = getattr(report, name)
        if callable(obj):
            typing.get_type_hints(obj)
