"""Numba kernels: bit-packing of masks and the pairwise intersection (Gram) counts. Nothing else.

This is the only module that imports numba. Every kernel is compiled lazily on first use and cached on
disk (``cache=True``), so a second process does not recompile.

Layout
------
A batch of B images with N predictions and M annotations each, every mask of P pixels, is packed into one
``uint64`` array of shape ``(B, K, W)`` with ``K = N + M`` and ``W = ceil(P / 64)``: word ``w`` of mask
``k`` holds pixels ``64*w ... 64*w + 63`` (bit ``i`` = pixel ``64*w + i``); rows ``0..N-1`` are the
predictions, ``N..K-1`` the annotations. Each mask is one contiguous bit row, so packing writes
sequentially and the Gram kernel's inner loop (``Σ_w popcount(a_w & b_w)`` over a tile of words of two
rows that stays in L1) is a contiguous reduction that LLVM vectorises.

Speed notes
-----------
* 1-byte masks (bool, uint8, int8: the common case) are packed 8 pixels per load: an unaligned 64-bit
  load, a SWAR "byte != 0" test and one multiply that gathers the 8 flags into a byte. Wider integer and
  float masks go through a per-pixel loop.
* The Gram kernel runs over tiles of ``_TILE`` words so the K rows of a tile stay in L1 while all
  K(K+1)/2 pairs are counted; with fewer images than threads (3D volumes) the word axis is split into
  chunks so every thread has work, and the partial counts are summed afterwards.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import get_num_threads, njit, prange, types
from numba.extending import intrinsic

__all__ = ["pack_rows", "gram_counts"]

#: Words per Gram tile: K rows of ``_TILE`` uint64 words (K=20: 40 KiB) stay in the L1 cache.
_TILE = 256

_LOW7 = np.uint64(0x7F7F7F7F7F7F7F7F)
_HIGH = np.uint64(0x8080808080808080)
_GATHER = np.uint64(0x0102040810204080)  # (flags * _GATHER) >> 56: byte i's low bit -> bit i


@intrinsic
def _popcount(typingctx, x):  # pragma: no cover - compiled by numba
    """LLVM ``ctpop`` on a uint64 (one POPCNT instruction on x86-64, vectorised in reductions)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return sig, codegen


