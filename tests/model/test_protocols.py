"""Named LIDC protocols (``ours``, ``kohl``, ``knegt``) on fixtures in the exact formats of the releases."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

pytest.importorskip("torch", reason="cimd_model tests need torch (pip install .[model])")

from test_data import _png_tree  # noqa: E402

from cimd_model.data import load_dataset  # noqa: E402
from cimd_model.data.protocols import (  # noqa: E402
    KOHL_PATIENTS,
    knegt_split,
    sklearn_train_test_split,
)

SPLITS = ("train", "val", "test")


def _knegt_pickle(path, n_series=13, slices=3, seed=0):
    """``data_lidc.pickle`` as the Prob. U-Net PyTorch port ships it: key -> {"image": float32 (128, 128) in
    [0, 1], "masks": list of 4 uint8 (128, 128) arrays, "series_uid": DICOM series uid}. Keys carry no
    patient id, so only ``series_uid`` groups the slices."""
    rng = np.random.default_rng(seed)
    data = {}
    for _ in range(n_series):
        uid = f"1.3.6.1.4.1.14519.5.2.1.6279.6001.{rng.integers(10**11, 10**12)}"
        for s in range(slices):
            data[f"{uid[-6:]}_{s}"] = {
                "image": rng.random((128, 128)).astype(np.float32),
                "masks": [(rng.random((128, 128)) > 0.9).astype(np.uint8) for _ in range(4)],
                "series_uid": uid,
            }
    path.write_bytes(pickle.dumps(data))
    return data


def test_sklearn_compatible_split_equals_scikit_learn():
    sklearn = pytest.importorskip("sklearn.model_selection")
    items = [f"uid{i:03d}" for i in range(57)]
    for n in (5, 10, 57):
        for state in (0, 1, 42):
            ours = sklearn_train_test_split(items[:n], 0.2, state)
            theirs = sklearn.train_test_split(items[:n], test_size=0.2, random_state=state)
            assert ours == (list(theirs[0]), list(theirs[1]))


def test_knegt_split_is_moses_two_calls():
    uids = [f"1.3.6.{i}" for i in (5, 3, 11, 7, 2, 9, 13, 1, 8, 4)] * 2  # repeated: slices of one series
    got = knegt_split(uids)
    unique = sorted(set(uids))  # np.unique order
    train_val, test = sklearn_train_test_split(unique, 0.2, 0)
    train, val = sklearn_train_test_split(train_val, 0.2, 0)
    assert got == {"train": set(train), "val": set(val), "test": set(test)}
    assert [len(got[s]) for s in SPLITS] == [6, 2, 2]  # ceil(0.2 * 10) = 2, ceil(0.2 * 8) = 2
    sklearn = pytest.importorskip("sklearn.model_selection")
    tv, te = sklearn.train_test_split(np.unique(uids), test_size=0.2, random_state=0)
    tr, va = sklearn.train_test_split(tv, test_size=0.2, random_state=0)
    assert got == {"train": set(tr), "val": set(va), "test": set(te)}


def test_knegt_protocol_on_the_pickle(tmp_path):
    path = tmp_path / "data_lidc.pickle"
    data = _knegt_pickle(path)
    spec = f"lidc-pickle:{path}"
    sets = {s: load_dataset(spec, s, protocol="knegt") for s in SPLITS}
    assert sum(len(d) for d in sets.values()) == len(data)
    uid_of = {k: v["series_uid"] for k, v in data.items()}
    expected = knegt_split(list(uid_of.values()))
    for s, ds in sets.items():
        assert {uid_of[case] for case in ds.ids} == expected[s]  # whole series, the MoSE split
    # the split seed does not apply: the protocol fixes random_state = 0
    assert load_dataset(spec, "test", seed=5, protocol="knegt").ids == sets["test"].ids
    assert load_dataset(spec, "test", seed=5).ids != sets["test"].ids or len(sets["test"]) == 0
    del data[next(iter(data))]["series_uid"]
    path.write_bytes(pickle.dumps(data))
    with pytest.raises(ValueError, match="series_uid"):
        load_dataset(spec, "train", protocol="knegt")


def test_kohl_protocol_reads_the_png_release_folders(tmp_path):
    rng = np.random.default_rng(0)
    folders = {
        "train": ["LIDC-IDRI-0001", "LIDC-IDRI-0002", "LIDC-IDRI-0004"],
        "val": ["LIDC-IDRI-0003"],
        "test": ["LIDC-IDRI-0005"],
    }
    for split, patients in folders.items():
        _png_tree(tmp_path / "lidc_crops" / split, patients, rng)
    spec = f"lidc-png:{tmp_path / 'lidc_crops'}"
    for split, patients in folders.items():
        with pytest.warns(UserWarning, match="not Kohl et al.'s"):
            ds = load_dataset(spec, split, protocol="kohl")
        assert sorted({case.split("_")[0] for case in ds.ids}) == patients
        assert len(ds) == 2 * len(patients)  # two slices per patient in the fixture
    assert KOHL_PATIENTS == {"train": 722, "val": 144, "test": 144}


def test_kohl_protocol_refuses_a_tree_without_the_release_split(tmp_path):
    _png_tree(tmp_path / "flat", [f"LIDC-IDRI-{i:04d}" for i in range(4)], np.random.default_rng(1))
    with pytest.raises(FileNotFoundError, match="kohl protocol"):
        load_dataset(f"lidc-png:{tmp_path / 'flat'}", "train", protocol="kohl")
    assert len(load_dataset(f"lidc-png:{tmp_path / 'flat'}", "train", protocol="ours")) > 0


def test_protocols_only_apply_where_they_are_defined(tmp_path):
    path = tmp_path / "data_lidc.pickle"
    _knegt_pickle(path, n_series=4)
    with pytest.raises(ValueError, match="lidc-png"):
        load_dataset(f"lidc-pickle:{path}", "train", protocol="kohl")
    _png_tree(
        tmp_path / "png", ["LIDC-IDRI-0001", "LIDC-IDRI-0002", "LIDC-IDRI-0003"], np.random.default_rng(2)
    )
    with pytest.raises(ValueError, match="lidc-pickle"):
        load_dataset(f"lidc-png:{tmp_path / 'png'}", "train", protocol="knegt")
    with pytest.raises(ValueError, match="unknown LIDC protocol"):
        load_dataset(f"lidc-pickle:{path}", "train", protocol="phiseg")
