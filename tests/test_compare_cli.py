"""``ambiseg-eval compare`` end to end: the shipped worse model is found, a copy of a folder is not."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from ambiseg_metrics.examples import example_compare_paths
from ambiseg_metrics.files.cli import main
from ambiseg_metrics.files.compare import COLUMNS

FAST = ["--no-progress", "--bootstrap", "500", "--permutations", "2000"]


def run(capsys, *argv):
    code = main(["compare", *map(str, argv), *FAST])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def example_json(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cmp")
    good, worse, gts = example_compare_paths()
    code = main(["compare", str(good), str(worse), str(gts), "--names", "good,worse", "--json",
                 str(tmp / "c.json"), "--out", str(tmp / "c.csv"), *FAST])
    assert code == 0
    return json.loads((tmp / "c.json").read_text()), (tmp / "c.csv").read_text()


def test_the_worse_example_model_is_detected(example_json):
    doc, _ = example_json
    rows = {r["metric"]: r for r in doc["comparison"]["rows"]}
    assert doc["comparison"]["n_cases"] == 32 and doc["comparison"]["dropped"] == 0
    for metric, sign in (("ged", -1), ("ci", 1), ("hm_iou", 1)):
        r = rows[metric]
        assert r["model_a"] == "good" and r["better"] == "good"
        assert sign * r["mean_diff"] > 0 and sign * r["ci_low"] > 0 and sign * r["ci_high"] > 0
        assert r["p_perm_holm"] < 0.05 and r["p_wilcoxon_holm"] < 0.05
        assert r["wins_a"] > r["wins_b"]
    assert rows["ged_annotator_diversity"]["mean_diff"] == 0  # the annotations are shared


def test_outputs_agree(example_json):
    doc, text = example_json
    rows = list(csv.DictReader(text.splitlines()))
    assert tuple(rows[0]) == COLUMNS and len(rows) == len(doc["comparison"]["rows"])
    for r, j in zip(rows, doc["comparison"]["rows"], strict=True):
        assert float(r["mean_diff"]) == j["mean_diff"] and float(r["p_perm"]) == j["p_perm"]
    assert set(doc["models"]) == {"good", "worse"} and len(doc["models"]["good"]["cases"]) == 32


def test_a_folder_against_its_copy_gives_zero_and_p_one(tmp_path, capsys):
    good, _, gts = example_compare_paths()
    copy = tmp_path / "copy"
    shutil.copytree(good, copy)
    code, out, err = run(capsys, good, copy, gts, "--json", tmp_path / "c.json")
    assert code == 0, err
    rows = json.loads((tmp_path / "c.json").read_text())["comparison"]["rows"]
    assert len(rows) == 10
    for r in rows:
        assert r["mean_diff"] == 0 and r["ci_low"] == 0 and r["ci_high"] == 0
        assert r["p_perm"] == 1 and r["p_wilcoxon"] == 1 and r["p_perm_holm"] == 1
        assert r["ties"] == 32 and r["better"] == ""


def test_different_case_sets_exit_2_unless_allowed(tmp_path, capsys):
    good, worse, gts = example_compare_paths()
    partial = tmp_path / "partial"
    shutil.copytree(worse, partial)
    for name in ("case_003.npz", "case_017.npz"):
        (partial / name).unlink()
    out_json = tmp_path / "c.json"
    code, out, err = run(capsys, good, partial, gts, "--json", out_json)
    assert code == 2 and "case_003" in err and "--allow-missing" in err
    assert not out_json.exists()
    code, out, err = run(capsys, good, partial, gts, "--json", out_json, "--allow-missing")
    assert code == 0, err
    doc = json.loads(out_json.read_text())["comparison"]
    assert doc["n_cases"] == 30 and doc["dropped"] == 2
    assert "30 cases compared (2 dropped)" in out and "2 case(s)" in err


@pytest.mark.parametrize(("args", "message"), [
    (["only_one"], "at least two model folders"),
    (["--names", "a"], "--names"),
    (["--names", "a,a"], "distinct"),
    (["--metrics", "nope"], "unknown metric"),
    (["--html-metric", "ci", "--metrics", "ged", "--html", "x.html"], "--html-metric"),
])
def test_usage_errors_exit_2(tmp_path, capsys, args, message):
    good, worse, gts = example_compare_paths()
    argv = args if args == ["only_one"] else [good, worse, gts, *args]
    code, out, err = run(capsys, *argv)
    assert code == 2 and message in err


def test_output_inside_an_input_folder_is_refused(tmp_path, capsys):
    good, worse, gts = example_compare_paths()
    copy = tmp_path / "copy"
    shutil.copytree(good, copy)
    code, out, err = run(capsys, copy, worse, gts, "--out", copy / "c.csv")
    assert code == 2 and "inside the input folder" in err and not (copy / "c.csv").exists()


def test_the_example_data_are_regenerated_exactly(tmp_path):
    """make_examples.py reproduces the shipped data, the worse model included, bit for bit."""
    import numpy as np

    from ambiseg_metrics.examples.make_examples import generate

    generate(tmp_path, n_cases=32)
    good, worse, gts = example_compare_paths()
    for shipped, folder in ((good, "preds"), (worse, "preds_worse")):
        files = sorted(shipped.glob("*.npz"))
        assert len(files) == 32
        for f in files:
            assert np.array_equal(np.load(f)["masks"], np.load(tmp_path / folder / f.name)["masks"]), f
    pngs = sorted(p.relative_to(gts) for p in gts.rglob("*.png"))
    assert pngs == sorted(p.relative_to(tmp_path / "gts") for p in (tmp_path / "gts").rglob("*.png"))
    assert all((gts / p).read_bytes() == (tmp_path / "gts" / p).read_bytes() for p in pngs)
