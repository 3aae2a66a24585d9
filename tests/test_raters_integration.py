"""The rater-vote family in evaluate(), evaluate_counts(), MetricAccumulator and ambiseg-eval --metrics."""

from __future__ import annotations

import csv

import numpy as np
import pytest

import ambiseg_metrics as am
from ambiseg_metrics.files.cli import main


def test_evaluate_raters_family_equals_the_functions_binary_and_soft():
    rng = np.random.default_rng(0)
    preds = rng.random((3, 5, 9, 11)) > 0.5
    gts = rng.random((3, 4, 9, 11)) > 0.5
    got = am.evaluate(preds, gts, batch=True, metrics=["ged", "raters"])
    assert list(got) == ["ged", *am.RATER_METRICS]
    want = am.rater_metrics(preds, gts, batch=True)
    for name in am.RATER_METRICS:
        np.testing.assert_array_equal(got[name], want[name])
    np.testing.assert_array_equal(got["ged"], am.ged(preds, gts, batch=True))
    soft = rng.random((5, 9, 11))
    assert am.evaluate(soft, gts[0], metrics="qubiq")["qubiq"] == am.qubiq_score(soft, gts[0])
    assert "qubiq" not in am.evaluate(preds[0], gts[0])  # opt-in: the default set is unchanged


def test_conventions_reach_the_families():
    gts = np.array([[[1, 1, 0, 0]], [[1, 0, 0, 0]]], bool)
    preds = np.array([[[1, 1, 1, 0]]], bool)
    assert am.evaluate(preds, gts, metrics=["ece"], conventions="ssn")["ece"] == pytest.approx(3 / 8)
    s = np.array([[[1, 1, 0, 0]], [[1, 0, 0, 0]]], bool)
    y = np.array([[[1, 1, 0, 0]], [[0, 1, 1, 0]]], bool)
    assert am.evaluate(s, y, metrics=["ged"], conventions="values")["ged"] == pytest.approx(37 / 84)


def test_evaluate_counts_needs_votes_and_accumulator_works():
    rng = np.random.default_rng(1)
    p, g = rng.random((2, 4, 6, 6)) > 0.5, rng.random((2, 3, 6, 6)) > 0.5
    with pytest.raises(ValueError, match="votes="):
        am.evaluate_counts(am.pair_counts(p, g, batch=True), metrics=["qubiq"])
    with pytest.raises(ValueError, match="unknown metric"):
        am.evaluate(p, g, batch=True, metrics=["qubik"])
    acc = am.MetricAccumulator(["ged", "qubiq", "ueo"])
    acc.update(p, g)
    acc.update(p[:1], g[:1])
    res = acc.compute()
    assert res.n_images == 3
    np.testing.assert_array_equal(res.per_image["qubiq"][:2], am.qubiq_score(p, g, batch=True))


def test_cli_metrics_option_takes_rater_metrics(tmp_path, capsys):
    rng = np.random.default_rng(2)
    for side, count in (("preds", 4), ("gts", 3)):
        (tmp_path / side).mkdir()
        for case in ("a", "b"):
            np.save(tmp_path / side / f"{case}.npy", rng.random((count, 8, 8)) > 0.5)
    out = tmp_path / "r.csv"
    code = main(
        [
            str(tmp_path / "preds"),
            str(tmp_path / "gts"),
            "--metrics",
            "ged,qubiq,ece",
            "--out",
            str(out),
            "--no-progress",
            "--bootstrap",
            "200",
        ]
    )
    assert code == 0, capsys.readouterr().err
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    p = np.load(tmp_path / "preds" / "a.npy")
    g = np.load(tmp_path / "gts" / "a.npy")
    assert float(rows[0]["qubiq"]) == am.qubiq_score(p, g)
    assert float(rows[0]["ece"]) == am.rater_calibration(p, g).ece
