"""Data sets: AmbiBlobs (known mixture) and every loader on small files written in its exact format."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="cimd_model tests need torch (pip install .[model])")

from cimd_model.data import SPECS, load_dataset, split_groups  # noqa: E402
from cimd_model.data.ambiblobs import AmbiBlobs  # noqa: E402
from cimd_model.data.base import binarise  # noqa: E402


def _check_items(ds, c, m, h, w):
    assert ds.in_channels == c and ds.n_annotators == m
    item = ds[0]
    assert set(item) == {"image", "masks", "id"}
    assert item["image"].shape == (c, h, w) and item["image"].dtype == torch.float32
    assert item["masks"].shape == (m, h, w) and item["masks"].dtype == torch.float32
    assert set(torch.unique(item["masks"]).tolist()) <= {0.0, 1.0}
    assert isinstance(item["id"], str) and len(set(ds.ids)) == len(ds)


# ------------------------------------------------------------------------------------------ AmbiBlobs
@pytest.mark.parametrize(("flavour", "c", "m"), [("ct", 1, 4), ("us", 1, 4), ("mri", 4, 2)])
def test_ambiblobs_flavours(flavour, c, m):
    ds = load_dataset(f"ambiblobs-{flavour}", "train", seed=0, n=6, size=32)
    _check_items(ds, c, m, 32, 32)
    assert len(ds) == 6
    assert 0.0 <= float(ds.images.min()) and float(ds.images.max()) <= 1.0
    for i in range(len(ds)):
        modes = ds.modes(i)
        assert abs(sum(p for _, p in modes) - 1.0) < 1e-9
        keys = [mk.tobytes() for mk, _ in modes]
        assert len(set(keys)) == len(keys)  # distinct masks
        # every stored annotation is one of the modes
        for a in ds[i]["masks"].numpy().astype(bool):
            assert a.tobytes() in keys


def test_ambiblobs_is_deterministic_and_prefix_stable():
    a = AmbiBlobs("ct", "test", seed=3, n=5, size=32)
    b = AmbiBlobs("ct", "test", seed=3, n=5, size=32)
    c = AmbiBlobs("ct", "test", seed=4, n=5, size=32)
    longer = AmbiBlobs("ct", "test", seed=3, n=8, size=32)
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    assert not torch.equal(a.images, c.images)
    assert torch.equal(a.images, longer.images[:5]) and torch.equal(a.masks, longer.masks[:5])
    train = AmbiBlobs("ct", "train", seed=3, n=5, size=32)
    assert not torch.equal(a.images, train.images)


def test_ambiblobs_annotations_follow_the_known_mixture():
    ds = AmbiBlobs("ct", "val", seed=0, n=4, size=32, n_annotators=3000)
    for i in range(len(ds)):
        modes = ds.modes(i)
        anns = ds[i]["masks"].numpy().astype(bool)
        for mask, p in modes:
            freq = np.mean([np.array_equal(a, mask) for a in anns])
            assert abs(freq - p) < 4 * np.sqrt(p * (1 - p) / len(anns)) + 1e-3
        expected = ds.marginal(i)
        assert np.abs(anns.mean(0) - expected).max() < 0.05


def test_ambiblobs_has_genuine_ambiguity():
    ds = AmbiBlobs("ct", "train", seed=0, n=40, size=32)
    n_modes = [len(ds.modes(i)) for i in range(len(ds))]
    assert min(n_modes) >= 2 and max(n_modes) >= 4
    assert any(not mask.any() for i in range(len(ds)) for mask, _ in ds.modes(i))  # "sometimes nothing"


def test_load_dataset_errors():
    with pytest.raises(ValueError, match="valid specs") as err:
        load_dataset("lidc", "train")
    assert all(s in str(err.value) for s in SPECS)
    with pytest.raises(ValueError, match="valid specs"):
        load_dataset("ambiblobs-xray", "train")
    with pytest.raises(ValueError, match="split"):
        load_dataset("ambiblobs-ct", "training")
    for spec in ("lidc-pickle:/nope", "lidc-png:/nope", "cimd-lidc:/nope", "msmri:/nope"):
        with pytest.raises(FileNotFoundError, match="/nope"):
            load_dataset(spec, "train")
    with pytest.raises(ValueError, match="path"):
        load_dataset("lidc-png:", "train")


def test_split_groups_is_patient_level_and_seeded():
    groups = [f"p{i}" for i in range(20)]
    s = split_groups(groups, seed=1)
    assert set().union(*s.values()) == set(groups)
    assert not (s["train"] & s["val"]) and not (s["train"] & s["test"]) and not (s["val"] & s["test"])
    assert split_groups(groups, seed=1) == s and split_groups(groups, seed=2) != s
    assert all(split_groups(["a", "b", "c"], seed=0)[k] for k in ("train", "val", "test"))


def test_binarise_thresholds_at_half_scale():
    assert binarise(np.array([0, 1, 100, 128, 255], np.uint8)).tolist() == [False, False, False, True, True]
    assert binarise(np.array([0.0, 0.4, 0.6, 1.0])).tolist() == [False, False, True, True]


# ------------------------------------------------------------------------------------------ fixtures
def _assert_patient_level(split_sets, patient_of):
    seen = {}
    for split, ds in split_sets.items():
        for case in ds.ids:
            p = patient_of(case)
            assert seen.setdefault(p, split) == split, f"patient {p} in {seen[p]} and {split}"


@pytest.fixture
def lidc_pickle(tmp_path):
    rng = np.random.default_rng(0)
    data = {}
    for p in range(6):
        uid = f"1.3.6.1.4.1.14519.5.2.1.6279.6001.{p:04d}"
        for s in range(3):
            masks = [(rng.random((128, 128)) > 0.9).astype(np.uint8) for _ in range(4)]
            data[f"LIDC-IDRI-{p:04d}_slice{s}_{uid[-4:]}"] = {
                "image": rng.random((128, 128)).astype(np.float32),
                "masks": masks,
                "series_uid": uid,
            }
    path = tmp_path / "data_lidc.pickle"
    path.write_bytes(pickle.dumps(data))
    return path, data


def test_lidc_pickle(lidc_pickle):
    path, data = lidc_pickle
    sets = {s: load_dataset(f"lidc-pickle:{path}", s, seed=0) for s in ("train", "val", "test")}
    assert sum(len(d) for d in sets.values()) == len(data)
    _check_items(sets["train"], 1, 4, 128, 128)
    _assert_patient_level(sets, lambda case: case.split("_")[0])
    ds = sets["test"]
    entry = data[ds.ids[0]]
    assert np.allclose(ds[0]["image"][0].numpy(), entry["image"])
    assert np.array_equal(ds[0]["masks"].numpy(), np.stack(entry["masks"]).astype(np.float32))
    assert load_dataset(f"lidc-pickle:{path}", "test", seed=0).ids == ds.ids
    bad = path.parent / "bad.pickle"
    bad.write_bytes(pickle.dumps({"k": {"image": np.zeros((4, 4))}}))
    with pytest.raises(ValueError, match="masks"):
        load_dataset(f"lidc-pickle:{bad}", "train")


def _write_png(path, array):
    import imageio.v3 as iio

    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, array)


def _png_tree(root, patients, rng):
    for p in patients:
        for z in (10.0, 12.5):
            img = rng.integers(0, 255, (180, 180), dtype=np.uint8)
            img[26:154, 26:154] = 7  # the 128x128 centre crop is constant
            img[26, 26] = 200  # its top-left pixel marks the crop position
            _write_png(root / "images" / p / f"z-{z}_c0.png", img)
            for l in range(4):
                gt = np.zeros((180, 180), np.uint8)
                gt[60 + l : 100, 60:100] = 255
                _write_png(root / "gt" / p / f"z-{z}_c0_l{l}.png", gt)


def test_lidc_png_tree(tmp_path):
    rng = np.random.default_rng(0)
    patients = [f"LIDC-IDRI-{i:04d}" for i in range(5)]
    _png_tree(tmp_path / "crops", patients, rng)
    sets = {s: load_dataset(f"lidc-png:{tmp_path / 'crops'}", s, seed=0) for s in ("train", "val", "test")}
    assert sum(len(d) for d in sets.values()) == 10
    _check_items(sets["train"], 1, 4, 128, 128)
    _assert_patient_level(sets, lambda case: case.split("_")[0])
    img = sets["train"][0]["image"][0].numpy()
    assert img[0, 0] == pytest.approx(200 / 255) and img[1, 1] == pytest.approx(7 / 255)
    masks = sets["train"][0]["masks"].numpy()
    for l in range(4):  # gt rows 60+l..99 -> crop rows 34+l..73
        assert masks[l, 34 + l : 74, 34:74].all() and masks[l].sum() == (40 - l) * 40


def test_lidc_png_tree_with_split_folders(tmp_path):
    rng = np.random.default_rng(1)
    _png_tree(tmp_path / "train", ["LIDC-IDRI-0001", "LIDC-IDRI-0002"], rng)
    _png_tree(tmp_path / "test", ["LIDC-IDRI-0003"], rng)
    assert len(load_dataset(f"lidc-png:{tmp_path}", "train")) == 4
    assert len(load_dataset(f"lidc-png:{tmp_path}", "test")) == 2
    with pytest.raises(FileNotFoundError, match="val"):
        load_dataset(f"lidc-png:{tmp_path}", "val")
    (tmp_path / "train" / "gt" / "LIDC-IDRI-0001" / "z-10.0_c0_l3.png").unlink()
    with pytest.raises(FileNotFoundError, match="l3"):
        load_dataset(f"lidc-png:{tmp_path}", "train")


def test_cimd_jpeg_release(tmp_path):
    import imageio.v3 as iio

    root = tmp_path / "LIDC"
    for p in range(4):
        for s in range(2):
            folder = root / f"{p:04d}_{s}"
            folder.mkdir(parents=True)
            img = np.full((128, 128), 90, np.uint8)
            iio.imwrite(folder / f"image_{p:04d}_{s}.jpg", img)
            for l in range(4):
                lab = np.zeros((128, 128), np.uint8)
                lab[32:96, 32:96] = 255  # drawn lesion
                lab[0:16, 0:16] = 100  # a faint smear below half scale: background
                iio.imwrite(folder / f"label{l}_{p:04d}_{s}.jpg", lab, quality=75)
    sets = {s: load_dataset(f"cimd-lidc:{root}", s, seed=0) for s in ("train", "val", "test")}
    assert sum(len(d) for d in sets.values()) == 8
    _check_items(sets["train"], 1, 4, 128, 128)
    _assert_patient_level(sets, lambda case: case.split("_")[0])
    m = sets["train"][0]["masks"][0].numpy()
    assert m[40:88, 40:88].all()  # the lesion survives JPEG
    assert not m[0:16, 0:16].any()  # binarised at 0.5, not > 0
    assert m.sum() == pytest.approx(64 * 64, rel=0.05)
    assert sets["train"][0]["image"][0, 64, 64] == pytest.approx(90 / 255, abs=0.02)


def _nifti(path, vol):
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(vol, np.eye(4)), str(path))


def test_msmri_nifti(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "training"
    shape = (20, 23, 6)
    for p in range(1, 6):
        pat = f"training{p:02d}"
        for tp in (1, 2):
            prefix = f"{pat}_{tp:02d}"
            for k, mod in enumerate(("flair", "mprage", "pd", "t2")):
                vol = (rng.random(shape) * 100 + 10 * k).astype(np.float32)
                _nifti(root / pat / "preprocessed" / f"{prefix}_{mod}_pp.nii", vol)
            for r in (1, 2):
                mask = np.zeros(shape, np.uint8)
                mask[5:9, 5:9, 2] = 1  # lesion on slice 2 for both raters
                if r == 2:
                    mask[10:12, 10:12, 4] = 1  # rater 2 also marks slice 4
                _nifti(root / pat / "masks" / f"{prefix}_mask{r}.nii", mask)
    sets = {s: load_dataset(f"msmri:{tmp_path}", s, seed=0) for s in ("train", "val", "test")}
    _check_items(sets["train"], 4, 2, 32, 32)  # 20x23 padded to multiples of 16
    assert sum(len(d) for d in sets.values()) == 5 * 2 * 2  # lesion slices only
    _assert_patient_level(sets, lambda case: case.split("_")[0])
    ds = sets["train"]
    by_id = {case: ds[i] for i, case in enumerate(ds.ids)}
    s4 = next(v for k, v in by_id.items() if k.endswith("_s004"))
    assert s4["masks"][0].sum() == 0 and s4["masks"][1].sum() == 4  # the raters disagree
    img = s4["image"]
    assert img.shape == (4, 32, 32) and abs(float(img[0][img[0] != 0].mean())) < 0.5  # z-scored
    every = load_dataset(f"msmri:{tmp_path}", "train", seed=0, slices="all", size=24)
    assert every[0]["image"].shape == (4, 24, 24) and len(every) == len(ds) // 2 * 6
    (root / "training01" / "masks" / "training01_01_mask2.nii").unlink()
    with pytest.raises(FileNotFoundError, match="training01_01_mask2"):
        for s in ("train", "val", "test"):
            load_dataset(f"msmri:{tmp_path}", s, seed=0)
