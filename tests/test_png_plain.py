"""The fast reader of 8-bit grey PNGs (files/png_plain.py) gives Pillow's array, or None (and the caller then
reads the file with Pillow) for every file it is not sure of; its compiled unfilter equals the
specification's pixel-by-pixel rule."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import reference as ref
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from ambiseg_metrics.core._kernel_load import load_kernels
from ambiseg_metrics.files import png_plain
from ambiseg_metrics.files.io import InputFileError, read_file
from ambiseg_metrics.files.png_plain import read_plain_png

load_kernels()  # the fast path answers only in a process that loaded the kernels
from ambiseg_metrics.core._png_kernel import unfilter_grey8  # noqa: E402


def _chunk(kind: bytes, body: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(kind + body) if crc is None else crc
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _ihdr(width: int, height: int, depth: int = 8, colour: int = 0, interlace: int = 0) -> bytes:
    return _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace))


def _png(pixels: np.ndarray, kinds: list[int] | None = None, *, pieces: int = 1, level: int = 6,
         before: list[bytes] = (), after: list[bytes] = (), stream: bytes | None = None,
         header: bytes | None = None) -> bytes:
    """A PNG of the (H, W) uint8 ``pixels`` written here from the specification: rows filtered with
    ``kinds`` (default all 0), the zlib stream cut into ``pieces`` IDAT chunks, extra chunks before and
    after them."""
    h, w = pixels.shape
    kinds = [0] * h if kinds is None else kinds
    stream = zlib.compress(ref.png_filter(pixels, kinds).tobytes(), level) if stream is None else stream
    cuts = np.linspace(0, len(stream), pieces + 1).astype(int)
    idat = [_chunk(b"IDAT", stream[a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    return (b"\x89PNG\r\n\x1a\n" + (header or _ihdr(w, h)) + b"".join(before) + b"".join(idat)
            + b"".join(after) + _chunk(b"IEND", b""))


def _pillow(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def _write(tmp_path: Path, data: bytes, name: str = "m.png") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


#: (height, width, how many grey values, seed): 0/255 masks, 3-valued images (many Paeth ties), any bytes
pixels_2d = st.tuples(st.integers(1, 24), st.integers(1, 24), st.sampled_from([2, 3, 256]),
                      st.integers(0, 2**32 - 1))


def _pixels(spec) -> np.ndarray:
    h, w, values, seed = spec
    rng = np.random.default_rng(seed)
    if values == 2:
        return (rng.random((h, w)) < 0.4).astype(np.uint8) * 255
    return rng.integers(0, values, (h, w)).astype(np.uint8)


@given(spec=pixels_2d, kinds_seed=st.integers(0, 2**32 - 1))
def test_unfilter_kernel_equals_the_specification(spec, kinds_seed):
    raw = np.random.default_rng(kinds_seed).integers(0, 256, (spec[0], spec[1] + 1)).astype(np.uint8)
    raw[:, 0] = np.random.default_rng(kinds_seed + 1).integers(0, 5, spec[0])
    out = np.empty((spec[0], spec[1]), np.uint8)
    assert unfilter_grey8(raw, out) == -1
    np.testing.assert_array_equal(out, ref.png_unfilter(raw))


@given(spec=pixels_2d, kinds=st.lists(st.integers(0, 4), min_size=24, max_size=24),
       pieces=st.integers(1, 4), level=st.integers(0, 9), text=st.booleans())
def test_random_plain_pngs_read_as_pillow_reads_them(tmp_path_factory, spec, kinds, pieces, level, text):
    pixels = _pixels(spec)
    extra = [_chunk(b"tEXt", b"Software\x00test"), _chunk(b"pHYs", bytes(9))] if text else []
    path = _write(tmp_path_factory.mktemp("png"),
                  _png(pixels, kinds[:spec[0]], pieces=pieces, level=level, before=extra,
                       after=[_chunk(b"tIME", bytes(7))] if text else []))
    fast = read_plain_png(path)
    assert fast is not None
    expected = _pillow(path)
    assert fast.dtype == expected.dtype == np.uint8 and fast.shape == expected.shape
    np.testing.assert_array_equal(fast, expected)
    np.testing.assert_array_equal(fast, pixels)
    assert fast.flags.writeable and fast.flags.c_contiguous


@pytest.mark.parametrize("kind", [1, 2, 3, 4])
def test_unfilter_kernel_on_small_values_where_paeth_ties(kind):
    """Filtered bytes of 0..3 keep the pixels small, so the Paeth distances tie often, also between
    neighbours of different values (a = 0, b = 2, c = 1: pa = pb = 1); the tie order a, b, c is the
    specification's. Every row of one filter type, and then a random type per row."""
    rng = np.random.default_rng(kind)
    for _ in range(50):
        raw = rng.integers(0, 4, (8, 9)).astype(np.uint8)
        raw[:, 0] = kind
        out = np.empty((8, 8), np.uint8)
        assert unfilter_grey8(raw, out) == -1
        np.testing.assert_array_equal(out, ref.png_unfilter(raw))
        raw[:, 0] = rng.integers(0, 5, 8)
        assert unfilter_grey8(raw, out) == -1
        np.testing.assert_array_equal(out, ref.png_unfilter(raw))


