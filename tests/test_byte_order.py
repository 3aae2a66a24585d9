"""Issue 13, item 6: every byte order and every dtype numpy can load gives the numbers of its native form."""

from __future__ import annotations

import numpy as np
import pytest

import ambiseg_metrics as am
from ambiseg_metrics.files.cli import main

FUNCTIONS = {
    "ged": am.ged,
    "ci_score": am.ci_score,
    "hungarian_iou": am.hungarian_iou,
    "combined_sensitivity": am.combined_sensitivity,
    "diversity_agreement": am.diversity_agreement,
    "evaluate": lambda p, g: am.evaluate(p, g)["ged"],
    "ncc": am.ncc,
    "dice_soft": am.dice_soft,
}

FLOATS = ["f2", "f4", "f8"] + (["g"] if np.dtype("g").itemsize > 8 else [])
INTEGERS = ["i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8"]
ORDERS = ["<", ">"]


def _data():
    rng = np.random.default_rng(7)
    p = rng.random((4, 9, 11))
    g = rng.random((3, 9, 11)) > 0.45
    return p, g


def _cast(a: np.ndarray, code: str, order: str) -> np.ndarray:
    dt = np.dtype(code).newbyteorder(order)
    if dt.kind in "iu":
        a = (a > 0.5) * 3  # nonzero = foreground
    return a.astype(dt)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@pytest.mark.parametrize("code", FLOATS + INTEGERS)
@pytest.mark.parametrize("order", ORDERS)
def test_byte_order_does_not_change_the_numbers(name, code, order):
    f = FUNCTIONS[name]
    p, g = _data()
    if name in ("ncc", "dice_soft") and np.dtype(code).kind != "f":
        p = p > 0.5  # binary samples
        native = f(p, g)
        swapped = f(_cast(p.astype(float), code, order), g.astype(np.dtype("u2").newbyteorder(order)))
    else:
        native = f(_cast(p, code, "="), g)
        swapped = f(_cast(p, code, order), g.astype(np.dtype("i4").newbyteorder(order)))
    assert np.array_equal(np.asarray(native), np.asarray(swapped), equal_nan=True)


@pytest.mark.parametrize("code", ["f4", "f8", "i2", "u4"])
def test_big_endian_npy_through_the_cli(tmp_path, capsys, code):
    p, g = _data()
    for side, arr in (("preds", p), ("gts", g.astype(float))):
        (tmp_path / side).mkdir()
        for order in ORDERS:
            name = "case_big" if order == ">" else "case_little"
            np.save(tmp_path / side / f"{name}.npy", _cast(arr, code, order))
    code_, _, err = main([str(tmp_path / "preds"), str(tmp_path / "gts"), "--out", str(tmp_path / "r.csv"),
                          "--no-progress", "--bootstrap", "20"]), *capsys.readouterr()
    assert code_ == 0, err
    rows = (tmp_path / "r.csv").read_text().splitlines()
    big, little = rows[1].split(",")[1:], rows[2].split(",")[1:]
    assert big == little
