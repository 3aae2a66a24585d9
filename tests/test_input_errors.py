"""Structured input errors: where an error points is in its fields, one message per rule, files by field."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

import ambiseg_metrics as am
from ambiseg_metrics.core._validate import InputError, InputTypeError, pairs_error
from ambiseg_metrics.files.cases import evaluate_case
from ambiseg_metrics.files.io import InputFileError
from ambiseg_metrics.summary import nan_summary


def test_kernel_value_error_carries_side_image_and_mask():
    preds = np.zeros((2, 3, 4, 4), np.float32)
    gts = np.zeros((2, 2, 4, 4), bool)
    preds[1, 2, 0, 3] = 1.5
    with pytest.raises(InputError) as info:
        am.evaluate(preds, gts, batch=True)
    e = info.value
    assert (e.side, e.image, e.index, e.path) == ("preds", 1, 2, None)
    assert isinstance(e, ValueError)


def test_one_message_for_the_value_range_rule_everywhere():
    bad = np.full((2, 3, 3), 0.2)
    bad[1, 0, 2] = np.nan
    gts = np.zeros((2, 3, 3), bool)
    with pytest.raises(InputError) as kernel:
        am.ged(bad, gts)
    with pytest.raises(InputError) as soft:
        am.ncc(bad, gts)
    assert str(kernel.value) == str(soft.value)
    assert (soft.value.side, soft.value.index) == ("preds", 1)


def test_one_message_for_the_pairs_rule():
    one = np.zeros((1, 4, 4), bool)
    two = np.zeros((2, 4, 4), bool)
    messages = []
    for call in (lambda: am.ci_score(one, two), lambda: am.ged(one, two, estimator="unbiased"),
                 lambda: am.multiclass_ged(one.astype(int), two.astype(int), classes=2,
                                           estimator="unbiased")):
        with pytest.raises(InputError) as info:
            call()
        messages.append(str(info.value).split(" needs ")[1])
    assert len(set(messages)) == 1, messages
    assert pairs_error("x", 2, 2) is None and pairs_error("x", 2, 1) is not None


def test_dtype_error_is_both_input_error_and_type_error():
    with pytest.raises(InputTypeError) as info:
        am.ged(np.zeros((2, 3, 3), complex), np.zeros((2, 3, 3), bool))
    assert isinstance(info.value, TypeError) and info.value.side == "preds"


def test_errors_pickle_with_their_fields():
    e = pickle.loads(pickle.dumps(InputError("m", side="gts", image=3, index=1, path="x")))
    assert (str(e), e.side, e.image, e.index, e.path) == ("m", "gts", 3, 1, "x")
    f = pickle.loads(pickle.dumps(InputFileError("n", "p.png")))
    assert isinstance(f, InputError) and f.path == "p.png"


def test_case_folder_error_names_the_mask_file_by_index(tmp_path):
    pred = tmp_path / "preds" / "c"
    pred.mkdir(parents=True)
    for k in range(3):
        a = np.full((4, 4), 0.3, np.float32)
        if k == 2:
            a[1, 1] = 2.0
        np.save(pred / f"s{k}.npy", a)
    with pytest.raises(InputFileError) as info:
        evaluate_case(pred, np.zeros((2, 4, 4), bool))
    assert info.value.path.endswith("s2.npy") and info.value.index == 2
    assert str(info.value).startswith(str(pred / "s2.npy"))


def test_nan_summary_is_the_one_summary():
    s = nan_summary([1.0, math.nan, 3.0], n_boot=50, seed=1)
    assert (s.n, s.n_undefined, s.mean, s.median, s.std) == (2, 1, 2.0, 2.0, pytest.approx(math.sqrt(2)))
    assert 1.0 <= s.ci_low <= s.ci_high <= 3.0
    empty = nan_summary([math.nan])
    assert empty.n == 0 and math.isnan(empty.mean) and math.isnan(empty.ci_low)
    acc = am.MetricAccumulator(["ged"])
    acc.update(np.zeros((2, 2, 4, 4), bool), np.zeros((2, 2, 4, 4), bool))
    assert acc.compute().mean["ged"] == nan_summary(acc.compute().per_image["ged"]).mean
