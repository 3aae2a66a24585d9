"""Paired statistics and compare_runs: checked against brute-force references and hand-built tables."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ambiseg_metrics.files.cases import CaseTable
from ambiseg_metrics.files.compare import CaseSetMismatchError, compare_runs
from ambiseg_metrics.files.paired_stats import (
    effect_sizes,
    holm,
    paired_bootstrap_ci,
    sign_flip_p,
    wilcoxon_p,
)

diffs = st.lists(st.integers(-5, 5).map(float), min_size=1, max_size=10)


def brute_sign_flip(d):
    d = np.asarray(d, float)
    obs = abs(d.sum())
    hits = sum(abs(np.dot(s, d)) >= obs - 1e-9 for s in itertools.product([-1, 1], repeat=d.size))
    return hits / 2**d.size


@given(diffs)
def test_exact_sign_flip_equals_enumeration_over_all_cases(d):
    p, exact = sign_flip_p(np.array(d))
    assert exact
    assert p == pytest.approx(brute_sign_flip(d), abs=1e-12)  # zeros flipped or not: same p


def test_monte_carlo_sign_flip_is_close_to_exact_and_seeded():
    rng = np.random.default_rng(3)
    d = rng.normal(0.3, 1.0, 18)
    exact, e = sign_flip_p(d, exact_max=18)
    mc, m = sign_flip_p(d, exact_max=10, n_perm=20_000, seed=1)
    assert e and not m
    assert mc == pytest.approx(exact, abs=0.01)
    kw = {"exact_max": 10, "n_perm": 2000, "seed": 5}
    assert sign_flip_p(d, **kw) == sign_flip_p(d, **kw)
    assert mc >= 1 / 20_001  # never zero


def test_all_zero_differences_give_p_one_and_zero_interval():
    z = np.zeros(40)
    assert sign_flip_p(z) == (1.0, True)
    assert wilcoxon_p(z) == 1.0
    assert paired_bootstrap_ci(z) == (0.0, 0.0)
    assert effect_sizes(z) == (0.0, 0.0)


def test_wilcoxon_is_scipy_on_the_nonzero_differences():
    from scipy.stats import wilcoxon

    d = np.array([0.1, -0.3, 0.25, 0.0, 0.4, 0.5, -0.05, 0.6])
    assert wilcoxon_p(d) == pytest.approx(wilcoxon(d[d != 0]).pvalue)


def reference_holm(p):
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


@given(st.lists(st.floats(0, 1), min_size=1, max_size=12))
def test_holm_matches_the_step_down_definition(p):
    assert holm(p) == pytest.approx(reference_holm(p))


def test_holm_keeps_nan_out_of_the_family():
    out = holm([0.01, math.nan, 0.04])
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.04)


def test_effect_sizes_signs_and_values():
    d = np.array([1.0, 2.0, 3.0, -1.0])
    dz, rb = effect_sizes(d)
    assert dz == pytest.approx(d.mean() / d.std(ddof=1))
    # ranks of |d|: 1->1.5, 2->3, 3->4, 1->1.5 ; W+ = 8.5, W- = 1.5
    assert rb == pytest.approx((8.5 - 1.5) / 10)
    assert effect_sizes(-d) == pytest.approx((-dz, -rb))


def table(values: dict[str, list[float]], cases=None) -> CaseTable:
    n = len(next(iter(values.values())))
    cases = cases or [f"c{i:02d}" for i in range(n)]
    rows = [{"case": c, "n_pred": 4, "n_gt": 3, **{m: float(v[i]) for m, v in values.items()}}
            for i, c in enumerate(cases)]
    return CaseTable(rows, tuple(values))


def test_compare_a_table_with_itself_gives_zero_and_p_one():
    rng = np.random.default_rng(0)
    t = table({"ged": rng.random(30), "ci": rng.random(30)})
    res = compare_runs({"a": t, "b": t})
    assert len(res) == 2
    for r in res.rows:
        assert r["mean_diff"] == 0 and r["ci_low"] == 0 and r["ci_high"] == 0
        assert r["p_perm"] == 1 and r["p_wilcoxon"] == 1 and r["p_perm_holm"] == 1
        assert (r["wins_a"], r["ties"], r["wins_b"]) == (0, 30, 0) and r["better"] == ""


def test_direction_aware_wins_and_better():
    rng = np.random.default_rng(1)
    base = rng.random(25)
    good = table({"ged": base, "ci": base})
    bad = table({"ged": base + 0.1 + 0.01 * rng.random(25), "ci": base - 0.1})  # worse on both
    res = compare_runs({"good": good, "bad": bad}, n_perm=5000)
    ged, ci = res.row("ged", "good", "bad"), res.row("ci", "good", "bad")
    assert ged["mean_diff"] < 0 and ci["mean_diff"] > 0
    assert ged["better"] == ci["better"] == "good"
    assert ged["wins_a"] == ci["wins_a"] == 25
    assert ged["p_perm"] < 0.001 and ged["p_wilcoxon"] < 0.001 and not ged["perm_exact"]
    assert ged["ci_high"] < 0 < ci["ci_low"]
    assert [r["p_perm_holm"] for r in res.rows] == pytest.approx(holm([r["p_perm"] for r in res.rows]))


def test_three_models_give_every_pair_and_holm_over_all_rows():
    rng = np.random.default_rng(2)
    x = rng.random(12)
    res = compare_runs({"a": table({"ged": x}), "b": table({"ged": x + 0.05}), "c": table({"ged": x - 0.02})})
    assert [(r["model_a"], r["model_b"]) for r in res.rows] == [("a", "b"), ("a", "c"), ("b", "c")]
    assert [r["p_perm_holm"] for r in res.rows] == pytest.approx(holm([r["p_perm"] for r in res.rows]))
    assert all(r["perm_exact"] for r in res.rows)  # 12 cases: exact


def test_case_sets_must_match_unless_allowed():
    x = np.arange(5.0)
    a = table({"ged": x}, ["c1", "c2", "c3", "c4", "c5"])
    b = table({"ged": x}, ["c1", "c2", "c3", "c4", "c9"])
    with pytest.raises(CaseSetMismatchError, match="c5"):
        compare_runs({"a": a, "b": b})
    res = compare_runs({"a": a, "b": b}, allow_missing=True)
    assert res.cases == ["c1", "c2", "c3", "c4"] and res.dropped == 2 and "dropped" in res.notes[0]


def test_nan_cases_are_left_out_per_metric():
    a = table({"ci": [0.5, math.nan, 0.7, 0.2]})
    b = table({"ci": [0.4, 0.3, math.nan, 0.1]})
    r = compare_runs({"a": a, "b": b}).rows[0]
    assert r["n"] == 2 and r["mean_diff"] == pytest.approx(0.1)


def test_bad_arguments():
    t = table({"ged": [1.0, 2.0]})
    with pytest.raises(ValueError, match="at least two"):
        compare_runs({"a": t})
    with pytest.raises(ValueError, match="not in every table"):
        compare_runs({"a": t, "b": t}, metrics=["ci"])
    with pytest.raises(TypeError, match="CaseTable"):
        compare_runs({"a": t, "b": {"ged": [1.0]}})


@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=2, max_size=14))
def test_swapping_the_models_mirrors_the_row(pairs):
    a = table({"ged": [x for x, _ in pairs]})
    b = table({"ged": [y for _, y in pairs]})
    ab = compare_runs({"a": a, "b": b}, n_boot=200).rows[0]
    ba = compare_runs({"b": b, "a": a}, n_boot=200).rows[0]
    assert ba["mean_diff"] == pytest.approx(-ab["mean_diff"], abs=1e-12)
    assert (ba["wins_a"], ba["ties"], ba["wins_b"]) == (ab["wins_b"], ab["ties"], ab["wins_a"])
    assert ba["p_perm"] == pytest.approx(ab["p_perm"]) and ba["p_wilcoxon"] == pytest.approx(ab["p_wilcoxon"])
    assert ab["better"] == ba["better"]
    assert ab["ci_low"] <= ab["mean_diff"] + 1e-12 or ab["n"] < 3
    assert 0 < ab["p_perm"] <= 1
