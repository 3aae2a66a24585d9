"""Which solver HM-IoU uses (they agree: ``test_matching.py``), the limits that choose it, and the matching
functions' argument rules. A wrong choice costs time (an L × L assignment with a large L, or a compiled
kernel loaded for a few small images) but not a number, so these tests watch the calls."""

from __future__ import annotations

import numpy as np
import pytest

import ambiseg_metrics as am
from ambiseg_metrics.metrics import matching

RNG = np.random.default_rng(3)


@pytest.fixture
def calls(monkeypatch):
    """Record the solver each call reaches: the transport LP or scipy's assignment."""
    import scipy.optimize

    seen: list[str] = []
    transport, assignment = matching._transport_value, scipy.optimize.linear_sum_assignment

    def lp(*args):
        seen.append("transport")
        return transport(*args)

    def lsa(*args, **kwargs):
        seen.append("assignment")
        return assignment(*args, **kwargs)

    monkeypatch.setattr(matching, "_transport_value", lp)
    monkeypatch.setattr(scipy.optimize, "linear_sum_assignment", lsa)
    return seen


@pytest.mark.parametrize(
    ("shape", "method", "solver"),
    [
        ((4, 3), "auto", "assignment"),
        ((4, 3), "assignment", "assignment"),
        ((4, 3), "transport", "transport"),
        ((256, 1), "auto", "assignment"),  # L = 256 = MAX_DUPLICATED: still the assignment
        ((257, 1), "auto", "transport"),  # L = 257
        ((16, 17), "auto", "transport"),  # L = 272
        ((257, 1), "assignment", "assignment"),
    ],
)
def test_hungarian_from_matrix_solver(calls, shape, method, solver):
    sim = RNG.random(shape)
    got = am.hungarian_from_matrix(sim, method=method)
    assert calls == [solver]
    other = "transport" if solver == "assignment" else "assignment"
    assert got == pytest.approx(am.hungarian_from_matrix(sim, method=other), abs=1e-12)


def test_hungarian_from_matrix_duplicates_rows_and_columns():
    # L = 6: each row thrice, each column twice; row 0 takes column 0 twice and column 2 once, row 1 column 1
    # twice and column 2 once
    sim = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.25]])
    assert am.hungarian_from_matrix(sim, method="assignment") == pytest.approx((2 + 0.5 + 2 + 0.25) / 6)
    assert am.hungarian_from_matrix(sim, method="transport") == pytest.approx((2 + 0.5 + 2 + 0.25) / 6)


@pytest.mark.parametrize("bad", [np.ones(3), np.ones((2, 2, 2)), np.ones((0, 2))])
def test_hungarian_from_matrix_needs_a_matrix(bad):
    with pytest.raises(ValueError, match=r"sim must be a non-empty \(N, M\) matrix"):
        am.hungarian_from_matrix(bad)


def test_uniform_column_weights_keep_the_assignment(calls):
    sim = RNG.random((3, 2))
    assert am.hungarian_from_matrix(sim, col_weights=np.array([0.5, 0.5])) == pytest.approx(
        am.hungarian_from_matrix(sim), abs=1e-12)
    assert calls == ["assignment", "assignment"]


@pytest.mark.parametrize(
    ("b", "n", "compiled"),
    [(15, 16, False), (16, 16, False), (17, 16, True), (1, 64, False), (2, 64, True), (4096, 1, False),
     (4097, 1, True)],
)
def test_hm_iou_compiles_only_past_4096_cells(monkeypatch, b, n, compiled):
    """B images with an L × L problem each (here L = N, M = 1): compiled when B·L² > 4096."""
    seen = []
    real = matching.assignment_means

    def spy(sim, compiled):
        seen.append(compiled)
        return real(sim, compiled=False)  # the numbers do not depend on it

    monkeypatch.setattr(matching, "assignment_means", spy)
    preds = RNG.random((b, n, 1, 2)) > 0.5
    gts = RNG.random((b, 1, 1, 2)) > 0.5
    am.hungarian_iou(preds, gts, batch=True)
    assert seen == [compiled]


def test_hm_iou_beyond_the_duplication_limit_solves_transport_problems(calls, monkeypatch):
    monkeypatch.setattr(matching, "assignment_means", lambda *a, **k: pytest.fail("assignment used"))
    preds = RNG.random((2, 17, 3, 3)) > 0.5  # L = lcm(17, 16) = 272
    gts = RNG.random((2, 16, 3, 3)) > 0.5
    am.hungarian_iou(preds, gts, batch=True)
    assert calls == ["transport", "transport"]


def test_hm_iou_at_the_duplication_limit_uses_the_assignment(calls):
    preds = RNG.random((1, 256, 2, 2)) > 0.5  # L = lcm(256, 1) = 256
    gts = RNG.random((1, 1, 2, 2)) > 0.5
    am.hungarian_iou(preds, gts, batch=True)
    assert calls == []  # the batched assignment, neither the LP nor scipy


@pytest.mark.parametrize("func", ["hungarian_iou", "similarity_matrix", "hungarian_iou_from_counts"])
def test_matching_options_are_keyword_only(func):
    import inspect

    p, g = RNG.random((2, 4, 4)), RNG.random((2, 4, 4))
    kwargs = {"counts": am.pair_counts(p, g)} if func.endswith("from_counts") else {"preds": p, "gts": g}
    getattr(am, func)(**kwargs, similarity="iou")  # the data by name too
    params = list(inspect.signature(getattr(am, func)).parameters.values())
    data = [q for q in params if q.kind is q.POSITIONAL_OR_KEYWORD]
    assert [q.name for q in data] == list(kwargs)
    assert all(q.kind is q.KEYWORD_ONLY for q in params[len(data):])


def test_annotation_weights_are_renormalised_for_the_transport_problem():
    """Weights pass their check when they sum to 1 within 1e-6; the LP's column masses are rescaled to sum
    to exactly 1, as the row masses do (else the plan would be infeasible by more than HiGHS' tolerance)."""
    p, g = RNG.random((3, 5, 5)) > 0.5, RNG.random((2, 5, 5)) > 0.5
    near = am.hungarian_iou(p, g, gt_weights=[0.3, 0.7000009])
    exact = am.hungarian_iou(p, g, gt_weights=[0.3 / 1.0000009, 0.7000009 / 1.0000009])
    assert near == pytest.approx(exact, abs=1e-9)
