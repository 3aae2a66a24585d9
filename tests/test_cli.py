"""End-to-end tests of ``ambiseg-eval`` on temporary folders: layouts, formats, numbers, errors, outputs."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from test_cli_data import LOSSLESS, write_dataset, write_mask

from ambiseg_metrics import METRICS, evaluate
from ambiseg_metrics.files import case_eval
from ambiseg_metrics.files.cli import main
from ambiseg_metrics.files.report import bootstrap_ci

BOOT = "200"  # bootstrap resamples in the tests (the statistic is checked against bootstrap_ci directly)


def run(capsys, *argv):
    code = main([*map(str, argv), "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def same(a: float, b: float) -> bool:
    """Bit-equal floats (NaN equals NaN)."""
    return a == b or (math.isnan(a) and math.isnan(b))


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def assert_no_output(tmp_path, *names):
    for name in names:
        assert not (tmp_path / name).exists(), f"{name} was written by a failed run"
    leftovers = [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    assert not leftovers, leftovers


@pytest.mark.parametrize(("layout", "ext"), LOSSLESS)
def test_every_layout_and_format_gives_the_library_numbers(tmp_path, capsys, layout, ext):
    preds, gts, data = write_dataset(tmp_path, layout, ext, n_cases=3)
    out, js = tmp_path / "r.csv", tmp_path / "s.json"
    code, stdout, err = run(capsys, preds, gts, "--out", out, "--json", js, "--bootstrap", BOOT)
    assert code == 0, err
    rows = read_csv(out)
    assert [r["case"] for r in rows] == sorted(data)
    for row in rows:
        p, g = data[row["case"]]
        expected = evaluate(p, g)
        assert int(row["n_pred"]) == p.shape[0] and int(row["n_gt"]) == g.shape[0]
        for name in METRICS:
            assert float(row[name]) == expected[name], (name, row["case"])
    doc = json.loads(js.read_text())
    direct = [evaluate(*data[c]) for c in sorted(data)]
    for name in METRICS:
        values = np.array([d[name] for d in direct])
        s = doc["summary"][name]
        assert s["n"] == 3
        assert s["mean"] == pytest.approx(values.mean(), abs=1e-15)
        assert s["median"] == pytest.approx(np.median(values), abs=1e-15)
        assert s["std"] == pytest.approx(values.std(ddof=1), abs=1e-15)
        assert s["ci95"] == pytest.approx(list(bootstrap_ci(values, n_boot=int(BOOT), seed=0)), abs=1e-15)
        assert name in stdout
    assert "3 cases" in stdout


def test_float_probabilities_threshold_and_options_reach_the_library(tmp_path, capsys):
    preds, gts, data = write_dataset(tmp_path, "file", ".npy", n_cases=2, kind="float")
    out = tmp_path / "r.csv"
    argv = [preds, gts, "--out", out, "--threshold", "0.3", "--estimator", "unbiased", "--distance", "dice",
            "--variance", "pixel", "--metrics", "ged,ci,ged_cross", "--bootstrap", BOOT]
    code, _, err = run(capsys, *argv)
    assert code == 0, err
    rows = read_csv(out)
    assert list(rows[0]) == ["case", "n_pred", "n_gt", "ged", "ci", "ged_cross"]
    for row in rows:
        expected = evaluate(*data[row["case"]], metrics=["ged", "ci", "ged_cross"], threshold=0.3,
                            estimator="unbiased", distance="dice", variance="pixel")
        for name, value in expected.items():
            assert float(row[name]) == value


def test_mixed_layouts_and_missing_cases(tmp_path, capsys):
    preds, _, data = write_dataset(tmp_path / "a", "folder", ".png", n_cases=3)
    _, gts, _ = write_dataset(tmp_path / "b", "file", ".npz", n_cases=3)  # same seed: same gts
    code, _, err = run(capsys, preds, gts, "--out", tmp_path / "r.csv", "--bootstrap", BOOT)
    assert code == 0, err
    assert len(read_csv(tmp_path / "r.csv")) == 3
    os.remove(gts / "case01.npz")
    code, _, err = run(capsys, preds, gts, "--out", tmp_path / "r2.csv")
    assert code == 2
    assert "case01" in err and "annotations" in err and "--allow-missing" in err
    assert_no_output(tmp_path, "r2.csv")
    code, _, err = run(capsys, preds, gts, "--out", tmp_path / "r2.csv", "--allow-missing",
                       "--bootstrap", BOOT)
    assert code == 0 and "warning" in err and "case01" in err
    assert [r["case"] for r in read_csv(tmp_path / "r2.csv")] == ["case00", "case02"]


def test_jpeg_masks_warn(tmp_path, capsys):
    preds, gts, _ = write_dataset(tmp_path, "folder", ".png", n_cases=2)
    for k, name in enumerate(sorted(os.listdir(gts / "case00"))):
        os.remove(gts / "case00" / name)
        write_mask(gts / "case00" / f"rater{k}.jpg", np.pad(np.ones((9, 13), bool), 2))
    code, out, err = run(capsys, preds, gts, "--bootstrap", BOOT)
    assert code == 0
    assert "warning" in err and "JPEG is lossy" in err and "rater0.jpg" in err and "[and 2 more" in err


def test_single_sample_case_default_and_explicit_metrics(tmp_path, capsys):
    preds, gts, data = write_dataset(tmp_path, "file", ".npy", n_cases=3, seed=4)
    p1 = data["case01"][0][:1]
    np.save(preds / "case01.npy", p1)
    out = tmp_path / "r.csv"
    code, stdout, err = run(capsys, preds, gts, "--out", out, "--bootstrap", BOOT)
    assert code == 0, err
    assert "case 'case01' has N=1, M=3" in err and "ci" in err
    row = {r["case"]: r for r in read_csv(out)}["case01"]
    assert math.isnan(float(row["ci"])) and math.isnan(float(row["diversity_agreement"]))
    assert float(row["ged"]) == evaluate(p1, data["case01"][1], metrics=["ged"])["ged"]
    dmax = evaluate(p1, data["case01"][1], metrics=["max_dice_matching"])["max_dice_matching"]
    assert float(row["max_dice_matching"]) == dmax
    code, _, err = run(capsys, preds, gts, "--out", tmp_path / "x.csv", "--metrics", "ged,ci")
    assert code == 2
    assert "case01.npy" in err and "ci needs at least 2 predictions and 2 annotations" in err and "N=1" in err
    assert_no_output(tmp_path, "x.csv")


# ------------------------------------------------------------------------------------------- bad inputs
def _bad_shape(preds, gts):
    np.save(gts / "case01.npy", np.zeros((3, 5, 5), bool))
    return "case01"


def _bad_corrupt(preds, gts):
    (preds / "case02.npy").write_bytes(b"\x93NUMPY garbage")
    return "case02.npy: cannot read"


def _bad_empty_folder(preds, gts):
    (preds / "case03").mkdir()
    np.save(gts / "case03.npy", np.zeros((3, 13, 17), bool))
    return "case03: empty case folder"


def _bad_extension(preds, gts):
    (preds / "notes.txt").write_text("hello")
    return "notes.txt: unknown mask file extension"


def _bad_values(preds, gts):
    np.save(preds / "case00.npy", np.full((5, 13, 17), 3.0, np.float32))
    return "case00.npy: preds contains 3.0"


def _bad_value_in_folder(preds, gts):
    os.remove(preds / "case01.npy")
    (preds / "case01").mkdir()
    for k in range(3):
        np.save(preds / "case01" / f"s{k}.npy", np.full((13, 17), 0.2 if k != 1 else -1.0, np.float32))
    return "s1.npy: preds contains -1.0"


def _bad_missing(preds, gts):
    os.remove(preds / "case00.npy")
    return "case00"


SPOILERS = [_bad_shape, _bad_corrupt, _bad_empty_folder, _bad_extension, _bad_values, _bad_value_in_folder,
            _bad_missing]


# every error in-process; the process-pool path (errors raised in a worker) on two representative ones
@pytest.mark.parametrize(
    ("spoil", "jobs"), [(s, "1") for s in SPOILERS] + [(_bad_corrupt, "2"), (_bad_values, "2")],
    ids=lambda v: getattr(v, "__name__", v),
)
def test_bad_input_names_the_file_exits_2_writes_nothing(tmp_path, capsys, spoil, jobs):
    preds, gts, _ = write_dataset(tmp_path, "file", ".npy", n_cases=3)
    expected = spoil(preds, gts)
    code, stdout, err = run(capsys, preds, gts, "--out", tmp_path / "r.csv", "--json", tmp_path / "s.json",
                            "--jobs", jobs)
    assert code == 2, err
    assert err.startswith("ambiseg-eval: error:") and expected in err
    assert "Traceback" not in err
    assert_no_output(tmp_path, "r.csv", "s.json")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--metrics", "ged,bogus"], "unknown metric(s) ['bogus']"),
        (["--threshold", "1.5"], "threshold must lie in [0, 1)"),
        (["--estimator", "median"], "invalid choice"),
        (["--jobs", "0"], "--jobs must be >= 1"),
        (["--out", "no/such/dir/r.csv"], "does not exist"),
        (["--example"], "either --example or PREDS GTS"),
    ],
)
def test_usage_errors_exit_2(tmp_path, capsys, argv, message):
    preds, gts, _ = write_dataset(tmp_path, "file", ".npy", n_cases=1)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        code, _, err = run(capsys, preds, gts, *argv)
    finally:
        os.chdir(cwd)
    assert code == 2
    assert message in err


def test_no_arguments_is_a_usage_error(capsys):
    code, _, err = run(capsys)
    assert code == 2 and "PREDS and GTS" in err


def test_existing_output_survives_a_failed_run(tmp_path, capsys):
    preds, gts, _ = write_dataset(tmp_path, "file", ".npy", n_cases=2)
    out = tmp_path / "r.csv"
    out.write_text("previous results\n")
    (preds / "case00.npy").write_bytes(b"junk")
    code, _, err = run(capsys, preds, gts, "--out", out)
    assert code == 2 and "case00.npy" in err
    assert out.read_text() == "previous results\n"


def test_internal_error_exits_1_and_debug_shows_traceback(tmp_path, capsys, monkeypatch):
    preds, gts, _ = write_dataset(tmp_path, "file", ".npy", n_cases=2)

    def broken(*args, **kwargs):
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(case_eval, "evaluate", broken)  # where the runners call it
    code, _, err = run(capsys, preds, gts, "--out", tmp_path / "r.csv")
    assert code == 1 and "internal error: RuntimeError: kernel exploded" in err and "Traceback" not in err
    code, _, err = run(capsys, preds, gts, "--out", tmp_path / "r.csv", "--debug")
    assert code == 1 and "Traceback" in err
    assert_no_output(tmp_path, "r.csv")


def test_interrupted_run_leaves_no_partial_output(tmp_path, capsys, monkeypatch):
    preds, gts, _ = write_dataset(tmp_path, "file", ".npy", n_cases=4)
    real = case_eval.evaluate
    seen = []

    def interrupt_third(*args, **kwargs):
        seen.append(1)
        if len(seen) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(case_eval, "evaluate", interrupt_third)
    code, _, err = run(capsys, preds, gts, "--out", tmp_path / "r.csv", "--json", tmp_path / "s.json")
    assert code == 130 and "no output written" in err
    assert_no_output(tmp_path, "r.csv", "s.json")


def test_failure_while_writing_leaves_no_partial_output(tmp_path, capsys, monkeypatch):
    preds, gts, _ = write_dataset(tmp_path, "file", ".npy", n_cases=2)

    def no_space(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space)
    code, _, err = run(capsys, preds, gts, "--out", tmp_path / "r.csv", "--json", tmp_path / "s.json",
                       "--bootstrap", BOOT)
    # a full disk is not our bug: exit 2 naming the files (issue 13, item 7), nothing written
    assert code == 2 and "No space left" in err and "r.csv" in err and "s.json" in err
    assert_no_output(tmp_path, "r.csv", "s.json")


def test_jobs_2_equals_jobs_1(tmp_path, capsys):
    preds, gts, _ = write_dataset(tmp_path, "folder", ".png", n_cases=5)
    outputs = []
    for jobs in ("1", "2"):
        out, js = tmp_path / f"r{jobs}.csv", tmp_path / f"s{jobs}.json"
        code, stdout, err = run(capsys, preds, gts, "--out", out, "--json", js, "--jobs", jobs,
                                "--bootstrap", BOOT)
        assert code == 0, err
        outputs.append((out.read_text(), json.loads(js.read_text())["summary"]))
    assert outputs[0] == outputs[1]


def test_example_runs_and_matches_the_library(tmp_path, capsys):
    from ambiseg_metrics.examples import example_paths
    from ambiseg_metrics.files.io import discover_cases, read_source

    out = tmp_path / "r.csv"
    code, stdout, err = run(capsys, "--example", "--out", out, "--bootstrap", BOOT)
    assert code == 0, err
    rows = read_csv(out)
    assert len(rows) == 32 and {r["n_pred"] for r in rows} == {"16"} and {r["n_gt"] for r in rows} == {"4"}
    case = discover_cases(*example_paths())[5]
    expected = evaluate(read_source(case.pred), read_source(case.gt))
    assert all(float(rows[5][m]) == expected[m] for m in METRICS)
    assert "32 cases" in stdout and "ged_annotator_diversity" in stdout


def test_help_is_light_and_the_entry_point_runs(tmp_path):
    code = (
        "import sys\n"
        "from ambiseg_metrics.files.cli import main\n"
        "assert main(['--help']) == 0\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'numba', 'torch', 'dask', 'distributed', 'tqdm', 'imageio', 'PIL', 'nibabel', 'tifffile', "
        "'matplotlib'})\n"
        "print('HEAVY', heavy)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "HEAVY []" in r.stdout and "layouts" in r.stdout and "exit codes" in r.stdout
    r = subprocess.run([sys.executable, "-m", "ambiseg_metrics.examples"], capture_output=True, text=True,
                       timeout=120)
    preds, gts = r.stdout.split()
    assert preds.endswith("preds") and gts.endswith("gts")
    r = subprocess.run([sys.executable, "-m", "ambiseg_metrics.files.cli", preds, gts, "--metrics", "ged",
                        "--no-progress", "--bootstrap", "100"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "32 cases" in r.stdout


@pytest.mark.parametrize("preset", ["kohl", "mbh"])
def test_conventions_preset_reaches_the_library(tmp_path, capsys, preset):
    preds, gts, data = write_dataset(tmp_path, "file", ".npy", n_cases=2, seed=9)
    p, g = data["case00"]
    p[:2] = False  # empty masks: where the presets differ (empty pairs skipped / scored 0)
    g[:1] = False
    np.save(preds / "case00.npy", p)
    np.save(gts / "case00.npy", g)
    out, js = tmp_path / "r.csv", tmp_path / "s.json"
    code, stdout, err = run(capsys, preds, gts, "--conventions", preset, "--out", out, "--json", js,
                            "--bootstrap", BOOT)
    assert code == 0, err
    assert f"conventions: {preset} (" in stdout
    rows = {r["case"]: r for r in read_csv(out)}
    for case, (pp, gg) in data.items():
        expected = evaluate(pp, gg, conventions=preset)
        for name in METRICS:
            assert same(float(rows[case][name]), expected[name]), (case, name)
    assert json.loads(js.read_text())["conventions"]["name"] == preset
    # an explicit option overrides the preset
    code, stdout, err = run(capsys, preds, gts, "--conventions", preset, "--estimator", "unbiased",
                            "--out", out, "--metrics", "ged", "--bootstrap", BOOT)
    assert code == 0 and f"{preset}+custom" in stdout and "estimator=unbiased" in stdout
    expected = evaluate(p, g, conventions=preset, estimator="unbiased", metrics=["ged"])["ged"]
    assert same(float(read_csv(out)[0]["ged"]), expected)


def test_unknown_preset_is_a_usage_error(tmp_path, capsys):
    preds, gts, _ = write_dataset(tmp_path, "file", ".npy", n_cases=1)
    code, _, err = run(capsys, preds, gts, "--conventions", "nope")
    assert code == 2 and "invalid choice" in err
