"""The shared work of every metric: the K×K Gram matrix of pairwise intersection counts.

For one image with N predictions and M annotations, stack the K = N + M binary masks (predictions
first). Every metric of this library is a readout of

* ``inter[i, j] = |mask_i ∩ mask_j|`` (diagonal = mask areas), and
* the three union counts ``|∪P|``, ``|∪Y|``, ``|∪P ∩ ∪Y|`` (for the combined sensitivity),

so :func:`pair_counts` computes them once (bit-packed masks, popcount, numba, parallel over images) and
the metric functions only do arithmetic on these small integer arrays. Call it yourself to compute
several metrics from one pass over the pixels, or use :func:`ambiseg_metrics.evaluate`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..options import DEFAULT, value_of
from . import _kernel_load
from ._validate import INPUT_RULES_DOC, ImageGroup, pairs_error, prepare_inputs, raise_bad_values
from .docfill import fill_doc
from .numpy_counts import count_with_numpy
from .pairwise import cross_similarity, similarity_from_counts

__all__ = ["CountBlock", "PairCounts", "VoteBlock", "VoteCounts", "count_group", "pack_into",
           "pair_and_vote_counts", "pair_counts", "vote_counts"]


@dataclass(frozen=True)
class CountBlock:
    """Counts of images that share N, M and the number of pixels P.

    Attributes
    ----------
    index : ndarray of int64, shape (B,)
        Positions of these images in the batch.
    inter : ndarray of int64, shape (B, K, K)
        Pairwise intersection counts, predictions first (rows/cols ``0..N-1``), then annotations.
    union : ndarray of int64, shape (B, 3)
        ``|∪ preds|``, ``|∪ gts|``, ``|∪ preds ∩ ∪ gts|``.
    n_pred, n_gt, n_pixels : int
        N, M and P.
    """

    index: np.ndarray
    inter: np.ndarray
    union: np.ndarray
    n_pred: int
    n_gt: int
    n_pixels: int
    _memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def areas(self) -> np.ndarray:
        """Mask areas, shape (B, K) (the diagonal of ``inter``)."""
        return np.diagonal(self.inter, axis1=1, axis2=2)

    def similarity(self, kind: str, empty_value: float = 1.0) -> np.ndarray:
        """Dice (``kind="dice"``) or IoU matrices (B, K, K) of the block's images, read-only.

        Computed once per (kind, empty value) and shared by every readout of the block (GED, D_max,
        D_a, HM-IoU), with :func:`~ambiseg_metrics.core.pairwise.similarity_from_counts`.
        """
        key = (kind, "nan" if math.isnan(empty_value) else float(empty_value))
        sim = self._memo.get(key)
        if sim is None:
            sim = similarity_from_counts(self.inter, kind, empty_value)
            sim.flags.writeable = False
            self._memo[key] = sim
        return sim

    def cross_similarity(self, kind: str, empty_value: float = 1.0) -> np.ndarray:
        """The (B, N, M) prediction × annotation part of :meth:`similarity`: sliced from the shared
        matrices when a readout has computed them, else computed alone (N·M instead of K² pairs)."""
        key = (kind, "nan" if math.isnan(empty_value) else float(empty_value))
        n = self.n_pred
        if key in self._memo:
            return self._memo[key][:, :n, n:]
        return cross_similarity(self.inter, n, kind, empty_value)


@dataclass(frozen=True)
class PairCounts:
    """Pairwise counts of a single image or of a batch, grouped into :class:`CountBlock` s.

    Use :meth:`map` to turn a per-block readout (returning one value per image) into a float (single
    image) or an array of B floats (batch), in the order of the input.
    """

    blocks: tuple[CountBlock, ...]
    n_images: int
    batch: bool

    def map(self, readout: Callable[[CountBlock], np.ndarray]) -> float | np.ndarray:
        """Apply ``readout`` to every block and assemble the per-image values in input order.

        ``readout`` returns an array of shape (B_block,) or (B_block, k). The result is a float (single
        image, k absent), an array of shape (k,) (single image), or an array of shape (B,) / (B, k).
        """
        parts = [(block.index, np.asarray(readout(block), dtype=np.float64)) for block in self.blocks]
        tail = parts[0][1].shape[1:]
        out = np.empty((self.n_images, *tail), dtype=np.float64)
        for index, values in parts:
            out[index] = values
        if self.batch:
            return out
        return float(out[0]) if not tail else out[0]

    def columns(self, readout: Callable[[CountBlock], np.ndarray]) -> list[float | np.ndarray]:
        """Like :meth:`map` for a readout returning (B_block, k): one float / (B,) array per column."""
        values = self.map(readout)
        if self.batch:
            return [values[:, j] for j in range(values.shape[1])]
        return [float(v) for v in values]

    def check_min_masks(self, what: str) -> None:
        """Raise :class:`~ambiseg_metrics.core._validate.InputError` when some image has fewer than 2
        predictions or annotations (:func:`~ambiseg_metrics.core._validate.pairs_error`)."""
        for block in self.blocks:
            error = pairs_error(what, block.n_pred, block.n_gt, int(block.index[0]) if self.batch else None)
            if error is not None:
                raise error


def pack_into(name: str, chunks: list[np.ndarray], packed: np.ndarray, col0: int, threshold: float,
              index: np.ndarray, batch: bool) -> None:
    """Pack every chunk (b, R, *spatial) into ``packed[row:row+b, col0:col0+R, :]``, validating floats.

    The unfused path of :func:`count_group` (also timed on its own by the benchmarks).
    """
    from . import _kernels  # numba: imported on first use only

    row = 0
    for chunk in chunks:
        b, r = chunk.shape[:2]
        t = chunk.dtype.type(threshold) if chunk.dtype.kind == "f" else None
        if chunk.flags.c_contiguous:
            src = chunk.reshape(b, r, -1)
            bad = _kernels.pack_rows(src, packed[row : row + b], col0, t)
            raise_bad_values(name, src, bad, index[row : row + b] if batch else None)
        else:
            # Never copy a whole (possibly float, possibly 3D) stack: one mask at a time.
            for i in range(b):
                for k in range(r):
                    src = np.ascontiguousarray(chunk[i, k]).reshape(1, 1, -1)
                    bad = _kernels.pack_rows(src, packed[row + i : row + i + 1], col0 + k, t)
                    image = index[row + i : row + i + 1] if batch else None
                    raise_bad_values(name, src, bad, image, mask_offset=k)
        row += b


#: Groups whose masks take fewer bytes than this are counted with numpy (a BLAS product of the 0/1
#: masks), so that small calls (one image, a CLI case) never import numba nor load its kernels (about
#: half a second per process); larger ones run the compiled kernels.
_NUMPY_COUNT_BYTES = 1 << 20
#: Groups up to this size are counted with numpy too while the kernels are not loaded
#: (:mod:`._kernel_load`): about 0.2 s of numpy work here at most.
_COLD_NUMPY_COUNT_BYTES = 64 << 20


def _count_small(group: ImageGroup, threshold: float, batch: bool) -> CountBlock:
    """:func:`count_group` with numpy (:func:`.numpy_counts.count_with_numpy`)."""
    inter, union = count_with_numpy(group, threshold, batch)
    return CountBlock(group.index, inter, union, group.n_pred, group.n_gt, group.n_pixels)


def count_group(group: ImageGroup, threshold: float, batch: bool) -> CountBlock:
    """The counts of one :class:`~ambiseg_metrics.core._validate.ImageGroup`: numpy for small groups,
    else one kernel call."""
    nbytes = sum(a.nbytes for a in group.preds) + sum(a.nbytes for a in group.gts)
    exact_in_float32 = group.n_pixels < 1 << 22
    if nbytes < _NUMPY_COUNT_BYTES and exact_in_float32:
        return _count_small(group, threshold, batch)
    if _kernel_load.numpy_while_unloaded(nbytes < _COLD_NUMPY_COUNT_BYTES and exact_in_float32):
        with _kernel_load.charged():
            return _count_small(group, threshold, batch)
    from . import _kernels  # numba: imported on first use only

    n_images = len(group.index)
    if len(group.preds) == 1 and len(group.gts) == 1 and all(
        a.flags.c_contiguous for a in (group.preds[0], group.gts[0])
    ):
        # One contiguous batch array each (the common case): pack and count in one fused pass.
        src_p = group.preds[0].reshape(n_images, group.n_pred, -1)
        src_g = group.gts[0].reshape(n_images, group.n_gt, -1)
        inter, union, bad_p, bad_g = _kernels.fused_counts(src_p, src_g, threshold, threshold)
        image = group.index if batch else None
        raise_bad_values("preds", src_p, bad_p, image)
        raise_bad_values("gts", src_g, bad_g, image)
        return CountBlock(group.index, inter, union, group.n_pred, group.n_gt, group.n_pixels)
    k = group.n_pred + group.n_gt
    n_words = (group.n_pixels + 63) // 64
    packed = np.empty((n_images, k, n_words), dtype=np.uint64)
    pack_into("preds", group.preds, packed, 0, threshold, group.index, batch)
    pack_into("gts", group.gts, packed, group.n_pred, threshold, group.index, batch)
    inter, union = _kernels.gram_counts(packed, group.n_pred)
    return CountBlock(group.index, inter, union, group.n_pred, group.n_gt, group.n_pixels)


@fill_doc(inputs=INPUT_RULES_DOC)
def pair_counts(
    preds: object, gts: object, *, batch: bool = False, threshold: float = DEFAULT.threshold
) -> PairCounts:
    """Pairwise intersection and union counts of the N + M masks of each image.

    Parameters
    ----------
    {inputs}

    Returns
    -------
    PairCounts
        The counts every metric reads; pass it to the metric functions' ``*_from_counts`` readouts or to
        :func:`ambiseg_metrics.evaluate` to avoid recounting.

    Notes
    -----
    Masks are bit-packed (64 pixels per ``uint64`` word) while being binarised, then
    ``|A ∩ B| = Σ_w popcount(a_w & b_w)`` is accumulated for all K(K+1)/2 pairs in one pass over the
    words. Work is O(K·P) for packing and O(K²·P/64) for the counts.

    Examples
    --------
    >>> import numpy as np
    >>> from ambiseg_metrics import pair_counts
    >>> preds = np.array([[[1, 1], [0, 0]], [[1, 0], [0, 0]]], dtype=bool)
    >>> gts = np.array([[[1, 1], [1, 0]]], dtype=bool)
    >>> c = pair_counts(preds, gts)
    >>> c.blocks[0].inter[0]
    array([[2, 1, 2],
           [1, 1, 1],
           [2, 1, 3]])
    """
    t = float(value_of("threshold", threshold))  # type: ignore[arg-type]
    n_images, groups = prepare_inputs(preds, gts, batch)
    blocks = tuple(count_group(g, t, bool(batch)) for g in groups)
    return PairCounts(blocks, n_images, bool(batch))


# ------------------------------------------------------------------------------------ vote tables
@dataclass(frozen=True)
class VoteBlock:
    """Vote tables of images that share N, M and the number of pixels P.

    Attributes
    ----------
    index : ndarray of int64, shape (B,)
        Positions of these images in the batch.
    table : ndarray of int64, shape (B, N + 1, M + 1)
        ``table[i, a, b]`` = number of pixels of image i marked by exactly a of the N predictions and b
        of the M annotations (the cells sum to P).
    areas : ndarray of int64, shape (B, N + M)
        Mask areas, predictions first.
    n_pred, n_gt, n_pixels : int
        N, M and P.
    """

    index: np.ndarray
    table: np.ndarray
    areas: np.ndarray
    n_pred: int
    n_gt: int
    n_pixels: int


@dataclass(frozen=True)
class VoteCounts:
    """Vote tables of a single image or of a batch, grouped into :class:`VoteBlock` s."""

    blocks: tuple[VoteBlock, ...]
    n_images: int
    batch: bool

    def per_image(self) -> list[VoteBlock]:
        """One single-image :class:`VoteBlock` per image, in input order."""
        out: list[VoteBlock | None] = [None] * self.n_images
        for blk in self.blocks:
            for i, image in enumerate(blk.index):
                out[int(image)] = VoteBlock(blk.index[i : i + 1], blk.table[i : i + 1], blk.areas[i : i + 1],
                                            blk.n_pred, blk.n_gt, blk.n_pixels)
        return out  # type: ignore[return-value]


def _vote_group(group: ImageGroup, threshold: float, batch: bool, with_gram: bool
                ) -> tuple[VoteBlock, CountBlock | None]:
    """Vote table (and Gram counts with ``with_gram``) of one group, one fused pass per contiguous chunk.

    A chunk that is not C-contiguous (a transposed view) is copied one image at a time."""
    from . import _kernels

    tables, areas, inters, unions = [], [], [], []
    row = 0
    for pc, gc in zip(group.preds, group.gts, strict=True):
        b = pc.shape[0]
        for i0, i1 in ([(0, b)] if pc.flags.c_contiguous and gc.flags.c_contiguous else
                       [(i, i + 1) for i in range(b)]):
            src_p = np.ascontiguousarray(pc[i0:i1]).reshape(i1 - i0, group.n_pred, -1)
            src_g = np.ascontiguousarray(gc[i0:i1]).reshape(i1 - i0, group.n_gt, -1)
            t, a, inter, union, bad_p, bad_g = _kernels.vote_counts(src_p, src_g, threshold, threshold,
                                                                     with_gram)
            image = group.index[row + i0 : row + i1] if batch else None
            raise_bad_values("preds", src_p, bad_p, image)
            raise_bad_values("gts", src_g, bad_g, image)
            tables.append(t)
            areas.append(a)
            inters.append(inter)
            unions.append(union)
        row += b
    def join(parts: list) -> np.ndarray:
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    votes = VoteBlock(group.index, join(tables), join(areas), group.n_pred, group.n_gt, group.n_pixels)
    pairs = None
    if with_gram:
        pairs = CountBlock(group.index, join(inters), join(unions), group.n_pred, group.n_gt, group.n_pixels)
    return votes, pairs


@fill_doc(inputs=INPUT_RULES_DOC)
def vote_counts(
    preds: object, gts: object, *, batch: bool = False, threshold: float = DEFAULT.threshold
) -> VoteCounts:
    """The vote table of each image: T[a, b] = pixels marked by exactly a of the N predictions and b of
    the M annotations.

    Parameters
    ----------
    {inputs}

    Returns
    -------
    VoteCounts
        The tables (and mask areas) that the rater-vote metrics of :mod:`ambiseg_metrics.metrics.raters`
        read for binary inputs.

    Notes
    -----
    Computed in the same kind of fused pass as :func:`pair_counts`: masks are bit-packed tile by tile
    and, per 64-pixel word, the prediction bits and the annotation bits are added up in bit-sliced
    counters; the pixels with count exactly a (b) are then one AND per counter plane, and
    ``T[a, b] += popcount(eq_a & eq_b)``. Work O(K·P/64 · log K + (N+1)(M+1)·P/64) and memory O(N·M).

    Examples
    --------
    >>> import numpy as np
    >>> from ambiseg_metrics import vote_counts
    >>> preds = np.array([[[1, 1, 0, 0]], [[1, 0, 0, 0]]], dtype=bool)   # N = 2
    >>> gts = np.array([[[1, 0, 1, 0]]], dtype=bool)                       # M = 1
    >>> vote_counts(preds, gts).blocks[0].table[0]
    array([[1, 1],
           [1, 0],
           [0, 1]])
    """
    t = float(value_of("threshold", threshold))  # type: ignore[arg-type]
    n_images, groups = prepare_inputs(preds, gts, batch)
    blocks = tuple(_vote_group(g, t, bool(batch), False)[0] for g in groups)
    return VoteCounts(blocks, n_images, bool(batch))


def pair_and_vote_counts(
    preds: object, gts: object, *, batch: bool = False, threshold: float = DEFAULT.threshold
) -> tuple[PairCounts, VoteCounts]:
    """:func:`pair_counts` and :func:`vote_counts` from one pass over the pixels (same arguments)."""
    t = float(value_of("threshold", threshold))  # type: ignore[arg-type]
    n_images, groups = prepare_inputs(preds, gts, batch)
    both = [_vote_group(g, t, bool(batch), True) for g in groups]
    pairs = PairCounts(tuple(p for _, p in both), n_images, bool(batch))  # type: ignore[misc]
    return pairs, VoteCounts(tuple(v for v, _ in both), n_images, bool(batch))
