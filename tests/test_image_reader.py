"""The direct Pillow reader of ``.png/.jpg/.bmp`` masks gives what imageio's Pillow plugin gave (issue 20):
the same array (values, dtype, shape) for every image mode a mask may come in, and it does not import
optional plugins or probe every format for each file."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from ambiseg_metrics.files.io import InputFileError, read_file


def _imageio_reference(path) -> np.ndarray:
    """What io._read_image returned before issue 20 (imageio, palette indices kept)."""
    import imageio.v3 as iio

    with Image.open(path) as im:
        if im.mode in ("P", "PA"):
            im.load()
            a = np.asarray(im)
        else:
            a = None
    if a is None:
        a = np.asarray(iio.imread(path, plugin="pillow"))
    if a.ndim == 3 and a.shape[-1] in (2, 3, 4):
        a = a[..., 0]
    return a


def _images(rng: np.random.Generator) -> dict[str, Image.Image]:
    m = rng.random((9, 11)) > 0.6
    u8 = (m * 255).astype(np.uint8)
    labels = rng.integers(0, 4, (9, 11)).astype(np.uint8)
    u16 = (m * 40000).astype(np.uint16)
    palette = Image.fromarray(labels, mode="L").convert("P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 12))
    return {
        "L": Image.fromarray(u8),
        "1": Image.fromarray(m),
        "labels": Image.fromarray(labels),
        "I16": Image.fromarray(u16),
        "RGB": Image.fromarray(np.stack([u8] * 3, -1)),
        "RGBA": Image.fromarray(np.stack([u8, u8, u8, np.full_like(u8, 200)], -1)),
        "LA": Image.fromarray(np.stack([u8, np.full_like(u8, 255)], -1)),
        "P": palette,
    }


@pytest.mark.parametrize("ext", [".png", ".bmp"])
@pytest.mark.parametrize("seed", [0, 1])
def test_same_arrays_as_imageio(tmp_path, ext, seed):
    for name, image in _images(np.random.default_rng(seed)).items():
        path = tmp_path / f"{name}{ext}"
        try:
            image.save(path)
        except (OSError, KeyError, ValueError):  # BMP has no 16-bit grey / LA
            continue
        ours, ref = read_file(path), _imageio_reference(path)
        assert ours.dtype == ref.dtype and ours.shape == ref.shape, (name, ext, ours.dtype, ref.dtype)
        np.testing.assert_array_equal(ours, ref, err_msg=f"{name}{ext}")
        assert ours.flags.writeable


def test_a_mislabelled_file_is_still_read(tmp_path):
    """A PNG saved under .jpg (or the reverse) is identified by its content, as before."""
    m = (np.random.default_rng(2).random((8, 8)) > 0.5).astype(np.uint8) * 255
    Image.fromarray(m).save(tmp_path / "x.jpg", format="PNG")
    np.testing.assert_array_equal(read_file(tmp_path / "x.jpg"), m)


def test_animated_png_reads_every_frame_as_imageio_did(tmp_path):
    frames = [Image.fromarray(np.full((5, 6), v, np.uint8)) for v in (0, 255, 7)]
    path = tmp_path / "anim.png"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    ours = read_file(path)
    import imageio.v3 as iio

    np.testing.assert_array_equal(ours, np.asarray(iio.imread(path, plugin="pillow")))
    assert ours.shape == (3, 5, 6)


def test_colour_image_still_refused(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 1] = 255
    Image.fromarray(rgb).save(tmp_path / "c.png")
    with pytest.raises(InputFileError, match="colour image"):
        read_file(tmp_path / "c.png")


def test_no_optional_plugin_import_per_file(tmp_path, monkeypatch):
    """imageio's Pillow plugin tried ``import pillow_heif`` for every file (a failed import searches
    sys.path each time); the reader must not import anything per file."""
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
    read_file(tmp_path / "a.png")  # first call: may import Pillow's PNG plugin
    calls = []
    real_import = __builtins__["__import__"] if isinstance(__builtins__, dict) else __builtins__.__import__

    def spy(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and name not in sys.modules:
            calls.append(name)
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr("builtins.__import__", spy)
    for _ in range(3):
        read_file(tmp_path / "a.png")
    assert calls == []


def test_a_cmyk_jpeg_reads_as_its_grey_values_not_as_zeros(tmp_path):
    """A CMYK JPEG of a grey mask keeps the mask in K (C = M = Y = 0): it read as all zeros (the three
    colour channels taken as grey, K dropped as if it were alpha) — a silently empty mask."""
    m = np.zeros((16, 16), np.uint8)
    m[4:10, 3:12] = 255
    Image.fromarray(m).convert("CMYK").save(tmp_path / "c.jpg")
    np.testing.assert_array_equal(read_file(tmp_path / "c.jpg") > 127, m > 127)


@pytest.mark.parametrize("width", [2, 3, 4])
def test_animated_png_of_narrow_frames_is_not_taken_for_colour(tmp_path, width):
    """The channel check looks at each frame, not at the stack: 2 grey frames of 4 x ``width`` pixels are
    a (2, 4, width) stack, not a 4 x ``width`` image with ``width`` colour channels (which dropped a
    frame, or refused a mask as colour, before)."""
    frames = [np.full((4, width), v, np.uint8) for v in (0, 255)]
    frames[0][1, 0] = 9
    path = tmp_path / "anim.png"
    Image.fromarray(frames[0]).save(path, save_all=True, append_images=[Image.fromarray(frames[1])])
    np.testing.assert_array_equal(read_file(path), np.stack(frames))


def test_animated_png_of_rgba_frames_is_read_grey_frame_by_frame(tmp_path):
    frames = [np.repeat(np.full((5, 6, 1), v, np.uint8), 4, axis=2) for v in (3, 200)]
    for f in frames:
        f[..., 3] = 255
    path = tmp_path / "anim.png"
    first, second = (Image.fromarray(f, "RGBA") for f in frames)
    first.save(path, save_all=True, append_images=[second])
    np.testing.assert_array_equal(read_file(path), np.stack([f[..., 0] for f in frames]))
