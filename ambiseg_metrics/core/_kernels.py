"""Numba kernels: bit-packing of masks, the pairwise intersection (Gram) counts, the vote table, the
batched assignment and the Dice/IoU readout.

This is the only module that imports numba. Every kernel is compiled lazily on first use and cached on
disk (``cache=True``), so a second process does not recompile. Where numba finds no writable cache folder
(a read-only install and an unwritable ``HOME``, and no ``NUMBA_CACHE_DIR``), :func:`_cache_setting`
points numba at a private per-user folder in the temporary directory, or, failing that, compiles without
a cache (one warning); see "Numba's cache" in ``docs/getting_started.rst``. The kernels are serial and
release the GIL; a large call is split into ranges of tasks run by a small thread pool (``NUMBA_NUM_THREADS``
threads), so one compiled function per input type serves both small and large calls (no ``parallel=True``
specialisations to compile, no numba thread team to start).

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
* Packing reads 64 pixels at a time as one LLVM vector, compares it (``!= 0``, or ``> threshold`` and
  ``0 <= v <= 1`` for floats) and bitcasts the ``<64 x i1>`` result to a uint64 word: on x86 this is
  ``pcmpeqb``/``vcmpps`` + ``pmovmskb``/``movmskps``, so packing runs at memory speed for every dtype.
* The Gram kernel runs over tiles of ``_TILE`` words so the K rows of a tile stay in L1 while all
  K(K+1)/2 pairs are counted; with fewer images than threads (3D volumes) the word axis is split into
  chunks so every thread has work, and the partial counts are summed afterwards.
"""

from __future__ import annotations

import os
import stat
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from llvmlite import ir
from numba import config as numba_config
from numba import njit, types
from numba.extending import intrinsic, overload

from ._assign import assign_image, batch_means

__all__ = ["pack_rows", "gram_counts", "fused_counts", "vote_counts", "assignment_kernel",
           "similarity_matrices", "set_threads"]


def _probe():  # pragma: no cover - only used to ask numba where it would cache
    return 0


def _cache_setting() -> bool:
    """True if numba can cache the kernels on disk, after falling back to a private folder if needed.

    numba looks in ``NUMBA_CACHE_DIR``, the package's ``__pycache__`` and the user's cache folder, and
    raises "no locator available" when none is writable. Then the kernels are cached in
    ``<tmp>/ambiseg-numba-<uid>`` (created 0700; used only if it is ours and private, since numba loads
    pickled code from it), and when that fails too they are compiled in every process without a cache.
    """
    try:
        njit(cache=True)(_probe)
        return True
    except RuntimeError:
        pass
    from numba.core import config

    uid = os.getuid() if hasattr(os, "getuid") else None
    folder = os.path.join(tempfile.gettempdir(), f"ambiseg-numba-{uid if uid is not None else 'user'}")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        st = os.lstat(folder)
        private = stat.S_ISDIR(st.st_mode) and not st.st_mode & 0o077 and (uid is None or st.st_uid == uid)
        if private:
            old, config.CACHE_DIR = config.CACHE_DIR, folder
            try:
                njit(cache=True)(_probe)
                return True
            except RuntimeError:
                config.CACHE_DIR = old
    except OSError:
        pass
    warnings.warn(
        "numba found no writable cache folder (set NUMBA_CACHE_DIR to one): the ambiseg_metrics kernels "
        "are compiled in every process, which costs a few seconds at the first call",
        RuntimeWarning, stacklevel=2,
    )
    return False


#: Whether the kernels are cached on disk (see :func:`_cache_setting`).
_CACHE = _cache_setting()
#: The same setting, for the other kernel modules (:mod:`._rater_kernel`).
CACHE = _CACHE

#: Words per Gram tile: K rows of ``_TILE`` uint64 words (K=20: 40 KiB) stay in the L1/L2 cache.
_TILE = 256

_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)

