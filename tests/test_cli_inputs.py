"""Issue 13 items 7, 9, 10, 11 and issue 22: odd inputs give exit 2 naming the file, or the right numbers.

* bad arguments (``--seed -1``, ``--bootstrap 0``) and unreadable folders exit 2, never 1;
* multi-valued integer masks are reported (``--strict``: refused), ``--label K`` selects a class,
  ``--grey-probability`` reads 8-bit images as value/255, an explicit ``--threshold`` is never silently
  ignored;
* palette PNGs are read by their indices, the alpha channel of grey+alpha and RGBA PNGs is dropped;
* case names are matched after Unicode NFC normalisation.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tempfile
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ambiseg_metrics import METRICS, evaluate
from ambiseg_metrics.files.cli import main
from ambiseg_metrics.files.io import read_file


def run(capsys, *argv):
    code = main(["--no-progress", "--bootstrap", "20", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _masks(seed: int, r: int, shape=(12, 10)) -> np.ndarray:
    return np.random.default_rng(seed).random((r, *shape)) > 0.5


def _png_folder(root: Path, name: str, arrays: np.ndarray) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    for k, a in enumerate(arrays):
        Image.fromarray(a).save(folder / f"m{k}.png")
    return folder


def _simple_tree(tmp_path: Path, gts_stack: np.ndarray, preds_stack: np.ndarray | None = None):
    preds, gts = tmp_path / "preds", tmp_path / "gts"
    preds.mkdir()
    gts.mkdir()
    p = _masks(1, 3) if preds_stack is None else preds_stack
    np.save(preds / "c1.npy", p)
    np.save(gts / "c1.npy", gts_stack)
    return preds, gts, p


# ------------------------------------------------------------------------------------------ item 7, issue 22
@pytest.mark.parametrize(("argv", "message"), [
    (["--seed", "-1"], "--seed must be >= 0"),
    (["--bootstrap", "0"], "--bootstrap must be >= 1"),
    (["--bootstrap", "-5"], "--bootstrap must be >= 1"),
    (["--label", "1", "--grey-probability"], "do not combine"),
])
def test_bad_arguments_exit_2(tmp_path, capsys, argv, message):
    preds, gts, _ = _simple_tree(tmp_path, _masks(2, 2))
    code, _, err = run(capsys, preds, gts, *argv, "--out", tmp_path / "r.csv")
    assert code == 2, err
    assert message in err and "internal error" not in err
    assert not (tmp_path / "r.csv").exists()


def _as_nobody() -> list[str]:
    if os.geteuid() != 0:
        return []
    tool = shutil.which("setpriv")
    if tool is None:
        pytest.skip("running as root without setpriv: cannot drop privileges")
    return [tool, "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.mark.parametrize("what", ["case folder", "root", "mask file"])
def test_unreadable_input_exits_2_naming_it(what):
    """As an unprivileged user (root reads everything): a PermissionError is the user's, exit 2."""
    base = Path(tempfile.mkdtemp(prefix="ambiseg-perm-"))
    try:
        os.chmod(base, 0o755)
        preds, gts = base / "preds", base / "gts"
        for side, seed in ((preds, 3), (gts, 4)):
            for case in ("c1", "c2"):
                folder = side / case
                folder.mkdir(parents=True)
                for k, m in enumerate(_masks(seed, 2)):
                    np.save(folder / f"m{k}.npy", m)
        for p in base.rglob("*"):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        victim = {"case folder": gts / "c2", "root": preds, "mask file": preds / "c1" / "m1.npy"}[what]
        os.chmod(victim, 0)
        env = {**os.environ, "HOME": "/nonexistent", "NUMBA_CACHE_DIR": str(base / "numba")}
        os.mkdir(base / "numba")
        os.chmod(base / "numba", 0o777)
        proc = subprocess.run([*_as_nobody(), sys.executable, "-m", "ambiseg_metrics", str(preds), str(gts),
                               "--no-progress"], capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 2, proc.stderr
        assert str(victim) in proc.stderr and "Traceback" not in proc.stderr
    finally:
        for p in [base, *base.rglob("*")]:
            try:
                os.chmod(p, 0o755)
            except OSError:
                pass
        shutil.rmtree(base, ignore_errors=True)


# ------------------------------------------------------------------------------------------ item 9
def test_label_map_warns_names_the_file_and_strict_refuses(tmp_path, capsys):
    labels = np.random.default_rng(5).integers(0, 4, (3, 12, 10)).astype(np.uint8)
    preds, gts, _ = _simple_tree(tmp_path, labels)
    code, _, err = run(capsys, preds, gts)
    assert code == 0, err
    assert "gts/c1.npy" in err and "values 0, 1, 2, 3" in err and "--label" in err
    code, _, err = run(capsys, preds, gts, "--strict", "--out", tmp_path / "r.csv")
    assert code == 2 and "gts/c1.npy" in err and "--strict" in err
    assert not (tmp_path / "r.csv").exists()


@pytest.mark.parametrize("label", [0, 2, 3])
def test_label_selects_one_class(tmp_path, capsys, label):
    labels = np.random.default_rng(5).integers(0, 4, (3, 12, 10)).astype(np.int16)
    preds, gts, p = _simple_tree(tmp_path, labels, preds_stack=_masks(1, 3).astype(np.uint8) * label)
    code, _, err = run(capsys, preds, gts, "--label", label, "--out", tmp_path / "r.csv")
    assert code == 0, err
    expected = evaluate(p == label, labels == label)
    got = rows(tmp_path / "r.csv")[0]
    assert all(float(got[m]) == expected[m] or (np.isnan(expected[m]) and got[m] == "nan") for m in METRICS)


def test_label_on_float_masks_is_refused(tmp_path, capsys):
    preds, gts, _ = _simple_tree(tmp_path, _masks(2, 2), preds_stack=np.full((2, 12, 10), 0.7, np.float32))
    code, _, err = run(capsys, preds, gts, "--label", "1")
    assert code == 2 and "preds/c1.npy" in err and "float" in err


def test_grey_probability_reads_8bit_as_value_over_255(tmp_path, capsys):
    rng = np.random.default_rng(9)
    grey = rng.integers(0, 256, (3, 12, 10)).astype(np.uint8)
    preds = _png_folder(tmp_path / "preds", "c1", grey)
    gts = _png_folder(tmp_path / "gts", "c1", (_masks(4, 2) * 255).astype(np.uint8))
    code, _, err = run(capsys, preds.parent, gts.parent, "--grey-probability", "--threshold", "0.3",
                       "--out", tmp_path / "r.csv")
    assert code == 0, err
    expected = evaluate(grey.astype(np.float32) / np.float32(255), _masks(4, 2), threshold=0.3)
    got = rows(tmp_path / "r.csv")[0]
    assert float(got["ged"]) == expected["ged"] and float(got["hm_iou"]) == expected["hm_iou"]
    assert expected["ged"] != evaluate(grey, _masks(4, 2))["ged"]  # the option changed the numbers


def test_explicit_threshold_on_integer_masks_is_not_silently_ignored(tmp_path, capsys):
    grey = np.random.default_rng(9).integers(0, 256, (3, 12, 10)).astype(np.uint8)
    preds, gts, _ = _simple_tree(tmp_path, _masks(2, 2), preds_stack=grey)
    code, _, err = run(capsys, preds, gts, "--threshold", "0.5")
    assert code == 0 and "--threshold 0.5 does not apply" in err and "preds/c1.npy" in err
    code, _, err = run(capsys, preds, gts, "--threshold", "0.5", "--strict")
    assert code == 2 and "preds/c1.npy" in err


def test_negative_values_warn(tmp_path, capsys):
    m = _masks(2, 2).astype(np.int8) * -1
    preds, gts, _ = _simple_tree(tmp_path, m)
    code, _, err = run(capsys, preds, gts)
    assert code == 0 and "values -1, 0" in err


def test_plain_binary_masks_do_not_warn(tmp_path, capsys):
    preds, gts, _ = _simple_tree(tmp_path, (_masks(2, 2) * 255).astype(np.uint8))
    code, _, err = run(capsys, preds, gts)
    assert code == 0 and "warning" not in err, err


# ------------------------------------------------------------------------------------------ item 10, issue 22
def test_palette_png_is_read_by_its_indices(tmp_path, capsys):
    idx = _masks(6, 3).astype(np.uint8)
    folder = tmp_path / "preds" / "c1"
    folder.mkdir(parents=True)
    for k, a in enumerate(idx):
        im = Image.fromarray(a, mode="P")
        im.putpalette([0, 0, 0, 200, 30, 40] + [0] * 762)  # VOC-like: index 1 is red
        im.save(folder / f"m{k}.png")
        assert Image.open(folder / f"m{k}.png").mode == "P"
    assert np.array_equal(read_file(folder / "m0.png"), idx[0])
    gts = _png_folder(tmp_path / "gts", "c1", (_masks(4, 2) * 255).astype(np.uint8))
    code, _, err = run(capsys, tmp_path / "preds", gts.parent, "--out", tmp_path / "r.csv")
    assert code == 0, err
    assert float(rows(tmp_path / "r.csv")[0]["ged"]) == evaluate(idx, _masks(4, 2))["ged"]


@pytest.mark.parametrize("mode", ["LA", "RGBA"])
def test_alpha_channel_is_dropped(tmp_path, mode):
    grey = (_masks(8, 1)[0] * 255).astype(np.uint8)
    alpha = np.where(grey > 0, 40, 255).astype(np.uint8)  # never equal to the grey value
    planes = [grey] if mode == "LA" else [grey, grey, grey]
    Image.fromarray(np.stack([*planes, alpha], axis=-1), mode=mode).save(tmp_path / "m.png")
    assert Image.open(tmp_path / "m.png").mode == mode
    assert np.array_equal(read_file(tmp_path / "m.png"), grey)


# ------------------------------------------------------------------------------------------ item 11
def test_case_names_match_after_nfc_normalisation(tmp_path, capsys):
    nfc = unicodedata.normalize("NFC", "café_ü")
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfc != nfd
    preds, gts = tmp_path / "preds", tmp_path / "gts"
    preds.mkdir()
    gts.mkdir()
    np.save(preds / f"{nfc}.npy", _masks(1, 3))
    np.save(gts / f"{nfd}.npy", _masks(2, 2))
    code, _, err = run(capsys, preds, gts, "--out", tmp_path / "r.csv")
    assert code == 0, err
    assert [r["case"] for r in rows(tmp_path / "r.csv")] == [nfc]


def test_nfc_twins_on_one_side_are_an_error(tmp_path, capsys):
    nfc = unicodedata.normalize("NFC", "é")
    preds, gts = tmp_path / "preds", tmp_path / "gts"
    preds.mkdir()
    gts.mkdir()
    np.save(preds / f"{nfc}.npy", _masks(1, 3))
    np.save(preds / f"{unicodedata.normalize('NFD', nfc)}.npy", _masks(1, 3))
    np.save(gts / f"{nfc}.npy", _masks(2, 2))
    code, _, err = run(capsys, preds, gts)
    assert code == 2 and "appears twice" in err
