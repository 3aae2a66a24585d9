"""GED and HM-IoU for multi-class label maps (Kohl et al.'s Cityscapes GED, PHiSeg, CCDM, MBH-Seg).

For label maps A and B (integer class ids per pixel) and a set of evaluated classes C, the similarity is
the mean over c ∈ C of the per-class IoU of the binary masks ``A == c`` and ``B == c``; a class absent
from both maps has no IoU (0/0) and is handled by ``class_absent``:

* ``"one"``: IoU 1 (PHiSeg ``generalised_energy_distance``; CCDM sets the NaN to 1);
* ``"zero"``: IoU 0 (MBH-Seg 2025, whose IoU is |A∩B| / (|A∪B| + 1e-8));
* ``"skip"``: the class is left out of the mean over classes (Kohl et al. ``metrics_from_conf_matrix``
  returns NaN and ``calc_energy_distances`` takes a nanmean; MoSE likewise). When no class is present
  in either map, the pair itself has no value and is left out of the GED term it would enter.

The per-class intersections are computed by the same bit-packed counting engine as the binary metrics
(one :func:`~ambiseg_metrics.pair_counts` call per class).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..conventions import Conventions, Options, resolve_options
from ..core._validate import ImageGroup, InputTypeError, pairs_error, prepare_inputs
from ..core.counts import pair_counts
from ..core.docfill import fill_doc
from ..core.pairwise import empty_pair_value, similarity_from_counts
from ..core.weights import GT_WEIGHTS_DOC, check_gt_weights
from ..options import DEFAULT
from .ged import GEDTerms, terms_from_distance
from .matching import hungarian_from_matrix

__all__ = ["multiclass_ged", "multiclass_ged_terms", "multiclass_hungarian_iou", "multiclass_similarity"]

#: The options the multi-class functions take.
MULTICLASS_OPTIONS = ("classes", "include_background", "class_absent", "estimator", "distance")

_INPUTS_DOC = """preds : array-like of int, shape (N, *spatial)
    N sampled label maps (integer class ids; bool is read as classes 0/1). With ``batch=True``:
    (B, N, *spatial) or a sequence of B per-image arrays.
gts : array-like of int, shape (M, *spatial)
    M annotated label maps of the same image(s).
classes : int, sequence of int or None, default None
    The evaluated classes. An int C means classes ``0..C-1`` (class 0 dropped unless
    ``include_background``); a sequence is used as given (e.g. Kohl et al.'s 10 switchable
    Cityscapes classes); None means ``0..max label present in the image``, background dropped
    unless ``include_background``.
batch : bool, default False
    Declare that the inputs hold several images.
include_background : bool, default False
    Keep class 0 when ``classes`` is an int or None.
class_absent : {"one", "zero", "skip"}, default "one"
    IoU of a class absent from both maps: 1, 0, or left out of the class mean.
conventions : str or Conventions, optional
    A preset (e.g. ``"kohl"``, ``"phiseg"``, ``"ccdm"``, ``"mbh"``): the value of every option not
    passed here (``class_absent``, ``include_background``, ``estimator``, ``distance``, ...). An
    option passed explicitly always wins over the preset, whatever its value. ``"phiseg"``, ``"ccdm"``
    and ``"ssn"`` require ``classes``: their codes average over the fixed classes 1..L-1 (a class absent
    from both maps scores 1), which ``classes=None`` (the classes present in the image) does not reproduce.
