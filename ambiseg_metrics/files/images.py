"""Reading one image mask (``.png .jpg .jpeg .bmp``) with Pillow, as imageio's Pillow plugin read it but
without its per-file cost (it tried to import optional plugins such as ``pillow_heif`` and opened each file
twice): a file is opened as the format its extension names first, so Pillow does not probe every plugin.
``tests/test_image_reader.py`` checks that the arrays equal imageio's for every image mode a mask comes in.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .errors import InputFileError
from .png_plain import read_plain_png

__all__ = ["read_image"]


#: Pillow's format for each image extension: a file is opened as that format first, so Pillow does not
#: probe every plugin (nor imageio try to import optional plugins such as pillow_heif) for each file.
_PILLOW_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP"}


def _open_image(path: Path, ext: str):
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(path, formats=[_PILLOW_FORMATS[ext]])
    except UnidentifiedImageError:  # another format under this extension: let Pillow identify it
        return Image.open(path)


def _frame(im) -> np.ndarray:
    """The pixels of the current frame, as imageio's Pillow plugin reads them (without its per-file
    overhead): palette images give their indices (the mask), 32-bit PNG greys become uint16; CMYK
    (which imageio gave as 4 channels, read as an all-zero mask) becomes RGB."""
    if im.mode in ("P", "PA"):  # an index mask with a colour palette: the indices are the mask
        im.load()
        return np.array(im)
    if im.format == "PNG" and im.mode == "I":  # a 16-bit grey PNG decoded as int32
        im = im.convert("I;16" if sys.byteorder == "little" else "I;16B")
    if im.mode == "CMYK":  # a JPEG's grey lies in K: as RGB it is grey again (its 4th channel is no alpha)
        im = im.convert("RGB")
    return np.array(im)


def read_image(path: Path, ext: str) -> np.ndarray:
    """The mask stored in the image file ``path`` (extension ``ext``, one of ``.png .jpg .jpeg .bmp``): a 2D
    array of the stored values; grey stored as RGB(A) or grey+alpha becomes 2D, a colour image is an
    :class:`InputFileError`; an animated PNG gives its frames stacked (as imageio read it). An 8-bit grey
    PNG is read without Pillow once the compiled kernels are loaded (:mod:`.png_plain`, the same array)."""
    if ext == ".png":
        plain = read_plain_png(path)
        if plain is not None:
            return plain
    with _open_image(path, ext) as im:
        if getattr(im, "is_animated", False) and im.format == "PNG":  # APNG: every frame, stacked
            frames = []
            for k in range(im.n_frames):
                im.seek(k)
                frames.append(_grey(_frame(im), path))
            return np.stack(frames)  # (grey frames 2-4 pixels wide are no colour channels)
        return _grey(_frame(im), path)


def _grey(a: np.ndarray, path: Path) -> np.ndarray:
    """One frame's pixels as a 2D mask: grey stored as RGB(A) or grey+alpha becomes 2D (alpha dropped);
    a colour frame is an :class:`InputFileError`."""
    if a.ndim == 3 and a.shape[-1] in (2, 3, 4):
        channels = a.shape[-1] if a.shape[-1] in (1, 3) else a.shape[-1] - 1  # drop alpha
        colour = a[..., :channels]
        grey = all(np.array_equal(colour[..., 0], colour[..., c]) for c in range(1, channels))
        if not grey:
            raise InputFileError(
                f"{path}: colour image (shape {a.shape}); masks must be greyscale/label images "
                "(foreground = nonzero)", path
            )
        a = colour[..., 0]
    return a
