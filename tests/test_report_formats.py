"""``--format grand-challenge`` / ``--format nnunet`` validated against their documented shapes, and
``--sample-curve`` checked against direct evaluation."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from ambiseg_metrics import METRICS, evaluate
from ambiseg_metrics.examples import example_paths
from ambiseg_metrics.files.cli import main
from ambiseg_metrics.files.io import discover_cases, read_source
from ambiseg_metrics.files.sample_curve import sample_curve, subset_sizes

STATS = ("count", "mean", "std", "min", "25pc", "50pc", "75pc", "max")


def validate_grand_challenge(doc: dict, metrics) -> None:
    """The evalutils shape: case = {column: {"0": v, ...}}, aggregates = {column: {stat: v}}."""
    assert set(doc) == {"case", "aggregates"}
    columns = ["case", "n_pred", "n_gt", *metrics]
    assert list(doc["case"]) == columns
    n = len(doc["case"]["case"])
    for col in columns:
        assert list(doc["case"][col]) == [str(i) for i in range(n)], col
        for v in doc["case"][col].values():
            assert v is None or isinstance(v, (str, int, float))
    assert list(doc["aggregates"]) == columns[1:]
    for col, agg in doc["aggregates"].items():
        assert tuple(agg) == STATS, col
        assert isinstance(agg["count"], int)


def validate_nnunet(doc: dict, metrics) -> None:
    """nnU-Net v2's summary.json: metric_per_case list, mean per label key, foreground_mean."""
    assert set(doc) == {"metric_per_case", "mean", "foreground_mean"}
    for entry in doc["metric_per_case"]:
        assert set(entry) == {"metrics", "prediction_file", "reference_file"}
        assert list(entry["metrics"]) == ["1"] and list(entry["metrics"]["1"]) == list(metrics)
    assert list(doc["mean"]) == ["1"] and list(doc["mean"]["1"]) == list(metrics)
    assert doc["foreground_mean"] == doc["mean"]["1"]


@pytest.fixture(scope="module")
def formats(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fmt")
    code = main(["--example", "--no-progress", "--bootstrap", "100", "--format", "grand-challenge",
                 "--format", "nnunet", "--format-dir", str(tmp), "--out", str(tmp / "r.csv")])
    assert code == 0
    rows = list(csv.DictReader((tmp / "r.csv").open()))
    return (json.loads((tmp / "metrics.json").read_text()), json.loads((tmp / "summary.json").read_text()),
            rows)


def test_grand_challenge_metrics_json(formats):
    gc, _, rows = formats
    validate_grand_challenge(gc, METRICS)
    assert [gc["case"]["case"][str(i)] for i in range(len(rows))] == [r["case"] for r in rows]
    for m in METRICS:
        x = np.array([float(r[m]) for r in rows])
        assert [gc["case"][m][str(i)] for i in range(len(rows))] == x.tolist()
        agg = gc["aggregates"][m]
        assert agg["count"] == 32 and agg["mean"] == pytest.approx(x.mean())
        assert agg["std"] == pytest.approx(x.std(ddof=1))
        assert (agg["min"], agg["max"]) == (x.min(), x.max())
        assert agg["25pc"] == pytest.approx(np.quantile(x, 0.25))
        assert agg["50pc"] == pytest.approx(np.median(x))


def test_nnunet_summary_json(formats):
    _, nn, rows = formats
    validate_nnunet(nn, METRICS)
    assert len(nn["metric_per_case"]) == 32
    first = nn["metric_per_case"][0]
    assert first["prediction_file"].endswith("case_001.npz") and first["reference_file"].endswith("case_001")
    for m in METRICS:
        x = np.array([float(r[m]) for r in rows])
        assert nn["mean"]["1"][m] == pytest.approx(x.mean())
        assert [e["metrics"]["1"][m] for e in nn["metric_per_case"]] == x.tolist()


def test_validators_reject_wrong_shapes(formats):
    gc, nn, _ = formats
    with pytest.raises(AssertionError):
        validate_grand_challenge({"case": gc["case"]}, METRICS)
    with pytest.raises(AssertionError):
        validate_nnunet({**nn, "mean": {"0": nn["mean"]["1"]}}, METRICS)


def test_nan_is_null_in_the_formats():
    from ambiseg_metrics.files.cases import CaseTable
    from ambiseg_metrics.files.formats import format_text

    t = CaseTable([{"case": "a", "n_pred": 1, "n_gt": 2, "ci": math.nan},
                   {"case": "b", "n_pred": 2, "n_gt": 2, "ci": 0.5}], ("ci",))
    gc = json.loads(format_text("grand-challenge", t))
    assert gc["case"]["ci"] == {"0": None, "1": 0.5} and gc["aggregates"]["ci"]["count"] == 1
    assert gc["aggregates"]["ci"]["std"] is None
    nn = json.loads(format_text("nnunet", t))
    assert nn["mean"]["1"]["ci"] == 0.5  # NaN-ignoring, as nnU-Net's np.nanmean
    with pytest.raises(ValueError, match="unknown format"):
        format_text("csv", t)


def test_format_dir_must_exist_and_not_be_an_input(tmp_path, capsys):
    preds, gts = example_paths()
    flags = ["--example", "--no-progress", "--format", "nnunet", "--format-dir"]
    assert main([*flags, str(tmp_path / "no")]) == 2
    assert main([*flags, str(gts)]) == 2
    err = capsys.readouterr().err
    assert "no such folder" in err and "inside the input folder" in err


def test_subset_sizes():
    assert subset_sizes(16) == [1, 2, 4, 8, 16]
    assert subset_sizes(12) == [1, 2, 4, 8, 12]
    assert subset_sizes(1) == [1]


def test_sample_curve_matches_direct_evaluation():
    cases = discover_cases(*example_paths())[:4]
    curve = sample_curve(cases, repeats=3, seed=1)
    rows = {(r["metric"], r["n"]): r for r in curve.rows}
    full = [evaluate(read_source(c.pred), read_source(c.gt)) for c in cases]
    first4 = [evaluate(read_source(c.pred)[:4], read_source(c.gt)) for c in cases]
    for m in METRICS:
        r = rows[(m, 16)]  # every subset of size N is the whole set
        assert r["first_mean"] == pytest.approx(np.mean([f[m] for f in full]))
        assert r["random_mean"] == pytest.approx(r["first_mean"]) and r["within_case_sd"] == pytest.approx(0)
        assert rows[(m, 4)]["first_mean"] == pytest.approx(np.mean([f[m] for f in first4]))
    assert math.isnan(rows[("ci", 1)]["first_mean"]) and rows[("ci", 1)]["n_cases"] == 0
    assert rows[("ged_sample_diversity", 1)]["first_mean"] == 0  # V-statistic: one sample, only self-pairs
    assert rows[("ged", 2)]["within_case_sd"] > 0
    assert sample_curve(cases, repeats=3, seed=1).rows == curve.rows  # seeded


def test_sample_curve_flag_prints_and_writes(tmp_path, capsys):
    out = tmp_path / "curve.csv"
    code = main(["--example", "--no-progress", "--bootstrap", "100", "--metrics", "ged,ci",
                 "--sample-curve", str(out), "--sample-repeats", "2"])
    stdout = capsys.readouterr().out
    assert code == 0 and "sample curve" in stdout and "V-statistic" in stdout
    rows = list(csv.DictReader(out.open()))
    expected = [(m, str(n)) for m in ("ged", "ci") for n in (1, 2, 4, 8, 16)]
    assert [(r["metric"], r["n"]) for r in rows] == expected