def test_an_unknown_filter_type_is_left_to_pillow(tmp_path):
    pixels = _pixels((4, 5, 256, 0))
    raw = ref.png_filter(pixels, [0, 1, 2, 3])
    out = np.empty((4, 5), np.uint8)
    for row in range(4):
        bad = raw.copy()
        bad[row, 0] = 5
        assert unfilter_grey8(bad, out) == row
        path = _write(tmp_path, _png(pixels, stream=zlib.compress(bad.tobytes())), f"f{row}.png")
        assert read_plain_png(path) is None


@pytest.mark.parametrize("optimize", [False, True])
@pytest.mark.parametrize("level", [0, 1, 9])
def test_masks_saved_by_pillow_take_the_fast_path(tmp_path, optimize, level):
    rng = np.random.default_rng(level)
    mask = np.zeros((64, 80), np.uint8)
    mask[10:40, 5:70] = 255
    mask[rng.random(mask.shape) < 0.05] = 7
    path = tmp_path / "pillow.png"
    Image.fromarray(mask).save(path, optimize=optimize, compress_level=level)
    fast = read_plain_png(path)
    assert fast is not None
    np.testing.assert_array_equal(fast, mask)
    np.testing.assert_array_equal(read_file(path), mask)


def _pillow_file(tmp_path: Path, mode: str, **save) -> Path:
    a = (np.arange(48).reshape(6, 8) % 4 * 60).astype(np.uint8)
    im = Image.fromarray(a).convert(mode)
    path = tmp_path / f"{mode.replace(';', '_')}.png"
    im.save(path, **save)
    return path


@pytest.mark.parametrize("mode", ["1", "I;16", "RGB", "RGBA", "LA", "P"])
def test_other_kinds_of_png_go_to_pillow(tmp_path, mode):
    path = _pillow_file(tmp_path, mode)
    assert read_plain_png(path) is None
    read_file(path)  # still read (by Pillow), as before


def test_grey_with_transparency_goes_to_pillow(tmp_path):
    path = _pillow_file(tmp_path, "L", transparency=0)
    assert read_plain_png(path) is None


def test_animated_png_goes_to_pillow(tmp_path):
    frames = [Image.fromarray(np.full((4, 4), v, np.uint8)) for v in (0, 255)]
    path = tmp_path / "anim.png"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert read_plain_png(path) is None
    assert read_file(path).shape == (2, 4, 4)


PIXELS = (np.arange(30).reshape(5, 6) * 9).astype(np.uint8)


