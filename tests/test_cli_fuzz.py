"""A fuzz test of the whole ``ambiseg-eval`` command (issue 13).

Hypothesis builds small random case trees — random layouts and formats (npy, npz, png, tif), shapes (2D,
3D, one-pixel), dtypes (bool, uint8 0/1 and 0/255, big-endian int16, float32, big-endian float64), odd
case names (spaces, dots, NFD Unicode), symlinked cases, hidden files — and at most one fault: corrupt or
truncated bytes, a missing case, a dangling link, mismatched shapes, NaN or out-of-range probabilities, an
empty case folder, an unknown extension, an output path onto an input or two outputs on one file. Each
tree is evaluated by ``ambiseg-eval`` in a separate Python process, and the test asserts:

* the exit code is 0 or 2 — never 1, never a traceback — and it is the one the tree calls for;
* on exit 2 no output file exists, or an existing output file is byte-identical to before;
* no input file is ever changed;
* on exit 0 the CSV equals a direct :func:`ambiseg_metrics.evaluate` on the same arrays, bit for bit.

To keep CI time reasonable the command runs in one long-lived subprocess (a driver that calls the CLI's
``main`` per request with fresh file descriptors 1 and 2, and reports any exception escaping it) instead of
one interpreter start per example. At least 200 examples in CI; more with ``--hypothesis-profile=long``
(README, "Testing").
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cli_data import write_mask, write_stack

from ambiseg_metrics import METRICS, evaluate
from ambiseg_metrics.evaluation import FAMILIES

EXAMPLES = max(200, settings.default.max_examples)

DRIVER = r"""
import json, os, sys, tempfile, traceback
proto = os.fdopen(os.dup(1), "w")
from ambiseg_metrics.files.cli import main
for line in sys.stdin:
    req = json.loads(line)
    out_f, err_f = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    sys.stdout.flush(); sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(out_f.fileno(), 1); os.dup2(err_f.fileno(), 2)
    here = os.getcwd(); os.chdir(req["cwd"])
    code, escaped = None, None
    try:
        code = main(req["argv"])
    except BaseException:
        escaped = traceback.format_exc()
    finally:
        sys.stdout.flush(); sys.stderr.flush()
        os.dup2(saved[0], 1); os.dup2(saved[1], 2); os.close(saved[0]); os.close(saved[1])
        os.chdir(here)
    out_f.seek(0); err_f.seek(0)
    proto.write(json.dumps({"code": code, "escaped": escaped,
                            "stdout": out_f.read().decode("utf-8", "replace"),
                            "stderr": err_f.read().decode("utf-8", "replace")}) + "\n")
    proto.flush()
