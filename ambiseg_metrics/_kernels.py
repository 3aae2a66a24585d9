"""Numba kernels: bit-packing of masks and the pairwise intersection (Gram) counts. Nothing else.

This is the only module that imports numba. Every kernel is compiled lazily on first use and cached on
disk (``cache=True``), so a second process does not recompile.

Layout
------
A batch of B images with N predictions and M annotations each, every mask of P pixels, is packed into one
``uint64`` array of shape ``(B, W, K)`` with ``K = N + M`` and ``W = ceil(P / 64)``: word ``w`` of mask
``k`` holds pixels ``64*w ... 64*w + 63`` (bit ``i`` = pixel ``64*w + i``); columns ``0..N-1`` are the
predictions, ``N..K-1`` the annotations. Putting K innermost makes the Gram kernel read the K words that
share a pixel range from one cache line.
"""

from __future__ import annotations

import numpy as np
from numba import get_num_threads, njit, prange, types
from numba.extending import intrinsic

__all__ = ["pack_rows", "gram_counts"]


@intrinsic
def _popcount(typingctx, x):  # pragma: no cover - compiled by numba
    """LLVM ``ctpop`` on a uint64 (one POPCNT instruction on x86-64)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return sig, codegen


@njit(cache=True, parallel=True, nogil=True)
def _pack_nonzero(src, out, col0):  # pragma: no cover - compiled by numba
    """Pack ``src[b, r, :] != 0`` into ``out[b, :, col0 + r]``.

    ``src`` is (B, R, P) of an unsigned integer type (any integer or bool array viewed as unsigned of
    the same width: nonzero-ness does not change under that view).
    """
    B, R, P = src.shape
    W = out.shape[1]
    for task in prange(B * R):
        b = task // R
        r = task - b * R
        row = src[b, r]
        for w in range(W):
            start = w * 64
            stop = min(start + 64, P)
            word = np.uint64(0)
            for i in range(start, stop):
                if row[i] != 0:
                    word |= np.uint64(1) << np.uint64(i - start)
            out[b, w, col0 + r] = word


@njit(cache=True, parallel=True, nogil=True)
def _pack_threshold(src, threshold, out, col0, bad):  # pragma: no cover - compiled by numba
    """Pack ``src[b, r, :] > threshold`` (floats) and validate in the same pass.

    ``bad[b, r]`` is set to ``1 + index`` of the first value of that row that is NaN or outside [0, 1]
    (0 when the row is valid), so the caller can name the value in its error message.
    """
    B, R, P = src.shape
    W = out.shape[1]
    t = threshold
    for task in prange(B * R):
        b = task // R
        r = task - b * R
        row = src[b, r]
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
            out[b, w, col0 + r] = word
        bad[b, r] = first_bad


def pack_rows(src: np.ndarray, out: np.ndarray, col0: int, threshold: float | None) -> np.ndarray:
    """Pack a (B, R, P) C-contiguous stack into columns ``col0 .. col0+R-1`` of ``out`` (B, W, K).

    Parameters
    ----------
    src : ndarray, shape (B, R, P), C-contiguous
        Unsigned integer (nonzero = foreground) or float32/float64 (``> threshold`` = foreground).
    out : ndarray of uint64, shape (B, W, K)
    col0 : int
        First column of ``out`` to fill.
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
    else:
        _pack_nonzero(src, out, col0)
    return bad


@njit(cache=True, parallel=True, nogil=True)
def _gram_chunks(packed, n_pred, n_chunks, partial):  # pragma: no cover - compiled by numba
    """Partial Gram and union counts of word chunks; ``partial`` is (B, n_chunks, K*K + 3)."""
    B, W, K = packed.shape
    chunk = (W + n_chunks - 1) // n_chunks
    for task in prange(B * n_chunks):
        b = task // n_chunks
        c = task - b * n_chunks
        w0 = c * chunk
        w1 = min(w0 + chunk, W)
        acc = np.zeros(K * K + 3, dtype=np.uint64)
        for w in range(w0, w1):
            words = packed[b, w]
            up = np.uint64(0)
            ug = np.uint64(0)
            for i in range(K):
                wi = words[i]
                if i < n_pred:
                    up |= wi
                else:
                    ug |= wi
                if wi == 0:
                    continue
                base = i * K
                acc[base + i] += _popcount(wi)
                for j in range(i + 1, K):
                    acc[base + j] += _popcount(wi & words[j])
            acc[K * K] += _popcount(up)
            acc[K * K + 1] += _popcount(ug)
            acc[K * K + 2] += _popcount(up & ug)
        for q in range(K * K + 3):
            partial[b, c, q] = np.int64(acc[q])


def gram_counts(packed: np.ndarray, n_pred: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise intersection counts of bit-packed masks.

    With fewer images than threads (large 3D volumes) the word axis is split into chunks so that every
    thread has work; the partial counts are summed afterwards.

    Parameters
    ----------
    packed : ndarray of uint64, shape (B, W, K)
        Layout of this module's docstring; columns ``< n_pred`` are predictions.
    n_pred : int
        Number N of prediction columns.

    Returns
    -------
    inter : ndarray of int64, shape (B, K, K)
        ``inter[b, i, j] = |mask_i ∩ mask_j|`` (symmetric; diagonal = areas).
    union : ndarray of int64, shape (B, 3)
        ``|∪ preds|``, ``|∪ annotations|`` and ``|∪ preds ∩ ∪ annotations|`` per image.
    """
    B, W, K = packed.shape
    n_threads = get_num_threads()
    # Split the word axis when there are fewer images than ~4 tasks per thread (big 3D volumes).
    n_chunks = 1
    if B < 4 * n_threads and W > 4096:
        n_chunks = min(max(1, (4 * n_threads + B - 1) // B), max(1, W // 1024))
    partial = np.empty((B, n_chunks, K * K + 3), dtype=np.int64)
    _gram_chunks(packed, n_pred, n_chunks, partial)
    total = partial.sum(axis=1)
    inter = total[:, : K * K].reshape(B, K, K)
    upper = np.triu(inter, 1)
    inter = np.triu(inter) + upper.transpose(0, 2, 1)
    union = total[:, K * K :]
    return inter, union