def _bad_files() -> dict[str, bytes]:
    good = _png(PIXELS, [1, 2, 3, 4, 0])
    stream = zlib.compress(ref.png_filter(PIXELS, [0] * 5).tobytes())
    rows = ref.png_filter(PIXELS, [0] * 5).tobytes()
    idat = b"IDAT" + stream
    return {
        "interlaced": _png(PIXELS, header=_ihdr(6, 5, interlace=1)),
        "16-bit": _png(PIXELS, header=_ihdr(6, 5, depth=16)),
        "1-bit, with 8-bit rows": _png(PIXELS, header=_ihdr(6, 5, depth=1)),
        "8-bit palette, with grey rows": _png(PIXELS, header=_ihdr(6, 5, colour=3)),
        "colour type 4": _png(PIXELS, header=_ihdr(6, 5, colour=4)),
        "zero width": _png(PIXELS, header=_ihdr(0, 5)),
        "zero width, a filter byte per row": _png(PIXELS, header=_ihdr(0, 5), stream=zlib.compress(bytes(5))),
        "zero height, no rows": _png(PIXELS, header=_ihdr(6, 0), stream=zlib.compress(b"")),
        "too many pixels": _png(PIXELS, header=_ihdr(1 << 12, (1 << 12) + 1)),
        "IHDR not first": b"\x89PNG\r\n\x1a\n" + _chunk(b"tEXt", b"a\x00b") + good[8:],
        "IHDR of the wrong length": _png(PIXELS, header=_chunk(b"IHDR", struct.pack(">IIBBBBBB", 6, 5, 8, 0,
                                                                                   0, 0, 0, 0))),
        "bad signature": b"\x89PNG\r\n\x1a\x00" + good[8:],
        "bad IDAT CRC": b"\x89PNG\r\n\x1a\n" + _ihdr(6, 5) + _chunk(b"IDAT", stream, crc=zlib.crc32(idat) ^ 1)
        + _chunk(b"IEND", b""),
        "bad IEND CRC": good[:-4] + b"\x00\x00\x00\x00",
        "IDAT CRC one above": b"\x89PNG\r\n\x1a\n" + _ihdr(6, 5)
        + _chunk(b"IDAT", stream, crc=(zlib.crc32(idat) + 1) % 2**32) + _chunk(b"IEND", b""),
        "IDAT CRC one below": b"\x89PNG\r\n\x1a\n" + _ihdr(6, 5)
        + _chunk(b"IDAT", stream, crc=(zlib.crc32(idat) - 1) % 2**32) + _chunk(b"IEND", b""),
        "signature sorting after PNG's": b"\x89PNG\r\n\x1a\x0b" + good[8:],
        "no IHDR, a header's bytes in a text chunk": b"\x89PNG\r\n\x1a\n"
        + _chunk(b"tEXt", struct.pack(">IIBBBBB", 6, 5, 8, 0, 0, 0, 0)) + good[33:],
        "no IHDR, a header's bytes in a critical chunk sorting before it": b"\x89PNG\r\n\x1a\n"
        + _chunk(b"CgBI", struct.pack(">IIBBBBB", 6, 5, 8, 0, 0, 0, 0)) + good[33:],
        "truncated": good[: len(good) // 2],
        "no IEND": good[:-12],
        "no IDAT": b"\x89PNG\r\n\x1a\n" + _ihdr(6, 5) + _chunk(b"IEND", b""),
        "IDATs apart": b"\x89PNG\r\n\x1a\n" + _ihdr(6, 5) + _chunk(b"IDAT", stream[:10])
        + _chunk(b"tEXt", b"a\x00b") + _chunk(b"IDAT", stream[10:]) + _chunk(b"IEND", b""),
        "tRNS": _png(PIXELS, before=[_chunk(b"tRNS", b"\x00\x00")]),
        "acTL": _png(PIXELS, before=[_chunk(b"acTL", bytes(8))]),
        "eXIf": _png(PIXELS, before=[_chunk(b"eXIf", b"MM\x00*\x00\x00\x00\x08\x00\x00")]),
        "unknown private chunk": _png(PIXELS, before=[_chunk(b"prVt", b"x")]),
        "compressed text": _png(PIXELS, before=[_chunk(b"zTXt", b"k\x00\x00" + zlib.compress(b"v" * 99))]),
        "ICC profile": _png(PIXELS, before=[_chunk(b"iCCP", b"p\x00\x00" + zlib.compress(bytes(64)))]),
        "truncated pHYs": _png(PIXELS, before=[_chunk(b"pHYs", bytes(8))]),
        "truncated gAMA": _png(PIXELS, after=[_chunk(b"gAMA", bytes(3))]),
        "over-long sRGB": _png(PIXELS, before=[_chunk(b"sRGB", bytes(2))]),
        "PLTE": _png(PIXELS, before=[_chunk(b"PLTE", bytes(3))]),
        # empty critical chunks (upper-case first letter) sorting before IDAT and IEND: not data, not the end
        "unknown critical chunk before the data": _png(PIXELS, before=[_chunk(b"CgBI", b"")]),
        "unknown critical chunk after the data": _png(PIXELS, after=[_chunk(b"CgBI", b"")]),
        "a row short": _png(PIXELS, stream=zlib.compress(rows[:-1])),
        "a row too many": _png(PIXELS, stream=zlib.compress(rows + bytes(7))),
        "truncated zlib stream": _png(PIXELS, stream=zlib.compress(rows)[:-4]),
        "bytes after the zlib stream": _png(PIXELS, stream=zlib.compress(rows) + b"\x00"),
        "corrupt zlib stream": _png(PIXELS, stream=b"\x78\x9c\xff\xff" + zlib.compress(rows)[4:]),
        "a JPEG": _jpeg_bytes(),
        "empty": b"",
    }


def _jpeg_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(PIXELS).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.mark.parametrize("name", sorted(_bad_files()))
def test_unusual_or_broken_files_go_to_pillow(tmp_path, name):
    path = _write(tmp_path, _bad_files()[name])
    assert read_plain_png(path) is None
    try:  # the file is read (or refused) exactly as without the fast path
        got = read_file(path)
    except InputFileError as exc:
        assert str(path) in str(exc)
    else:
        np.testing.assert_array_equal(got, _pillow(path))


def test_a_well_formed_image_over_the_pixel_limit_goes_to_pillow(tmp_path):
    """4096 x 4097 pixels, one more row than MAX_PIXELS allows (all zero: a 16 KB file)."""
    height, width = 4097, 4096
    assert height * width > png_plain.MAX_PIXELS >= (height - 1) * width
    stream = zlib.compress(bytes(height * (width + 1)), 1)
    path = _write(tmp_path, b"\x89PNG\r\n\x1a\n" + _ihdr(width, height) + _chunk(b"IDAT", stream)
                  + _chunk(b"IEND", b""))
    assert read_plain_png(path) is None
    assert read_file(path).shape == (height, width)  # by Pillow
    at_limit = zlib.compress(bytes((height - 1) * (width + 1)), 1)
    path = _write(tmp_path, b"\x89PNG\r\n\x1a\n" + _ihdr(width, height - 1) + _chunk(b"IDAT", at_limit)
                  + _chunk(b"IEND", b""), "at_the_limit.png")
    assert read_plain_png(path).shape == (height - 1, width)


def test_the_well_formed_file_of_the_broken_ones_takes_the_fast_path(tmp_path):
    """The control for the test above: the same construction, unbroken, is read here."""
    lengths = {b"tIME": 7, b"pHYs": 9, b"gAMA": 4, b"cHRM": 32, b"sRGB": 1, b"sBIT": 1, b"bKGD": 2}
    ignored = [_chunk(kind, bytes(n)) for kind, n in lengths.items()]
    text = [_chunk(b"tEXt", b"k\x00" + bytes(1 << 19))] * 3  # 1.5 MiB of text: Pillow keeps it all
    path = _write(tmp_path, _png(PIXELS, [1, 2, 3, 4, 0], before=ignored[:4] + text, after=ignored[4:]))
    np.testing.assert_array_equal(_pillow(path), PIXELS)
    np.testing.assert_array_equal(read_plain_png(path), PIXELS)


def test_the_limits_stay_below_pillows():
    """Files this path reads are ones Pillow reads without hitting its own limits: at most 64 MiB of text
    (a file of at most MAX_FILE_BYTES holds less) and fewer pixels than its decompression-bomb warning."""
    from PIL import PngImagePlugin

    assert png_plain.MAX_FILE_BYTES <= PngImagePlugin.MAX_TEXT_MEMORY
    assert png_plain.MAX_PIXELS <= Image.MAX_IMAGE_PIXELS


def test_a_missing_or_unreadable_path_is_none_not_an_error(tmp_path):
    assert read_plain_png(tmp_path / "missing.png") is None
    assert read_plain_png(tmp_path) is None  # a folder


def test_a_link_to_a_device_is_not_read_to_its_end(tmp_path):
    """A mask name linked to /dev/zero (endless) is left to Pillow, which reads only its header."""
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero here")
    link = tmp_path / "z.png"
    link.symlink_to("/dev/zero")
    code = ("import sys; from ambiseg_metrics.core._kernel_load import load_kernels; load_kernels(); "
            "from ambiseg_metrics.files.png_plain import read_plain_png; print(read_plain_png(sys.argv[1]))")
    out = subprocess.run([sys.executable, "-c", code, str(link)], capture_output=True, text=True, timeout=60,
                         check=True)
    assert out.stdout.strip() == "None"
    with pytest.raises(InputFileError, match="z.png"):
        read_file(link)


def test_a_pipe_is_left_unread():
    """Only regular files are read here: a pipe holding a plain PNG (opened through /proc/self/fd) is left
    to Pillow, and its bytes are still there afterwards."""
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("no /proc/self/fd here")
    data = _png(PIXELS)
    r, w = os.pipe()
    try:
        os.write(w, data)
        os.close(w)
        assert read_plain_png(f"/proc/self/fd/{r}") is None
        assert os.read(r, len(data) + 1) == data
    finally:
        os.close(r)


def test_a_file_over_the_size_limit_goes_to_pillow(tmp_path, monkeypatch):
    data = _png(PIXELS)
    path = _write(tmp_path, data)
    monkeypatch.setattr(png_plain, "MAX_FILE_BYTES", len(data) - 1)
    assert read_plain_png(path) is None
    monkeypatch.setattr(png_plain, "MAX_FILE_BYTES", len(data))
    np.testing.assert_array_equal(read_plain_png(path), PIXELS)


def test_nothing_is_read_here_before_the_kernels_are_loaded(tmp_path, monkeypatch):
    path = _write(tmp_path, _png(PIXELS))
    monkeypatch.setattr(png_plain, "kernels_loaded", lambda: False)
    assert read_plain_png(path) is None
    np.testing.assert_array_equal(read_file(path), PIXELS)  # by Pillow


def test_reading_a_png_does_not_import_numba(tmp_path):
    path = _write(tmp_path, _png(PIXELS, [2] * 5))
    code = ("import sys; from ambiseg_metrics.files.io import read_file; a = read_file(sys.argv[1]); "
            "print(int(a.sum()), 'numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(int(PIXELS.astype(int).sum())), "False"]