"""

NAMES = ["c0", "case 1", "x.y", "UPPER", "dash-name", "ünï", "é_nfd"]
FORMATS = [("file", ".npy"), ("file", ".npz"), ("folder", ".npy"), ("folder", ".png"), ("file", ".tif"),
           ("folder", ".tif")]
KINDS = ["bool", "u8_255", "u8_1", ">i2", "f4", ">f8"]
IMAGE_KINDS = ["bool", "u8_255", "u8_1"]
SHAPES_2D = [(5, 7), (1, 9), (6, 6), (1, 1)]
SHAPES_3D = [(2, 3, 4)]
FAULTS = [None] * 8 + ["corrupt", "truncate", "missing_case", "dangling_link", "shape_mismatch", "nan",
                       "out_of_range", "empty_folder", "unknown_ext", "out_into_inputs", "same_outputs",
                       "linked_case", "hidden_file"]
PAIR_METRICS = {name for family in FAMILIES for name in family.names if name in family.needs_pairs}


@pytest.fixture(scope="module")
def cli():
    proc = subprocess.Popen([sys.executable, "-c", DRIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "NUMBA_NUM_THREADS": "1"})

    def call(argv: list[str], cwd: str) -> dict:
        proc.stdin.write(json.dumps({"argv": argv, "cwd": cwd}) + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        assert line, "the CLI driver process died"
        return json.loads(line)

    yield call
    proc.stdin.close()
    proc.wait(timeout=60)


@st.composite
def case_specs(draw, name: str) -> dict:
    pred_fmt, gt_fmt = draw(st.sampled_from(FORMATS)), draw(st.sampled_from(FORMATS))
    three_d = all(fmt[1] in (".npy", ".npz") for fmt in (pred_fmt, gt_fmt)) and draw(st.booleans())
    shape = draw(st.sampled_from(SHAPES_3D if three_d else SHAPES_2D))

    def kind(fmt):
        return draw(st.sampled_from(IMAGE_KINDS if fmt[1] in (".png", ".tif") else KINDS))

    return {"name": name, "n": draw(st.integers(1, 3)), "m": draw(st.integers(1, 3)), "shape": shape,
            "pred_fmt": pred_fmt, "gt_fmt": gt_fmt, "pred_kind": kind(pred_fmt), "gt_kind": kind(gt_fmt),
            "seed": draw(st.integers(0, 2**16))}


@st.composite
def trees(draw) -> dict:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True))
    return {
        "cases": [draw(case_specs(name)) for name in names],
        "fault": draw(st.sampled_from(FAULTS)),
        "junk": draw(st.binary(max_size=40)),
        "allow_missing": draw(st.booleans()),
        "metrics": draw(st.sampled_from([None, None, "ged,hm_iou", "ci,ged"])),
        "threshold": draw(st.sampled_from([None, None, 0.3])),
        "out": draw(st.sampled_from(["none", "new", "existing"])),
        "json": draw(st.booleans()),
        "jobs": draw(st.sampled_from([1] * 49 + [2])),  # processes: ~2-5 s each
    }


def _array(kind: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    p = rng.random(shape)
    if kind == "bool":
        return p > 0.5
    if kind == "u8_255":
        return ((p > 0.5) * 255).astype(np.uint8)
    if kind == "u8_1":
        return (p > 0.5).astype(np.uint8)
    if kind == ">i2":
        return ((p > 0.5) * 7).astype(">i2")
    return p.astype(np.float32 if kind == "f4" else ">f8")


def _write_side(root: Path, name: str, stack: np.ndarray, fmt: tuple[str, str]) -> Path:
    layout, ext = fmt
    if layout == "file":
        path = root / f"{name}{ext}"
        write_stack(path, stack)
        return path
    folder = root / name
    folder.mkdir()
    for k, mask in enumerate(stack):
        write_mask(folder / f"m{k:02d}{ext}", mask)
    return folder


def _files(path: Path) -> list[Path]:
    return sorted(path.iterdir()) if path.is_dir() else [path]


def _build(base: Path, tree: dict) -> tuple[dict, int]:
    """Write the tree; return {case: (preds, gts)} that must appear in the CSV and the expected exit code."""
    preds, gts, extra = base / "preds", base / "gts", base / "extra"
    for d in (preds, gts, extra):
        d.mkdir()
    fault, expected_code = tree["fault"], 0
    data: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    paths: dict[str, tuple[Path, Path]] = {}
    for i, c in enumerate(tree["cases"]):
        rng = np.random.default_rng(c["seed"])
        pk, gk = c["pred_kind"], c["gt_kind"]
        if i == 0 and fault in ("nan", "out_of_range") and c["pred_fmt"][1] not in (".png", ".tif"):
            pk = "f4"
        p = np.stack([_array(pk, c["shape"], rng) for _ in range(c["n"])])
        g = np.stack([_array(gk, c["shape"], rng) for _ in range(c["m"])])
        if i == 0 and fault in ("nan", "out_of_range") and pk == "f4":
            p = p.copy()
            p.flat[0] = np.nan if fault == "nan" else 1.5
            expected_code = 2
        if i == 0 and fault == "shape_mismatch":
            other = (7, 5) if len(c["shape"]) == 2 else (3, 3, 3)
            g = np.stack([_array(gk, other, rng) for _ in range(c["m"])])
            expected_code = 2
        name = c["name"]
        pred_name = name
        gt_name = unicodedata.normalize("NFD", name) if name.endswith("_nfd") else name
        paths[name] = (_write_side(preds, pred_name, p, c["pred_fmt"]),
                       _write_side(gts, gt_name, g, c["gt_fmt"]))
        data[unicodedata.normalize("NFC", name)] = (p, g)
    first = tree["cases"][0]["name"]
    first_pred = paths[first][0]
    victim = _files(first_pred)[0]
    if fault == "corrupt":
        victim.write_bytes(tree["junk"])
        expected_code = 2
    elif fault == "truncate":
        if victim.suffix in (".npy", ".npz"):
            victim.write_bytes(victim.read_bytes()[: max(1, victim.stat().st_size // 2)])
        else:
            victim.write_bytes(tree["junk"])
        expected_code = 2
    elif fault == "missing_case":
        gone = paths[first][1]
        shutil.rmtree(gone) if gone.is_dir() else gone.unlink()
        del data[unicodedata.normalize("NFC", first)]
        if not tree["allow_missing"] or not data:
            expected_code = 2
    elif fault == "dangling_link":
        os.symlink(extra / "nowhere.npy", preds / "zz_dangling.npy")
        os.symlink(extra / "nowhere.npy", gts / "zz_dangling.npy")
        expected_code = 2
    elif fault == "empty_folder":
        (preds / "zz_empty").mkdir()
        (gts / "zz_empty").mkdir()
        expected_code = 2
    elif fault == "unknown_ext":
        (preds / "notes.txt").write_text("not a mask")
        expected_code = 2
    elif fault == "linked_case":
        moved = extra / first_pred.name
        first_pred.rename(moved)
        os.symlink(moved, first_pred)
    elif fault == "hidden_file":
        (first_pred if first_pred.is_dir() else preds).joinpath(".DS_Store").write_bytes(tree["junk"])
    if expected_code == 0 and tree["metrics"] and "ci" in tree["metrics"].split(","):
        if any(p.shape[0] < 2 or g.shape[0] < 2 for p, g in data.values()):
            expected_code = 2  # an explicitly requested metric undefined for a case
    return data, expected_code


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def _inputs(base: Path) -> dict[str, bytes]:
    return _snapshot(base / "preds") | _snapshot(base / "gts") | _snapshot(base / "extra")


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(tree=trees())
def test_cli_fuzz(cli, tree):
    base = Path(tempfile.mkdtemp(prefix="ambiseg-fuzz-"))
    try:
        data, expected_code = _build(base, tree)
        out, js = base / "out" / "results.csv", base / "out" / "summary.json"
        out.parent.mkdir()
        argv = [str(base / "preds"), str(base / "gts"), "--bootstrap", "20", "--no-progress"]
        if tree["out"] == "existing":
            out.write_bytes(b"previous results\n")
        if tree["out"] != "none":
            argv += ["--out", str(out)]
        if tree["json"]:
            argv += ["--json", str(js)]
        if tree["fault"] == "out_into_inputs":
            argv += ["--out", str(_files(next((base / "preds").iterdir()))[0])]
            expected_code = 2
        if tree["fault"] == "same_outputs":
            argv += ["--out", str(out), "--json", str(out)]
            expected_code = 2
        if tree["allow_missing"]:
            argv.append("--allow-missing")
        if tree["metrics"]:
            argv += ["--metrics", tree["metrics"]]
        if tree["threshold"] is not None:
            argv += ["--threshold", str(tree["threshold"])]
        argv += ["--jobs", str(tree["jobs"])]
        inputs_before = _inputs(base)
        outputs_before = _snapshot(base / "out")

        result = cli(argv, str(base))

        assert result["escaped"] is None, result["escaped"]
        assert result["code"] in (0, 2), result
        assert "Traceback" not in result["stderr"] and "internal error" not in result["stderr"], result
        assert result["code"] == expected_code, (tree["fault"], result["stderr"])
        assert _inputs(base) == inputs_before
        if result["code"] == 2:
            assert _snapshot(base / "out") == outputs_before
            assert not [p for p in os.listdir(base / "out") if p.endswith(".tmp")]
            return
        if tree["out"] == "none":
            return
        lines = out.read_text().splitlines()
        header = lines[0].split(",")
        rows = {r["case"]: r for r in csv.DictReader(lines)}
        assert sorted(rows) == sorted(data)
        wanted = tree["metrics"].split(",") if tree["metrics"] else list(METRICS)
        assert header == ["case", "n_pred", "n_gt", *wanted]
        kwargs = {} if tree["threshold"] is None else {"threshold": tree["threshold"]}
        for name, (p, g) in data.items():
            small = p.shape[0] < 2 or g.shape[0] < 2
            names = [m for m in wanted if not (small and m in PAIR_METRICS)]
            expected = evaluate(p, g, metrics=names, **kwargs)
            row = rows[name]
            assert int(row["n_pred"]) == p.shape[0] and int(row["n_gt"]) == g.shape[0]
            for metric in wanted:
                value = expected[metric] if metric in expected else math.nan
                assert _same(float(row[metric]), value), (name, metric, row[metric], value)
    finally:
        shutil.rmtree(base, ignore_errors=True)