@intrinsic
def _popcount(typingctx, x):  # pragma: no cover - compiled by numba
    """LLVM ``ctpop`` on a uint64 (one POPCNT instruction on x86-64, vectorised in reductions)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return sig, codegen


def _load_vector64(context, builder, aryty, ary_value, idxty, idx_value):  # pragma: no cover
    """LLVM IR: unaligned load of the 64 elements ``ary[idx : idx + 64]`` as one ``<64 x T>`` vector."""
    ary = context.make_array(aryty)(context, builder, ary_value)
    offset = context.cast(builder, idx_value, idxty, types.intp)
    ptr = builder.gep(ary.data, [offset])
    vty = ir.VectorType(context.get_data_type(aryty.dtype), 64)
    return builder.load(builder.bitcast(ptr, vty.as_pointer()), align=1), vty


@intrinsic
def _nonzero_bits(typingctx, arr, idx):  # pragma: no cover - compiled by numba
    """Bit i of the result = ``arr[idx + i] != 0`` for i < 64 (1D contiguous unsigned-integer array).

    One vector compare and a bitcast of the ``<64 x i1>`` result: LLVM lowers it to ``pcmpeq`` +
    ``pmovmskb`` on x86 (64 bytes per few instructions) and to the equivalent elsewhere.
    """
    if not (isinstance(arr, types.Array) and isinstance(arr.dtype, types.Integer)
            and isinstance(idx, types.Integer)):
        return None
    sig = types.uint64(arr, idx)

    def codegen(context, builder, signature, args):
        v, vty = _load_vector64(context, builder, signature.args[0], args[0], signature.args[1], args[1])
        nonzero = builder.icmp_unsigned("!=", v, ir.Constant(vty, None))
        return builder.bitcast(nonzero, ir.IntType(64))

    return sig, codegen


@intrinsic
def _threshold_bits(typingctx, arr, idx, t):  # pragma: no cover - compiled by numba
    """For 64 floats ``arr[idx : idx + 64]``: (bits of ``value > t``, bits of ``0 <= value <= 1``).

    Both are ordered comparisons, so NaN gives 0 in both masks (not foreground, not valid).
    """
    if not (isinstance(arr, types.Array) and isinstance(arr.dtype, types.Float)
            and isinstance(idx, types.Integer)):
        return None
    sig = types.UniTuple(types.uint64, 2)(arr, idx, t)

    def codegen(context, builder, signature, args):
        v, vty = _load_vector64(context, builder, signature.args[0], args[0], signature.args[1], args[1])
        t_value = context.cast(builder, args[2], signature.args[2], signature.args[0].dtype)
        undef = ir.Constant(vty, ir.Undefined)
        first = builder.insert_element(undef, t_value, ir.Constant(ir.IntType(32), 0))
        splat = builder.shuffle_vector(first, undef, ir.Constant(ir.VectorType(ir.IntType(32), 64), None))
        above = builder.bitcast(builder.fcmp_ordered(">", v, splat), ir.IntType(64))
        lo = builder.fcmp_ordered(">=", v, ir.Constant(vty, [0.0] * 64))
        hi = builder.fcmp_ordered("<=", v, ir.Constant(vty, [1.0] * 64))
        valid = builder.bitcast(builder.and_(lo, hi), ir.IntType(64))
        return context.make_tuple(builder, signature.return_type, [above, valid])

    return sig, codegen


# ------------------------------------------------------------------------------------------ threads
_POOL: ThreadPoolExecutor | None = None
_POOL_KEY: tuple[int, int] = (0, 0)
_POOL_LOCK = threading.Lock()


_THREADS: int | None = None


def set_threads(n: int | None) -> None:
    """Use ``n`` threads for large calls in this process (None: back to ``NUMBA_NUM_THREADS``); e.g. 1 in
    each worker of a process pool, so that workers do not compete for the same cores."""
    global _THREADS
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ValueError(f"threads must be a positive integer or None; got {n!r}")
    _THREADS = n


def _n_threads() -> int:
    """Threads for the kernels: :func:`set_threads`, else ``NUMBA_NUM_THREADS`` (default: the cores),
    read from numba's configuration without starting numba's own thread team (the kernels are serial,
    ``nogil``)."""
    if _THREADS is not None:
        return _THREADS
    return max(1, int(numba_config.NUMBA_NUM_THREADS))


def _pool(n: int) -> ThreadPoolExecutor:
    """This process's pool of ``n`` threads (a new one after a fork or a change of ``n``)."""
    global _POOL, _POOL_KEY
    key = (os.getpid(), n)
    with _POOL_LOCK:
        if _POOL is None or _POOL_KEY != key:
            _POOL = ThreadPoolExecutor(n, thread_name_prefix="ambiseg-kernel")
            _POOL_KEY = key
        return _POOL