@intrinsic
def _load_u64(typingctx, arr, idx):  # pragma: no cover - compiled by numba
    """Unaligned little-endian 64-bit load of bytes ``arr[idx : idx + 8]`` (1D contiguous uint8 array)."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.uint8 and isinstance(idx, types.Integer)):
        return None
    sig = types.uint64(arr, idx)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        offset = context.cast(builder, args[1], signature.args[1], types.intp)
        ptr = builder.gep(ary.data, [offset])
        ptr64 = builder.bitcast(ptr, ir.IntType(64).as_pointer())
        return builder.load(ptr64, align=1)

    return sig, codegen


@njit(inline="always")
def _byte_flags(x):  # pragma: no cover - compiled by numba
    """8 bytes packed in a uint64 -> one byte whose bit i is ``byte_i != 0`` (SWAR, no branches)."""
    high = (((x & _LOW7) + _LOW7) | x) & _HIGH  # 0x80 in every nonzero byte
    return ((high >> np.uint64(7)) * _GATHER) >> np.uint64(56)


@njit(cache=True, parallel=True, nogil=True)
def _pack_bytes(src, out, row0):  # pragma: no cover - compiled by numba
    """Pack ``src[b, r, :] != 0`` (1-byte unsigned) into ``out[b, row0 + r, :]``, 8 pixels per load."""
    B, R, P = src.shape
    W = out.shape[2]
    full = P // 64
    for task in prange(B * R):
        b = task // R
        r = task - b * R
        row = src[b, r]
        dst = out[b, row0 + r]
        for w in range(full):
            base = w * 64
            word = np.uint64(0)
            for q in range(8):
                word |= _byte_flags(_load_u64(row, base + 8 * q)) << np.uint64(8 * q)
            dst[w] = word
        if full < W:
            start = full * 64
            word = np.uint64(0)
            for i in range(start, P):
                if row[i] != 0:
                    word |= np.uint64(1) << np.uint64(i - start)
            dst[full] = word


@njit(cache=True, parallel=True, nogil=True)
def _pack_nonzero(src, out, row0):  # pragma: no cover - compiled by numba
    """Pack ``src[b, r, :] != 0`` into ``out[b, row0 + r, :]`` (any unsigned integer width).

    ``src`` is (B, R, P) of an unsigned integer type (any integer or bool array viewed as unsigned of
    the same width: nonzero-ness does not change under that view).
    """
    B, R, P = src.shape
    W = out.shape[2]
    for task in prange(B * R):
        b = task // R
        r = task - b * R
        row = src[b, r]
        dst = out[b, row0 + r]
        for w in range(W):
            start = w * 64
            stop = min(start + 64, P)
            word = np.uint64(0)
            for i in range(start, stop):
                if row[i] != 0:
                    word |= np.uint64(1) << np.uint64(i - start)
            dst[w] = word


@njit(cache=True, parallel=True, nogil=True)
def _pack_threshold(src, threshold, out, row0, bad):  # pragma: no cover - compiled by numba
    """Pack ``src[b, r, :] > threshold`` (floats) into ``out[b, row0 + r, :]`` and validate in the same pass.

    ``bad[b, r]`` is set to ``1 + index`` of the first value of that row that is NaN or outside [0, 1]
    (0 when the row is valid), so the caller can name the value in its error message.
    """
    B, R, P = src.shape
    W = out.shape[2]
    t = threshold
    for task in prange(B * R):
        b = task // R
        r = task - b * R
        row = src[b, r]
        dst = out[b, row0 + r]
        first_bad = 0
        for w in range(W):
            start = w * 64
            stop = min(start + 64, P)
            word = np.uint64(0)
            for i in range(start, stop):
                v = row[i]
                if v > t:
                    word |= np.uint64(1) << np.uint64(i - start)
                if first_bad == 0 and not (v >= 0.0 and v <= 1.0):
                    first_bad = i + 1
            dst[w] = word
        bad[b, r] = first_bad


def pack_rows(src: np.ndarray, out: np.ndarray, col0: int, threshold: float | None) -> np.ndarray:
    """Pack a (B, R, P) C-contiguous stack into rows ``col0 .. col0+R-1`` of ``out`` (B, K, W).

    Parameters
    ----------
    src : ndarray, shape (B, R, P), C-contiguous
        Unsigned integer (nonzero = foreground) or float32/float64 (``> threshold`` = foreground).
    out : ndarray of uint64, shape (B, K, W)
        Rows (masks) must be C-contiguous.
    col0 : int
        First mask row of ``out`` to fill (0 for predictions, N for annotations).
    threshold : float or None
        Used for float input only; must already be of ``src``'s float type.

    Returns
    -------
    bad : ndarray of int64, shape (B, R)
        For float input, ``1 + flat index`` of the first NaN / out-of-[0, 1] value per row (0 = valid);
        all zeros for integer input.
    """
    bad = np.zeros(src.shape[:2], dtype=np.int64)
    if src.dtype.kind == "f":
        _pack_threshold(src, threshold, out, col0, bad)
    elif src.dtype == np.uint8:
        _pack_bytes(src, out, col0)
    else:
        _pack_nonzero(src, out, col0)
    return bad


@njit(cache=True, parallel=True, nogil=True)
def _gram_chunks(packed, n_pred, n_chunks, tile, partial):  # pragma: no cover - compiled by numba
    """Partial Gram and union counts of word chunks; ``partial`` is (B, n_chunks, K*K + 3).

    Only the upper triangle ``j >= i`` of the K*K block is filled (the caller mirrors it).
    """
    B, K, W = packed.shape
    chunk = (W + n_chunks - 1) // n_chunks
    for task in prange(B * n_chunks):
        b = task // n_chunks
        c = task - b * n_chunks
        w_begin = c * chunk
        w_end = min(w_begin + chunk, W)
        acc = np.zeros(K * K + 3, dtype=np.int64)
        up = np.empty(tile, dtype=np.uint64)
        ug = np.empty(tile, dtype=np.uint64)
        rows = packed[b]
        for t0 in range(w_begin, w_end, tile):
            t1 = min(t0 + tile, w_end)
            n = t1 - t0
            for i in range(K):
                a = rows[i, t0:t1]
                for j in range(i, K):
                    bj = rows[j, t0:t1]
                    s = np.uint64(0)
                    for w in range(n):
                        s += _popcount(a[w] & bj[w])
                    acc[i * K + j] += np.int64(s)
            up[:n] = 0
            ug[:n] = 0
            for i in range(n_pred):
                a = rows[i, t0:t1]
                for w in range(n):
                    up[w] |= a[w]
            for i in range(n_pred, K):
                a = rows[i, t0:t1]
                for w in range(n):
                    ug[w] |= a[w]
            su = np.uint64(0)
            sg = np.uint64(0)
            sb = np.uint64(0)
            for w in range(n):
                su += _popcount(up[w])
                sg += _popcount(ug[w])
                sb += _popcount(up[w] & ug[w])
            acc[K * K] += np.int64(su)
            acc[K * K + 1] += np.int64(sg)
            acc[K * K + 2] += np.int64(sb)
        for q in range(K * K + 3):
            partial[b, c, q] = acc[q]


def gram_counts(packed: np.ndarray, n_pred: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise intersection counts of bit-packed masks.

    With fewer images than threads (large 3D volumes) the word axis is split into chunks so that every
    thread has work; the partial counts are summed afterwards.

    Parameters
    ----------
    packed : ndarray of uint64, shape (B, K, W)
        Layout of this module's docstring; rows ``< n_pred`` are predictions.
    n_pred : int
        Number N of prediction rows.

    Returns
    -------
    inter : ndarray of int64, shape (B, K, K)
        ``inter[b, i, j] = |mask_i ∩ mask_j|`` (symmetric; diagonal = areas).
    union : ndarray of int64, shape (B, 3)
        ``|∪ preds|``, ``|∪ annotations|`` and ``|∪ preds ∩ ∪ annotations|`` per image.
    """
    B, K, W = packed.shape
    n_threads = get_num_threads()
    # Split the word axis when there are fewer images than ~4 tasks per thread (big 3D volumes).
    n_chunks = 1
    if B < 4 * n_threads and W > 4096:
        n_chunks = min(max(1, (4 * n_threads + B - 1) // B), max(1, W // 1024))
    partial = np.empty((B, n_chunks, K * K + 3), dtype=np.int64)
    _gram_chunks(packed, n_pred, n_chunks, _TILE, partial)
    total = partial.sum(axis=1) if n_chunks > 1 else partial[:, 0]
    upper = np.triu(total[:, : K * K].reshape(B, K, K))
    inter = upper + np.triu(upper, 1).transpose(0, 2, 1)
    union = np.ascontiguousarray(total[:, K * K :])
    return inter, union
