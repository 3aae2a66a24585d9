"""A fast path for the plainest PNG masks: 8-bit greyscale, not interlaced, read without Pillow.

A folder of small PNG masks spends most of its reading time in Pillow's per-file work in Python (parsing
the chunks, building the image object, ``tobytes``), not in inflating the pixels: on the benchmark's tree
of 22,000 PNGs of 128 × 128 pixels, Pillow took 61.7 µs of CPU per file and this reader 23.1 µs, and
77.4 and 27.5 µs in a run on a busier host (``python -m benchmarks.cli_runner``, "CPU us per PNG
file"). It does what is needed for one kind of file, the kind Pillow writes for a mode-"L" mask (8-bit
grey): it checks the signature and every chunk's CRC, inflates the IDAT data with :mod:`zlib` and
undoes the scanline filters in a compiled kernel
(:func:`ambiseg_metrics.core._png_kernel.unfilter_grey8`).

It answers only when it is sure to give what Pillow gives (``np.asarray(Image.open(path))``: the stored
bytes as a ``(H, W)`` uint8 array; ``tests/test_png_plain.py`` compares the two on random images with
every filter type); for anything else it returns None and the caller reads the file with Pillow, which
also reports every error. Anything else is: another colour type or bit depth, interlacing, transparency
(``tRNS``), an animated PNG, a chunk not listed in :data:`IGNORED_CHUNKS` (or of another length), a bad
CRC, a truncated or over-long zlib stream, more than :data:`MAX_PIXELS` pixels, a file that is not regular
(a link to a device) or larger than :data:`MAX_FILE_BYTES`, an unreadable file, and
any process that has not loaded the compiled kernels yet
(:func:`ambiseg_metrics.core._kernel_load.kernels_loaded`: a batched ``ambiseg-eval`` run loads them
before it reads; a small run or a notebook's one file never imports numba for this).
"""

from __future__ import annotations

import os
import stat
import struct
import zlib

import numpy as np

from ..core._kernel_load import kernels_loaded

__all__ = ["IGNORED_CHUNKS", "MAX_FILE_BYTES", "MAX_PIXELS", "read_plain_png"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Ancillary chunks that do not change the pixels Pillow returns (text, time, physical size, colour space
#: and gamma information, which Pillow does not apply), with the length each must have (None: any); any
#: other chunk (compressed text and ICC profiles too, which Pillow inflates under its own limits), or one
#: of another length (Pillow refuses some truncated ones), sends the file to Pillow. Pillow's limit on a
#: file's text (``PngImagePlugin.MAX_TEXT_MEMORY``, 64 MiB) is not reached by a file of at most
#: :data:`MAX_FILE_BYTES` (tests/test_png_plain.py checks the two limits).
IGNORED_CHUNKS: dict[bytes, int | None] = {b"tEXt": None, b"tIME": 7, b"pHYs": 9, b"gAMA": 4, b"cHRM": 32,
                                           b"sRGB": 1, b"sBIT": 1, b"bKGD": 2}
#: Larger images go to Pillow (which has its own guard against decompression bombs, at more pixels).
MAX_PIXELS = 1 << 24
#: Larger files, and anything but a regular file, go to Pillow (which reads only what it needs).
MAX_FILE_BYTES = 1 << 26

_CHUNK_HEAD = struct.Struct(">I4s")
_IHDR = struct.Struct(">IIBBBBB")
_CRC = struct.Struct(">I")


def read_plain_png(path: str | os.PathLike) -> np.ndarray | None:
    """The pixels of an 8-bit greyscale, non-interlaced PNG as a new ``(H, W)`` uint8 array, equal to
    Pillow's; None for every other file (see the module's notes), which the caller then reads with Pillow.
    Never raises for a bad file."""
    if not kernels_loaded():
        return None
    try:
        with open(path, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE_BYTES:
                return None  # a device (a link to /dev/zero would never end), or too large to be plain
            # as many bytes as the file holds (a buffer of MAX_FILE_BYTES per read, though never filled,
            # cost 14 us per file); a file that changes meanwhile fails its CRCs or its IEND: None
            data = f.read(info.st_size)
        inflated = _inflated_rows(data)
    except (OSError, ValueError, struct.error, zlib.error):
        return None
    if inflated is None:
        return None
    raw, width = inflated
    from ..core._png_kernel import unfilter_grey8

    out = np.empty((raw.shape[0], width), np.uint8)
    if unfilter_grey8(raw, out) != -1:
        return None
    return out


def _inflated_rows(data: bytes) -> tuple[np.ndarray, int] | None:
    """The inflated scanlines ``(H, W + 1)`` and W of a plain PNG's bytes, or None; struct.error if the
    bytes end inside a chunk (a truncated file)."""
    if data[:8] != _SIGNATURE:
        return None
    pos = 8
    header = None
    idat: list[bytes] = []
    idat_done = False
    while True:
        length, kind = _CHUNK_HEAD.unpack_from(data, pos)  # struct.error past the end
        body_end = pos + 8 + length
        (crc,) = _CRC.unpack_from(data, body_end)
        if zlib.crc32(data[pos + 4:body_end]) != crc:
            return None
        body = data[pos + 8:body_end]
        pos = body_end + 4
        if header is None:
            if kind != b"IHDR" or length != _IHDR.size:
                return None
            header = _IHDR.unpack(body)
            continue
        if kind == b"IDAT":
            if idat_done:
                return None  # IDAT chunks must be consecutive
            idat.append(body)
            continue
        if idat:
            idat_done = True
        if kind == b"IEND":
            break
        if kind not in IGNORED_CHUNKS or IGNORED_CHUNKS[kind] not in (None, length):
            return None
    width, height, depth, colour, compression, filtering, interlace = header
    if (depth, colour, compression, filtering, interlace) != (8, 0, 0, 0, 0) or not idat:
        return None
    if width == 0 or height == 0 or width * height > MAX_PIXELS:
        return None
    expected = height * (width + 1)
    stream = zlib.decompressobj()
    raw = stream.decompress(b"".join(idat), expected)
    # zlib reads the end of a complete stream without needing room for output, so a stream with more
    # rows than the header says is not at its end here
    if len(raw) != expected or not stream.eof or stream.unused_data:
        return None  # too short, too long, not a complete zlib stream, or bytes after it
    return np.frombuffer(raw, np.uint8).reshape(height, width + 1), width