def _run_tasks(kernel, args: tuple, n_tasks: int, threaded: bool) -> None:
    """Run ``kernel(*args, task0, task1)`` over tasks ``0 .. n_tasks-1``: on the calling thread, or split
    into about 4 contiguous ranges per thread on the pool. The kernels release the GIL and only write
    their own tasks' outputs, so the ranges run concurrently and any caller thread may enter."""
    n = _n_threads()
    if not threaded or n == 1 or n_tasks < 2:
        kernel(*args, 0, n_tasks)
        return
    parts = min(n_tasks, 4 * n)
    edges = [n_tasks * k // parts for k in range(parts + 1)]
    list(_pool(n).map(lambda k: kernel(*args, edges[k], edges[k + 1]), range(parts)))


def _n_chunks(B: int, W: int) -> int:
    """Word chunks per image: 1, or enough for ~4 tasks per thread when a few images are large (3D)."""
    n_threads = _n_threads()
    if B < 4 * n_threads and W > 4096:
        return min(max(1, (4 * n_threads + B - 1) // B), max(1, W // 1024))
    return 1


# ------------------------------------------------------------------------------------------ packing
def _pack_words(row, w0, w1, t, dst):  # pragma: no cover - replaced by the overload in numba code
    """Pack words ``w0 .. w1-1`` of the 1D contiguous ``row`` into ``dst[0 : w1-w0]``.

    Integers: bit = ``value != 0``. Floats: bit = ``value > t``, and the return value is 1 + the index
    of the first NaN / out-of-[0, 1] value (0: none; always 0 for integers). Only callable from numba
    code (the overload below is what runs)."""
    raise NotImplementedError


@overload(_pack_words, jit_options={"cache": _CACHE})
def _pack_words_impl(row, w0, w1, t, dst):  # pragma: no cover - compiled by numba
    if isinstance(row.dtype, types.Float):

        def impl(row, w0, w1, t, dst):
            P = row.shape[0]
            first_bad = 0
            for w in range(w0, w1):
                start = w * 64
                if start + 64 <= P:
                    above, valid = _threshold_bits(row, start, t)
                    dst[w - w0] = above
                    if valid != _ALL and first_bad == 0:
                        i = 0
                        while (valid >> np.uint64(i)) & np.uint64(1):
                            i += 1
                        first_bad = start + i + 1
                else:
                    word = np.uint64(0)
                    for i in range(start, P):
                        v = row[i]
                        if v > t:
                            word |= np.uint64(1) << np.uint64(i - start)
                        if first_bad == 0 and not (v >= 0.0 and v <= 1.0):
                            first_bad = i + 1
                    dst[w - w0] = word
            return first_bad

        return impl

    def impl_int(row, w0, w1, t, dst):
        P = row.shape[0]
        for w in range(w0, w1):
            start = w * 64
            if start + 64 <= P:
                dst[w - w0] = _nonzero_bits(row, start)
            else:
                word = np.uint64(0)
                for i in range(start, P):
                    if row[i] != 0:
                        word |= np.uint64(1) << np.uint64(i - start)
                dst[w - w0] = word
        return 0

    return impl_int


@njit(cache=_CACHE, nogil=True)
def _pack_tasks(src, t, out, row0, bad, task0, task1):  # pragma: no cover - compiled by numba
    """Pack rows ``src[b, r, :]`` into ``out[b, row0 + r, :]`` for the (image, mask) tasks
    ``task0 .. task1-1`` (task = b·R + r); ``bad[b, r]`` gets that row's first invalid float (see
    :func:`_pack_words`). One compiled function for the calling thread and for the thread pool."""
    R = src.shape[1]
    W = out.shape[2]
    for task in range(task0, task1):
        b = task // R
        r = task - b * R
        bad[b, r] = _pack_words(src[b, r], 0, W, t, out[b, row0 + r])


#: Inputs smaller than this many bytes are packed on the calling thread (starting the thread team
#: costs more than the work).
_SERIAL_PACK_BYTES = 1 << 20


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
    t = threshold if src.dtype.kind == "f" else np.float64(0.0)  # ignored for integers
    n_tasks = src.shape[0] * src.shape[1]
    _run_tasks(_pack_tasks, (src, t, out, col0, bad), n_tasks, src.nbytes >= _SERIAL_PACK_BYTES)
    return bad


# ------------------------------------------------------------------------------------------ Gram
@njit(cache=_CACHE, nogil=True)
def _count_block4(rows, t0, t1, i0, j0, K, acc):  # pragma: no cover - compiled by numba
    """Counts of the 16 pairs (i0..i0+3) × (j0..j0+3) over words ``t0 .. t1-1``, added to
    ``acc[i*K + j]`` for j >= i (a diagonal block, i0 == j0, computes and drops its lower pairs)."""
    a0 = rows[i0, t0:t1]
    a1 = rows[i0 + 1, t0:t1]
    a2 = rows[i0 + 2, t0:t1]
    a3 = rows[i0 + 3, t0:t1]
    b0 = rows[j0, t0:t1]
    b1 = rows[j0 + 1, t0:t1]
    b2 = rows[j0 + 2, t0:t1]
    b3 = rows[j0 + 3, t0:t1]
    z = np.uint64(0)
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = z
    s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = z
    for w in range(t1 - t0):
        x0 = a0[w]
        x1 = a1[w]
        x2 = a2[w]
        x3 = a3[w]
        y0 = b0[w]
        y1 = b1[w]
        y2 = b2[w]
        y3 = b3[w]
        s00 += _popcount(x0 & y0)
        s01 += _popcount(x0 & y1)
        s02 += _popcount(x0 & y2)
        s03 += _popcount(x0 & y3)
        s10 += _popcount(x1 & y0)
        s11 += _popcount(x1 & y1)
        s12 += _popcount(x1 & y2)
        s13 += _popcount(x1 & y3)
        s20 += _popcount(x2 & y0)
        s21 += _popcount(x2 & y1)
        s22 += _popcount(x2 & y2)
        s23 += _popcount(x2 & y3)
        s30 += _popcount(x3 & y0)
        s31 += _popcount(x3 & y1)
        s32 += _popcount(x3 & y2)
        s33 += _popcount(x3 & y3)
    block = ((s00, s01, s02, s03), (s10, s11, s12, s13), (s20, s21, s22, s23), (s30, s31, s32, s33))
    for di in range(4):
        for dj in range(4):
            if j0 + dj >= i0 + di:
                acc[(i0 + di) * K + j0 + dj] += np.int64(block[di][dj])


@njit(cache=_CACHE, nogil=True)
def _count_tile(rows, t0, t1, n_pred, up, ug, acc):  # pragma: no cover - compiled by numba
    """Add the counts of words ``t0 .. t1-1`` of the (K, ·) bit rows ``rows`` to ``acc``: upper-triangle
    Gram counts at ``acc[i*K + j]`` (j >= i) and the three union counts at ``acc[K*K : K*K + 3]``.
    ``up``/``ug`` are scratch buffers of at least ``t1 - t0`` words."""
    K = rows.shape[0]
    n = t1 - t0
    # Pairs of rows < K4 in register blocks of 4 × 4 rows: each word of the 8 rows is loaded once for
    # 16 pairs (not twice per pair), so the loop runs at the popcount rate rather than the load rate.
    K4 = K - K % 4
    for i0 in range(0, K4, 4):
        for j0 in range(i0, K4, 4):
            _count_block4(rows, t0, t1, i0, j0, K, acc)
    # pairs with a row >= K4 (K not a multiple of 4), one pair at a time
    for i in range(K):
        a = rows[i, t0:t1]
        for j in range(max(i, K4), K):
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


@njit(cache=_CACHE, nogil=True)
def _gram_task(rows, n_pred, w_begin, w_end, tile, acc):  # pragma: no cover - compiled by numba
    """Upper-triangle Gram counts (``acc[i*K + j]``, j >= i) and the three union counts
    (``acc[K*K : K*K + 3]``) of words ``w_begin .. w_end - 1`` of one image's (K, W) bit rows."""
    up = np.empty(tile, dtype=np.uint64)
    ug = np.empty(tile, dtype=np.uint64)
    for q in range(acc.shape[0]):
        acc[q] = 0
    for t0 in range(w_begin, w_end, tile):
        _count_tile(rows, t0, min(t0 + tile, w_end), n_pred, up, ug, acc)


@njit(cache=_CACHE, nogil=True)
def _gram_tasks(packed, n_pred, n_chunks, tile, partial, task0, task1):  # pragma: no cover
    """Partial counts of the (image, word chunk) tasks ``task0 .. task1-1`` (task = b·n_chunks + c);
    ``partial`` is (B, n_chunks, K*K + 3)."""
    W = packed.shape[2]
    chunk = (W + n_chunks - 1) // n_chunks
    for task in range(task0, task1):
        b = task // n_chunks
        c = task - b * n_chunks
        _gram_task(packed[b], n_pred, c * chunk, min(c * chunk + chunk, W), tile, partial[b, c])


def _symmetric(total: np.ndarray, K: int) -> np.ndarray:
    """(B, K, K) counts from the kernels' (B, K*K + 3) sums, whose lower triangle is 0 (only pairs j >= i
    are counted): ``upper + upperᵀ`` with the diagonal taken once."""
    upper = total[:, : K * K].reshape(-1, K, K)
    inter = upper + upper.transpose(0, 2, 1)
    idx = np.arange(K)
    inter[:, idx, idx] = upper[:, idx, idx]
    return inter


#: Below this many word pairs (B·K(K+1)/2·W) the Gram counts run on the calling thread.
_SERIAL_GRAM_PAIRS = 1 << 16


def gram_counts(packed: np.ndarray, n_pred: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise intersection counts of bit-packed masks.

    With fewer images than threads (large 3D volumes) the word axis is split into chunks so that every
    thread has work; the partial counts are summed afterwards. Tiny inputs run on the calling thread.

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
    threaded = B * K * (K + 1) // 2 * W >= _SERIAL_GRAM_PAIRS
    n_chunks = _n_chunks(B, W) if threaded else 1
    partial = np.empty((B, n_chunks, K * K + 3), dtype=np.int64)
    _run_tasks(_gram_tasks, (packed, n_pred, n_chunks, _TILE, partial), B * n_chunks, threaded)
    total = partial.sum(axis=1) if partial.shape[1] > 1 else partial[:, 0]
    return _symmetric(total, K), np.ascontiguousarray(total[:, K * K :])


# ------------------------------------------------------------------------------ fused pack + Gram
@njit(cache=_CACHE, nogil=True)
def _pack_span(preds, gts, tp, tg, b, p0, p1, buf, bad_p, bad_g):  # pragma: no cover - compiled by numba
    """Pack words [p0, p1) of image b's N predictions and M annotations into ``buf`` rows (predictions
    first), keeping the first invalid float of each mask (1-based) in ``bad_p`` / ``bad_g``."""
    N = preds.shape[1]
    for r in range(N):
        fb = _pack_words(preds[b, r], p0, p1, tp, buf[r])
        if fb != 0 and bad_p[r] == 0:
            bad_p[r] = fb
    for r in range(gts.shape[1]):
        fb = _pack_words(gts[b, r], p0, p1, tg, buf[N + r])
        if fb != 0 and bad_g[r] == 0:
            bad_g[r] = fb


@njit(cache=_CACHE, nogil=True)
def _fused_task(preds, gts, tp, tg, b, w_begin, w_end, buf, bad_p, bad_g, acc):  # pragma: no cover
    """Pack words ``w_begin .. w_end-1`` of image ``b``'s N + M masks tile by tile into ``buf`` (K, T)
    and count them while they are in cache: upper-triangle Gram into ``acc[:K*K]``, unions into
    ``acc[K*K:]``. ``bad_p`` (N,) / ``bad_g`` (M,) get the first invalid float of each mask (1-based)."""
    N = preds.shape[1]
    T = buf.shape[1]
    up = np.empty(_TILE, dtype=np.uint64)
    ug = np.empty(_TILE, dtype=np.uint64)
    acc[:] = 0
    bad_p[:] = 0
    bad_g[:] = 0
    for p0 in range(w_begin, w_end, T):
        p1 = min(p0 + T, w_end)
        _pack_span(preds, gts, tp, tg, b, p0, p1, buf, bad_p, bad_g)
        for t0 in range(0, p1 - p0, _TILE):
            _count_tile(buf, t0, min(t0 + _TILE, p1 - p0), N, up, ug, acc)


@njit(cache=_CACHE, nogil=True)
def _fused_tasks(preds, gts, tp, tg, n_chunks, words, partial, bad_p, bad_g,
                 task0, task1):  # pragma: no cover
    """:func:`_fused_task` for the (image, word chunk) tasks ``task0 .. task1-1``."""
    K = preds.shape[1] + gts.shape[1]
    W = (preds.shape[2] + 63) // 64
    chunk = (W + n_chunks - 1) // n_chunks
    buf = np.empty((K, words), dtype=np.uint64)
    for task in range(task0, task1):
        b = task // n_chunks
        c = task - b * n_chunks
        _fused_task(preds, gts, tp, tg, b, c * chunk, min(c * chunk + chunk, W), buf, bad_p[b, c],
                    bad_g[b, c], partial[b, c])


#: Words per mask packed at a time by the fused kernel (64 KiB of a 1-byte mask): K such rows (K=20:
#: 160 KiB) stay in L2 while they are counted.
_FUSED_WORDS = 1024


def _first_bad(bad: np.ndarray) -> np.ndarray:
    """(B, C, R) per-chunk reports (1-based, 0 = ok) -> (B, R): the first invalid value over the chunks."""
    if bad.shape[1] == 1:
        return bad[:, 0]
    big = np.iinfo(np.int64).max
    first = np.where(bad > 0, bad, big).min(axis=1)
    first[first == big] = 0
    return first


def fused_counts(
    preds: np.ndarray, gts: np.ndarray, tp: float, tg: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pack and count in one pass, without materialising the packed masks.

    Parameters
    ----------
    preds, gts : ndarray, shape (B, N, P) and (B, M, P), C-contiguous
        Unsigned integers (nonzero = foreground) or float32/float64 (``> threshold``).
    tp, tg : float
        Thresholds of float ``preds`` / ``gts`` (of their float type; ignored for integers).

    Returns
    -------
    inter : ndarray of int64, shape (B, K, K)
    union : ndarray of int64, shape (B, 3)
        As :func:`gram_counts`.
    bad_p, bad_g : ndarray of int64, shape (B, N) and (B, M)
        As :func:`pack_rows`: 1 + index of the first NaN / out-of-[0, 1] value per mask, 0 = valid.

    Notes
    -----
    Each task packs a tile of ``_FUSED_WORDS`` words of all K masks of one image into a small buffer
    and counts it while it is in cache: the input is read exactly once and nothing of size O(K·P) is
    allocated. Images are split into word chunks when there are fewer images than ~4 per thread.
    """
    B, N, P = preds.shape
    M = gts.shape[1]
    K = N + M
    W = (P + 63) // 64
    words = min(_FUSED_WORDS, W)
    threaded = preds.nbytes + gts.nbytes >= _SERIAL_PACK_BYTES
    n_chunks = _n_chunks(B, W) if threaded else 1
    partial = np.empty((B, n_chunks, K * K + 3), dtype=np.int64)
    bad_p = np.empty((B, n_chunks, N), dtype=np.int64)
    bad_g = np.empty((B, n_chunks, M), dtype=np.int64)
    tp = preds.dtype.type(tp) if preds.dtype.kind == "f" else np.float64(0.0)
    tg = gts.dtype.type(tg) if gts.dtype.kind == "f" else np.float64(0.0)
    _run_tasks(_fused_tasks, (preds, gts, tp, tg, n_chunks, words, partial, bad_p, bad_g), B * n_chunks,
               threaded)
    total = partial.sum(axis=1) if n_chunks > 1 else partial[:, 0]
    return _symmetric(total, K), np.ascontiguousarray(total[:, K * K :]), _first_bad(bad_p), _first_bad(bad_g)


# ------------------------------------------------------------------------------ vote table T[a, b]
# T[a, b] = number of pixels marked by exactly a of the N predictions and b of the M annotations.
# Per 64-pixel word, the N prediction bits of each pixel are summed into bit-sliced counters (plane k
# holds bit k of the per-pixel count; adding a mask word is a ripple-carry over the planes), the same for
# the M annotations; then the pixels whose count equals a are ``AND_k (plane_k or ~plane_k)`` and
# ``T[a, b] += popcount(eq_a & eq_b)``. A word whose masks are all empty adds 64 to T[0, 0] at once.
# The padding bits of the last word are zeros of every mask and are taken off T[0, 0] by the caller.

#: Bit planes of a counter: enough for counts up to 2**_PLANES - 1 masks per side.
_PLANES = 16


@njit(cache=_CACHE, nogil=True)
def _n_planes(n):  # pragma: no cover - compiled by numba
    """Planes needed to hold counts 0..n."""
    k = 1
    while (1 << k) <= n:
        k += 1
    return k


@njit(cache=_CACHE, nogil=True)
def _slice_counts(sc, r0, r1, n, n_planes, planes, carry, eq):  # pragma: no cover - compiled by numba
    """Bit-sliced counts of rows ``r0 .. r1-1`` of the gathered words ``sc[:, :n]`` into ``planes[:, :n]``
    (plane k = bit k of the per-pixel count), then ``eq[c, :n]`` = pixels whose count is exactly c. Every
    inner loop runs over the n words, so LLVM vectorises it."""
    for k in range(n_planes):
        for i in range(n):
            planes[k, i] = 0
    for r in range(r0, r1):
        for i in range(n):
            carry[i] = sc[r, i]
        for k in range(n_planes):  # ripple-carry add of one mask word into the planes
            for i in range(n):
                t = planes[k, i] & carry[i]
                planes[k, i] ^= carry[i]
                carry[i] = t
    for c in range(r1 - r0 + 1):
        for i in range(n):
            eq[c, i] = _ALL
        for k in range(n_planes):
            if (c >> k) & 1:
                for i in range(n):
                    eq[c, i] &= planes[k, i]
            else:
                for i in range(n):
                    eq[c, i] &= ~planes[k, i]


@njit(cache=_CACHE, nogil=True)
def _vote_words(rows, t0, t1, n_pred, acc, up, ug, scratch):  # pragma: no cover - compiled by numba
    """Add the vote table of words ``t0 .. t1-1`` of the (K, ·) bit rows to ``acc[:(N+1)*(M+1)]``
    (row-major T[a, b]); ``up[w - t0] | ug[w - t0]`` must be the OR of all rows at word w (the Gram tile
    leaves exactly that in its union buffers).

    Words whose masks are all empty add 64 to T[0, 0] at once. The others are gathered into
    ``scratch`` (a :func:`_vote_scratch` tuple), bit-slice-counted side by side, and
    ``T[a, b] += Σ popcount(eq_a & eq_b)`` is a vectorised reduction over them, as in the Gram kernel."""
    sc, idx, carry, planes, eq_p, eq_g = scratch
    K = rows.shape[0]
    N = n_pred
    M = K - N
    n = 0
    for w in range(t0, t1):
        if (up[w - t0] | ug[w - t0]) == 0:
            acc[0] += 64
        else:
            idx[n] = w
            n += 1
    if n == 0:
        return
    for r in range(K):
        for i in range(n):
            sc[r, i] = rows[r, idx[i]]
    _slice_counts(sc, 0, N, n, _n_planes(N), planes, carry, eq_p)
    _slice_counts(sc, N, K, n, _n_planes(M), planes, carry, eq_g)
    for a in range(N + 1):
        seen = np.uint64(0)
        for i in range(n):
            seen |= eq_p[a, i]
        if seen == 0:
            continue
        for b in range(M + 1):
            s = np.uint64(0)
            for i in range(n):
                s += _popcount(eq_p[a, i] & eq_g[b, i])
            acc[a * (M + 1) + b] += np.int64(s)


@njit(cache=_CACHE, nogil=True)
def _vote_scratch(n_pred, n_gt, words):  # pragma: no cover - compiled by numba
    """Scratch of :func:`_vote_words` for tiles of up to ``words`` words."""
    K = n_pred + n_gt
    return (np.empty((K, words), dtype=np.uint64), np.empty(words, dtype=np.int64),
            np.empty(words, dtype=np.uint64), np.empty((_PLANES, words), dtype=np.uint64),
            np.empty((n_pred + 1, words), dtype=np.uint64), np.empty((n_gt + 1, words), dtype=np.uint64))


@njit(cache=_CACHE, nogil=True)
def _vote_tile(rows, t0, t1, n_pred, acc, up, ug, scratch):  # pragma: no cover - compiled by numba
    """:func:`_vote_words` without a Gram pass: computes the ORs into ``up``/``ug`` (scratch of at least
    ``t1 - t0`` words) and adds the mask areas to ``acc[(N+1)*(M+1) : (N+1)*(M+1) + K]``."""
    K = rows.shape[0]
    base = (n_pred + 1) * (K - n_pred + 1)
    n = t1 - t0
    for w in range(n):
        up[w] = 0
        ug[w] = 0
    for k in range(K):
        row = rows[k, t0:t1]
        s = np.uint64(0)
        for w in range(n):
            s += _popcount(row[w])
            up[w] |= row[w]
        acc[base + k] += np.int64(s)
    _vote_words(rows, t0, t1, n_pred, acc, up, ug, scratch)


@njit(cache=_CACHE, nogil=True)
def _votes_task(preds, gts, tp, tg, b, w_begin, w_end, buf, bad_p, bad_g, with_gram, acc_g, acc_v):
    # pragma: no cover - compiled by numba
    """:func:`_fused_task` that also (or only, ``with_gram=False``) adds the vote table into ``acc_v``."""
    N = preds.shape[1]
    M = gts.shape[1]
    T = buf.shape[1]
    up = np.empty(_TILE, dtype=np.uint64)
    ug = np.empty(_TILE, dtype=np.uint64)
    scratch = _vote_scratch(N, M, _TILE)
    acc_g[:] = 0
    acc_v[:] = 0
    bad_p[:] = 0
    bad_g[:] = 0
    for p0 in range(w_begin, w_end, T):
        p1 = min(p0 + T, w_end)
        _pack_span(preds, gts, tp, tg, b, p0, p1, buf, bad_p, bad_g)
        for t0 in range(0, p1 - p0, _TILE):
            t1 = min(t0 + _TILE, p1 - p0)
            if with_gram:  # the Gram tile leaves the ORs of the tile's words in up/ug
                _count_tile(buf, t0, t1, N, up, ug, acc_g)
                _vote_words(buf, t0, t1, N, acc_v, up, ug, scratch)
            else:
                _vote_tile(buf, t0, t1, N, acc_v, up, ug, scratch)


@njit(cache=_CACHE, nogil=True)
def _votes_tasks(preds, gts, tp, tg, n_chunks, words, with_gram, part_g, part_v, bad_p, bad_g, task0, task1):
    # pragma: no cover - compiled by numba
    """:func:`_votes_task` for the (image, word chunk) tasks ``task0 .. task1-1`` (task = b·n_chunks + c)."""
    K = preds.shape[1] + gts.shape[1]
    W = (preds.shape[2] + 63) // 64
    chunk = (W + n_chunks - 1) // n_chunks
    buf = np.empty((K, words), dtype=np.uint64)
    for task in range(task0, task1):
        b = task // n_chunks
        c = task - b * n_chunks
        _votes_task(preds, gts, tp, tg, b, c * chunk, min(c * chunk + chunk, W), buf, bad_p[b, c],
                    bad_g[b, c], with_gram, part_g[b, c], part_v[b, c])


def vote_counts(
    preds: np.ndarray, gts: np.ndarray, tp: float, tg: float, with_gram: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray, np.ndarray]:
    """The per-image vote table (and, with ``with_gram``, the Gram counts) in one pass over the pixels.

    Parameters
    ----------
    preds, gts : ndarray, shape (B, N, P) and (B, M, P), C-contiguous
        As :func:`fused_counts`; N, M <= 2**16 - 1.
    tp, tg : float
        Thresholds of float inputs.
    with_gram : bool, default False
        Also return :func:`fused_counts`' ``inter`` and ``union`` (same pass, same packed tiles).

    Returns
    -------
    table : ndarray of int64, shape (B, N + 1, M + 1)
        ``table[b, a, c]`` = pixels of image b marked by exactly a predictions and c annotations.
    areas : ndarray of int64, shape (B, N + M)
        Mask areas, predictions first.
    inter, union : ndarray or None
        As :func:`fused_counts` when ``with_gram``, else None.
    bad_p, bad_g : ndarray of int64, shape (B, N) and (B, M)
        First invalid float of each mask (1-based, 0 = valid), as :func:`pack_rows`.
    """
    B, N, P = preds.shape
    M = gts.shape[1]
    if N >= (1 << _PLANES) or M >= (1 << _PLANES):
        raise ValueError(f"the vote table supports at most {(1 << _PLANES) - 1} masks per side")
    K = N + M
    W = (P + 63) // 64
    words = min(_FUSED_WORDS, W)
    threaded = preds.nbytes + gts.nbytes >= _SERIAL_PACK_BYTES
    n_chunks = _n_chunks(B, W) if threaded else 1
    n_cells = (N + 1) * (M + 1)
    part_g = np.empty((B, n_chunks, K * K + 3 if with_gram else 0), dtype=np.int64)
    part_v = np.empty((B, n_chunks, n_cells + (0 if with_gram else K)), dtype=np.int64)
    bad_p = np.empty((B, n_chunks, N), dtype=np.int64)
    bad_g = np.empty((B, n_chunks, M), dtype=np.int64)
    tp = preds.dtype.type(tp) if preds.dtype.kind == "f" else np.float64(0.0)
    tg = gts.dtype.type(tg) if gts.dtype.kind == "f" else np.float64(0.0)
    _run_tasks(_votes_tasks, (preds, gts, tp, tg, n_chunks, words, with_gram, part_g, part_v, bad_p, bad_g),
               B * n_chunks, threaded)
    votes = part_v.sum(axis=1) if n_chunks > 1 else part_v[:, 0]
    table = votes[:, :n_cells].reshape(B, N + 1, M + 1).copy()
    table[:, 0, 0] -= W * 64 - P  # the zero padding of the last word
    inter = union = None
    if with_gram:
        total = part_g.sum(axis=1) if n_chunks > 1 else part_g[:, 0]
        inter = _symmetric(total, K)
        union = np.ascontiguousarray(total[:, K * K :])
        areas = np.ascontiguousarray(np.diagonal(inter, axis1=1, axis2=2))  # not counted twice
    else:
        areas = np.ascontiguousarray(votes[:, n_cells:])
    return table, areas, inter, union, _first_bad(bad_p), _first_bad(bad_g)


# ------------------------------------------------------------------------------ batched assignment
# The assignment is plain Python in :mod:`._assign` (run by the interpreter for a few small images), and is
# compiled from there: numba caches a function under the file that defines it and does not notice a change
# of a file it calls into, so the batch loop and the per-image solver both live in ``_assign.py`` and an
# edit of that file invalidates both cache entries. (A batch loop defined here, calling the solver, kept
# the old solver's machine code after ``_assign.py`` changed.)
@overload(assign_image, jit_options={"cache": _CACHE, "nogil": True})
def _assign_image_impl(cost, a, cap, u, v, col, members, cnt, minv, way, used, vis):  # pragma: no cover
    return assign_image


#: ``assignment_kernel(sim, a, cap, out)``: ``out[b]`` = max over assignments of the mean of ``sim[b]`` on
#: the duplicated L × L problem (:func:`._assign.batch_means`, compiled).
assignment_kernel = njit(cache=_CACHE, nogil=True)(batch_means)


# ------------------------------------------------------------------------------ similarity readout
@njit(cache=_CACHE, nogil=True)
def _similarity(inter, dice, empty_value, out):  # pragma: no cover - compiled by numba
    """Dice (``dice``) or IoU of every pair from the (B, K, K) counts, in one pass (formulas of
    :mod:`ambiseg_metrics.core.pairwise`, the same floating-point operations)."""
    B, K, _ = inter.shape
    for b in range(B):
        for i in range(K):
            ai = inter[b, i, i]
            for j in range(K):
                s = ai + inter[b, j, j]
                x = inter[b, i, j]
                if dice:
                    out[b, i, j] = 2.0 * x / s if s > 0 else empty_value
                else:
                    out[b, i, j] = x / (s - x) if s > 0 else empty_value


def similarity_matrices(inter: np.ndarray, dice: bool, empty_value: float) -> np.ndarray:
    """Dice (``dice=True``) or IoU matrices of int64 counts (B, K, K) as float64 (B, K, K); the value of
    :func:`ambiseg_metrics.core.pairwise.dice_from_counts` / ``iou_from_counts``, bit for bit."""
    inter = np.ascontiguousarray(inter, dtype=np.int64)
    out = np.empty(inter.shape, dtype=np.float64)
    _similarity(inter, bool(dice), float(empty_value), out)
    return out
