"""Readers and case discovery: every format and layout, and every bad-input error naming the file."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
from test_cli_data import LOSSLESS, write_dataset, write_mask, write_stack

from ambiseg_metrics.files.io import (
    Case,
    InputFileError,
    case_name,
    discover_cases,
    mask_extension,
    read_file,
    read_source,
)


def test_mask_extension_and_case_name(tmp_path):
    assert mask_extension("a/B.NII.GZ") == ".nii.gz"
    assert mask_extension("x.nii") == ".nii"
    assert mask_extension("x.jpeg") == ".jpeg"
    assert mask_extension("x.gz") is None
    assert case_name("root/case7.nii.gz") == "case7"
    assert case_name("root/case.v2.npz") == "case.v2"


@pytest.mark.parametrize(("layout", "ext"), LOSSLESS)
def test_every_layout_and_format_reads_back_the_masks(tmp_path, layout, ext):
    preds_root, gts_root, data = write_dataset(tmp_path, layout, ext, n_cases=2)
    cases = discover_cases(preds_root, gts_root)
    assert [c.name for c in cases] == sorted(data)
    for case in cases:
        preds, gts = data[case.name]
        p, g = read_source(case.pred), read_source(case.gt)
        assert p.shape == preds.shape and g.shape == gts.shape
        np.testing.assert_array_equal(p != 0, preds)
        np.testing.assert_array_equal(g != 0, gts)


def test_folder_files_are_read_in_sorted_name_order(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    for k in (2, 0, 1):
        np.save(folder / f"s{k}.npy", np.full((3, 3), k, np.uint8))
    stack = read_source(folder)
    assert [int(s[0, 0]) for s in stack] == [0, 1, 2]


def test_float_npy_kept_as_probabilities(tmp_path):
    a = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    np.save(tmp_path / "p.npy", a)
    np.testing.assert_array_equal(read_file(tmp_path / "p.npy"), a)


def test_multipage_tiff_is_a_stack_and_2d_stack_file_is_one_mask(tmp_path):
    stack = np.zeros((3, 5, 6), np.uint8)
    stack[1, 2, 3] = 1
    write_stack(tmp_path / "c.tif", stack)
    np.testing.assert_array_equal(read_source(tmp_path / "c.tif"), stack)
    np.save(tmp_path / "one.npy", stack[1])
    assert read_source(tmp_path / "one.npy").shape == (1, 5, 6)


def test_nifti_stack_takes_the_last_axis_as_mask_index(tmp_path):
    stack = np.random.default_rng(0).random((4, 3, 5, 6)) > 0.5
    write_stack(tmp_path / "c.nii.gz", stack)
    np.testing.assert_array_equal(read_source(tmp_path / "c.nii.gz") != 0, stack)


def test_grey_rgb_png_is_accepted_colour_png_is_not(tmp_path):
    import imageio.v3 as iio

    m = np.zeros((6, 7), np.uint8)
    m[2:4, 1:5] = 255
    iio.imwrite(tmp_path / "grey.png", np.stack([m, m, m], -1))
    np.testing.assert_array_equal(read_file(tmp_path / "grey.png"), m)
    colour = np.stack([m, np.zeros_like(m), m], -1)
    iio.imwrite(tmp_path / "colour.png", colour)
    with pytest.raises(InputFileError, match=r"colour\.png: colour image"):
        read_file(tmp_path / "colour.png")


def test_jpeg_is_read_with_a_warning(tmp_path):
    m = np.zeros((16, 16), bool)
    m[4:12, 4:12] = True
    write_mask(tmp_path / "a.jpg", m)
    notes = []
    a = read_file(tmp_path / "a.jpg", lambda kind, msg: notes.append((kind, msg)))
    assert a.shape == (16, 16)
    assert len(notes) == 1 and notes[0][0] == "jpeg" and "a.jpg" in notes[0][1] and "lossy" in notes[0][1]


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".tif", ".npy", ".npz", ".nii.gz", ".nii"])
def test_corrupt_file_names_the_file(tmp_path, ext):
    bad = tmp_path / f"broken{ext}"
    bad.write_bytes(b"this is not a mask file at all" * 3)
    with pytest.raises(InputFileError, match=re.escape(f"broken{ext}: cannot read")) as info:
        read_file(bad)
    assert info.value.path == str(bad)


def test_truncated_npy_is_an_input_error(tmp_path):
    np.save(tmp_path / "t.npy", np.ones((50, 50), np.uint8))
    data = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFileError, match=r"t\.npy: cannot read"):
        read_file(tmp_path / "t.npy")


def test_npz_with_several_arrays_needs_masks_key(tmp_path):
    np.savez(tmp_path / "two.npz", a=np.ones((2, 3, 3)), b=np.ones((2, 3, 3)))
    with pytest.raises(InputFileError, match=r"two\.npz: .*'masks'.*\['a', 'b'\]"):
        read_file(tmp_path / "two.npz")
    np.savez(tmp_path / "named.npz", masks=np.ones((2, 3, 3)), other=np.zeros(1))
    assert read_file(tmp_path / "named.npz").shape == (2, 3, 3)


def test_non_numeric_and_empty_arrays_are_rejected(tmp_path):
    np.save(tmp_path / "s.npy", np.array(["a", "b"]))
    with pytest.raises(InputFileError, match=r"s\.npy: holds <U1 data"):
        read_file(tmp_path / "s.npy")
    np.save(tmp_path / "e.npy", np.zeros((0, 4)))
    with pytest.raises(InputFileError, match=r"e\.npy: holds an empty array"):
        read_file(tmp_path / "e.npy")


def test_unknown_extension_and_missing_file(tmp_path):
    (tmp_path / "x.gif").write_bytes(b"GIF89a")
    with pytest.raises(InputFileError, match=r"x\.gif: unknown mask file extension"):
        read_file(tmp_path / "x.gif")
    with pytest.raises(InputFileError, match=r"nope\.npy: no such file"):
        read_source(tmp_path / "nope.npy")


def test_case_folder_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / ".DS_Store").write_bytes(b"")  # hidden files are ignored
    with pytest.raises(InputFileError, match=r"empty: empty case folder"):
        read_source(empty)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    np.save(mixed / "a.npy", np.zeros((4, 4), np.uint8))
    np.save(mixed / "b.npy", np.zeros((4, 5), np.uint8))
    with pytest.raises(InputFileError, match=r"b\.npy: shape \(4, 5\) differs from a\.npy \(4, 4\)"):
        read_source(mixed)
    kinds = tmp_path / "kinds"
    kinds.mkdir()
    np.save(kinds / "a.npy", np.zeros((4, 4), np.uint8))
    np.save(kinds / "b.npy", np.zeros((4, 4), np.float32))
    with pytest.raises(InputFileError, match=r"b\.npy: float32 masks mixed with uint8"):
        read_source(kinds)
    notes = tmp_path / "notes"
    notes.mkdir()
    np.save(notes / "a.npy", np.zeros((4, 4), np.uint8))
    (notes / "readme.txt").write_text("hi")
    with pytest.raises(InputFileError, match=r"readme\.txt: unknown mask file extension"):
        read_source(notes)
    stacked = tmp_path / "stacked"
    stacked.mkdir()
    np.save(stacked / "a.npy", np.zeros((2, 3, 4, 4), np.uint8))
    with pytest.raises(InputFileError, match=r"a\.npy: each file of a case folder must hold one 2D or 3D"):
        read_source(stacked)


def test_stack_file_of_wrong_rank(tmp_path):
    np.save(tmp_path / "c.npy", np.zeros((2, 2, 2, 2, 2), np.uint8))
    with pytest.raises(InputFileError, match=r"c\.npy: a per-case file must hold a stack"):
        read_source(tmp_path / "c.npy")


def _two_roots(tmp_path, pred_names, gt_names):
    for root, names in (("preds", pred_names), ("gts", gt_names)):
        (tmp_path / root).mkdir()
        for name in names:
            np.save(tmp_path / root / f"{name}.npy", np.zeros((2, 3, 3), np.uint8))
    return tmp_path / "preds", tmp_path / "gts"


def test_missing_cases_are_listed(tmp_path):
    preds, gts = _two_roots(tmp_path, ["a", "b", "c"], ["b", "c", "d", "e"])
    with pytest.raises(InputFileError) as info:
        discover_cases(preds, gts)
    message = str(info.value)
    assert "annotations but no predictions" in message and "d, e" in message
    assert "predictions but no annotations" in message and ": a" in message
    assert "allow_missing=True" in message and "--allow-missing" not in message  # the CLI adds its flag
    notes = []
    cases = discover_cases(preds, gts, allow_missing=True, warn=lambda k, m: notes.append((k, m)))
    assert [c.name for c in cases] == ["b", "c"]
    assert notes and notes[0][0] == "missing" and "d, e" in notes[0][1]


def test_discovery_errors(tmp_path):
    with pytest.raises(InputFileError, match="does not exist"):
        discover_cases(tmp_path / "no", tmp_path / "no")
    preds, gts = _two_roots(tmp_path, ["a"], ["b"])
    with pytest.raises(InputFileError, match="no case name is shared"):
        discover_cases(preds, gts, allow_missing=True)
    (preds / "a").mkdir()  # a folder and a stack file for the same case
    with pytest.raises(InputFileError, match=r"case 'a' appears twice"):
        discover_cases(preds, gts)
    (preds / "a").rmdir()
    (gts / "notes.txt").write_text("x")
    with pytest.raises(InputFileError, match=r"notes\.txt: unknown mask file extension"):
        discover_cases(preds, gts)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputFileError, match="holds no cases"):
        discover_cases(empty, gts)


def test_input_file_error_pickles_with_its_path():
    err = pickle.loads(pickle.dumps(InputFileError("x.png: bad", "x.png")))
    assert isinstance(err, ValueError) and str(err) == "x.png: bad" and err.path == "x.png"


def test_arrays_pass_through_and_case_is_a_record():
    a = np.zeros((2, 3, 3), bool)
    assert read_source(a) is a
    assert Case("n", a, a).name == "n"