ignore_label : int, optional
    Pixels where any annotation has this label (e.g. 255, Cityscapes' "void") are left out of every
    comparison (sample-annotation, sample-sample and annotation-annotation pairs), as Kohl et al.'s
    ``calc_confusion(..., loss_mask=ignore_mask)`` does; the label is never an evaluated class."""


def _resolve(conventions: object, caller: str, **explicit: object) -> Options:
    """:func:`~ambiseg_metrics.conventions.resolve_options` for the multi-class functions, refusing
    ``classes=None`` under a preset whose code averages over fixed classes (``requires_classes``)."""
    o = resolve_options(conventions, accepted=MULTICLASS_OPTIONS, caller=caller, **explicit)  # type: ignore[arg-type]
    if o.classes is None and o.requires_classes:
        raise ValueError(
            f"the {o.name!r} conventions need classes= (a number of classes L or the class ids): its code "
            "averages the IoU over the fixed classes 1..L-1, scoring a class absent from both maps as 1; "
            "classes=None would average over the classes present in the image only and give other numbers"
        )
    return o


def _check_labels(group: ImageGroup) -> None:
    for side, arrays in (("preds", group.preds), ("gts", group.gts)):
        for arr in arrays:
            if arr.dtype.kind == "f":
                raise InputTypeError(
                    f"multi-class metrics need integer label maps; got {side} of dtype {arr.dtype} "
                    "(take the argmax over the class axis first)",
                    side=side,
                )


def _flat(chunks: list[np.ndarray]) -> np.ndarray:
    """(b, R, *spatial) chunks -> one (b_total, R, 1, P) array (spatial shapes may differ, P does not)."""
    return np.concatenate([c.reshape(c.shape[0], c.shape[1], 1, -1) for c in chunks])


def _class_list(o: Options, p: np.ndarray, g: np.ndarray, ignore_label: int | None = None) -> list[int]:
    """The evaluated class ids of an image (``o.classes`` is already checked by the option table)."""
    if isinstance(o.classes, tuple):
        return list(o.classes)
    if o.classes is None and ignore_label is not None:
        p, g = np.where(p == ignore_label, 0, p), np.where(g == ignore_label, 0, g)
    top = int(max(p.max(), g.max())) if o.classes is None else int(o.classes) - 1  # type: ignore[arg-type]
    chosen = [c for c in range(top + 1) if c != 0 or o.include_background]
    if not chosen:
        raise ValueError("no class left to evaluate (only background present and include_background=False); "
                         "pass classes= or include_background=True")
    return chosen


def _similarity_stack(p: np.ndarray, g: np.ndarray, class_ids: list[int], o: Options,
                      keep: np.ndarray | None = None) -> np.ndarray:
    """(b, K, K) class-averaged similarity for b images with label maps p (b, N, 1, P), g (b, M, 1, P)."""
    absent = empty_pair_value(o.class_absent)  # type: ignore[arg-type]
    total = None
    valid = None
    for c in class_ids:
        pc, gc = (p == c, g == c) if keep is None else ((p == c) & keep, (g == c) & keep)
        inter = pair_counts(pc, gc, batch=True).blocks[0].inter
        sim = similarity_from_counts(inter, o.distance, absent)  # type: ignore[arg-type]
        ok = ~np.isnan(sim)
        total = np.where(ok, sim, 0.0) if total is None else total + np.where(ok, sim, 0.0)
        valid = ok.astype(np.int64) if valid is None else valid + ok
    out = np.full(total.shape, np.nan)
    np.divide(total, valid, out=out, where=valid > 0)
    return out


def _kept_pixels(g: np.ndarray, ignore_label: int) -> np.ndarray:
    """(b, 1, 1, P) mask of the pixels where no annotation has ``ignore_label``."""
    if isinstance(ignore_label, bool) or not isinstance(ignore_label, (int, np.integer)):
        raise TypeError(f"ignore_label must be an integer label; got {ignore_label!r}")
    if ignore_label < 0 or ignore_label > np.iinfo(g.dtype).max:
        return np.ones((g.shape[0], 1, 1, g.shape[-1]), bool)  # the label cannot occur in these maps
    return ~np.any(g == ignore_label, axis=1, keepdims=True)


def _per_image_similarity(
    preds: object, gts: object, o: Options, batch: bool, ignore_label: int | None = None
) -> tuple[list[np.ndarray], list[int], bool]:
    """Class-averaged similarity matrix (K, K) of every image, and N of every image."""
    n_images, groups = prepare_inputs(preds, gts, batch)
    sims: list[np.ndarray | None] = [None] * n_images
    ns = [0] * n_images
    for group in groups:
        _check_labels(group)
        p, g = _flat(group.preds), _flat(group.gts)
        keep = None if ignore_label is None else _kept_pixels(g, ignore_label)
        if o.classes is None:  # per-image class list: count image by image
            parts = [(k, [k]) for k in range(len(group.index))]
        else:
            parts = [(0, list(range(len(group.index))))]
        for first, rows in parts:
            class_ids = _class_list(o, p[first], g[first], ignore_label)
            if ignore_label is not None and ignore_label in class_ids:
                raise ValueError(f"ignore_label={ignore_label} is also in classes {class_ids}")
            sim = _similarity_stack(p[rows], g[rows], class_ids, o, None if keep is None else keep[rows])
            for r, s in zip(rows, sim, strict=True):
                sims[int(group.index[r])] = s
                ns[int(group.index[r])] = group.n_pred
    return sims, ns, bool(batch)  # type: ignore[return-value]


@fill_doc(inputs=_INPUTS_DOC)
def multiclass_similarity(
    preds: object,
    gts: object,
    *,
    classes: int | Sequence[int] | None = DEFAULT.classes,
    batch: bool = False,
    include_background: bool = DEFAULT.include_background,
    class_absent: str = DEFAULT.class_absent,
    distance: str = DEFAULT.distance,
    conventions: str | Conventions | None = None,
    ignore_label: int | None = None,
) -> np.ndarray | list[np.ndarray]:
    """Class-averaged IoU (or Dice) of every pair of the N + M label maps, predictions first.

    Parameters
    ----------
    {inputs}
    distance : {"iou", "dice"}, default "iou"
        Per-class IoU or Dice.

    Returns
    -------
    ndarray of shape (K, K), K = N + M, or a list of B such arrays with ``batch=True``
        NaN where ``class_absent="skip"`` left no class to average.
    """
    o = _resolve(conventions, "multiclass_similarity()", classes=classes,
                 include_background=include_background, class_absent=class_absent, distance=distance)
    sims, _, is_batch = _per_image_similarity(preds, gts, o, batch, ignore_label)
    return sims if is_batch else sims[0]


@fill_doc(inputs=_INPUTS_DOC, weights=GT_WEIGHTS_DOC)
def multiclass_ged_terms(
    preds: object,
    gts: object,
    *,
    classes: int | Sequence[int] | None = DEFAULT.classes,
    batch: bool = False,
    include_background: bool = DEFAULT.include_background,
    class_absent: str = DEFAULT.class_absent,
    estimator: str = DEFAULT.estimator,
    distance: str = DEFAULT.distance,
    conventions: str | Conventions | None = None,
    ignore_label: int | None = None,
    gt_weights: object = None,
) -> GEDTerms:
    """Squared GED of multi-class label maps and its three terms, d = 1 - mean over classes of IoU.

    Parameters
    ----------
    {inputs}
    estimator : {"v-statistic", "unbiased"}, default "v-statistic"
        Self-pairs in (all published codes) or out (needs N, M >= 2).
    distance : {"iou", "dice"}, default "iou"
    {weights}
        Kohl et al.'s ``probability_weighted=True`` Cityscapes GED: the mode probabilities.

    Returns
    -------
    GEDTerms
        Floats, or arrays of B values with ``batch=True``. A term whose pairs were all left out
        (``class_absent="skip"`` and no class present) is NaN.

    References
    ----------
    Kohl et al., NeurIPS 2018 (github.com/SimonKohl/probabilistic_unet, evaluation/eval_cityscapes.py);
    Baumgartner et al., MICCAI 2019 (github.com/baumgach/PHiSeg-code, utils.py).

    Examples
    --------
    >>> import numpy as np
    >>> from ambiseg_metrics import multiclass_ged
    >>> y = np.array([[[1, 1, 2, 2]]])              # one annotation, classes 1 and 2
    >>> s = np.array([[[1, 1, 2, 0]]])              # IoU: class 1 = 1, class 2 = 1/2
    >>> multiclass_ged(s, y, classes=3)             # 2 * (1 - 3/4) - 0 - 0
    0.5
    """
    o = _resolve(conventions, "multiclass_ged_terms()", classes=classes,
                 include_background=include_background, class_absent=class_absent, estimator=estimator,
                 distance=distance)
    sims, ns, is_batch = _per_image_similarity(preds, gts, o, batch, ignore_label)
    weights = check_gt_weights(gt_weights, [s.shape[0] - n for s, n in zip(sims, ns, strict=True)],
                               bool(batch)) if gt_weights is not None else None
    rows = []
    for image, (sim, n) in enumerate(zip(sims, ns, strict=True)):
        if o.estimator == "unbiased":
            where = image if is_batch else None
            error = pairs_error('ged with estimator="unbiased"', n, sim.shape[0] - n, where)
            if error is not None:
                raise error
        w = None if weights is None else weights[image][None]
        rows.append(terms_from_distance(1.0 - sim[None], n, o.estimator, w)[0])  # type: ignore[arg-type]
    values = np.array(rows)
    if is_batch:
        return GEDTerms(*(values[:, j] for j in range(4)))
    return GEDTerms(*(float(v) for v in values[0]))


@fill_doc(inputs=_INPUTS_DOC, weights=GT_WEIGHTS_DOC)
def multiclass_ged(
    preds: object,
    gts: object,
    *,
    classes: int | Sequence[int] | None = DEFAULT.classes,
    batch: bool = False,
    include_background: bool = DEFAULT.include_background,
    class_absent: str = DEFAULT.class_absent,
    estimator: str = DEFAULT.estimator,
    distance: str = DEFAULT.distance,
    conventions: str | Conventions | None = None,
    ignore_label: int | None = None,
    gt_weights: object = None,
) -> float | np.ndarray:
    """Squared GED of multi-class label maps (see :func:`multiclass_ged_terms`).

    Parameters
    ----------
    {inputs}
    estimator : {"v-statistic", "unbiased"}, default "v-statistic"
    distance : {"iou", "dice"}, default "iou"
    {weights}

    Returns
    -------
    float or ndarray
        B values with ``batch=True``.
    """
    return multiclass_ged_terms(
        preds, gts, classes=classes, batch=batch, include_background=include_background,
        class_absent=class_absent, estimator=estimator, distance=distance, conventions=conventions,
        ignore_label=ignore_label, gt_weights=gt_weights,
    ).ged


@fill_doc(inputs=_INPUTS_DOC, weights=GT_WEIGHTS_DOC)
def multiclass_hungarian_iou(
    preds: object,
    gts: object,
    *,
    classes: int | Sequence[int] | None = DEFAULT.classes,
    batch: bool = False,
    include_background: bool = DEFAULT.include_background,
    class_absent: str = DEFAULT.class_absent,
    distance: str = DEFAULT.distance,
    conventions: str | Conventions | None = None,
    ignore_label: int | None = None,
    gt_weights: object = None,
) -> float | np.ndarray:
    """HM-IoU of multi-class label maps: Hungarian matching (lcm duplication) on the class-averaged IoU.

    Parameters
    ----------
    {inputs}
    distance : {"iou", "dice"}, default "iou"
        Match on class-averaged IoU or Dice.
    {weights}
        With weights, HM-IoU is the optimal transport value with masses 1/N on the predictions and w_m on
        the annotations (solved exactly as a linear program), as :func:`~ambiseg_metrics.hungarian_iou`.

    Returns
    -------
    float or ndarray
        In [0, 1]; B values with ``batch=True``. A pair with no class to average (``"skip"``) counts
        as identical (1).

    References
    ----------
    Zbinden et al., ICCV 2023 (github.com/LarsDoorenbos/ccdm-stochastic-segmentation,
    evaluation/evaluate_lidc_uncertainty.py, batched_hungarian_matching).
    """
    o = _resolve(conventions, "multiclass_hungarian_iou()", classes=classes,
                 include_background=include_background, class_absent=class_absent, distance=distance)
    sims, ns, is_batch = _per_image_similarity(preds, gts, o, batch, ignore_label)
    weights = check_gt_weights(gt_weights, [s.shape[0] - n for s, n in zip(sims, ns, strict=True)],
                               bool(batch)) if gt_weights is not None else None
    values = np.array([
        hungarian_from_matrix(np.nan_to_num(sim[:n, n:], nan=1.0), col_weights=w)
        for (sim, n), w in zip(zip(sims, ns, strict=True), weights or [None] * len(sims), strict=True)
    ])
    return values if is_batch else float(values[0])

