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

from ..core._validate import ImageGroup, check_choice, prepare_inputs
from ..core.counts import pair_counts
from ..core.weights import GT_WEIGHTS_DOC, check_gt_weights
from .ged import _EMPTY_VALUES, DISTANCES, EMPTY_PAIRS, ESTIMATORS, GEDTerms, _terms_from_distance
from .matching import hungarian_from_matrix

__all__ = ["multiclass_ged", "multiclass_ged_terms", "multiclass_hungarian_iou", "multiclass_similarity"]

ClassSpec = int | Sequence[int] | None

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
        A preset (e.g. ``"kohl"``, ``"phiseg"``, ``"ccdm"``, ``"mbh"``): sets ``class_absent``,
        ``include_background``, ``estimator`` and ``distance``; an argument given with a value other
        than its default overrides it. ``"phiseg"`` and ``"ccdm"`` require ``classes``: their codes
        average over the fixed classes 1..L-1 (a class absent from both maps scores 1), which
        ``classes=None`` (the classes present in the image) does not reproduce.
    ignore_label : int, optional
        Pixels where any annotation has this label (e.g. 255, Cityscapes' "void") are left out of every
        comparison (sample-annotation, sample-sample and annotation-annotation pairs), as Kohl et al.'s
        ``calc_confusion(..., loss_mask=ignore_mask)`` does; the label is never an evaluated class."""


def _apply_conventions(conventions: object, classes: object = None, **given: object) -> dict[str, object]:
    """Options from a preset (name or Conventions); arguments that differ from their defaults win."""
    if conventions is None:
        return given
    from ..conventions import get_convention

    conv = get_convention(conventions)  # type: ignore[arg-type]
    if classes is None and getattr(conv, "requires_classes", False):
        raise ValueError(
            f"the {conv.name!r} conventions need classes= (a number of classes L or the class ids): its code "
            "averages the IoU over the fixed classes 1..L-1, scoring a class absent from both maps as 1; "
            "classes=None would average over the classes present in the image only and give other numbers"
        )
    defaults = {"class_absent": "one", "include_background": False, "estimator": "v-statistic",
                "distance": "iou"}
    return {k: (v if v != defaults[k] else getattr(conv, k)) for k, v in given.items()}


def _check_labels(group: ImageGroup) -> None:
    for arr in (*group.preds, *group.gts):
        if arr.dtype.kind == "f":
            raise TypeError(
                f"multi-class metrics need integer label maps; got dtype {arr.dtype} "
                "(take the argmax over the class axis first)"
            )


def _flat(chunks: list[np.ndarray]) -> np.ndarray:
    """(b, R, *spatial) chunks -> one (b_total, R, 1, P) array (spatial shapes may differ, P does not)."""
    return np.concatenate([c.reshape(c.shape[0], c.shape[1], 1, -1) for c in chunks])


def _class_list(classes: ClassSpec, include_background: bool, p: np.ndarray, g: np.ndarray,
                ignore_label: int | None = None) -> list[int]:
    if classes is None:
        if ignore_label is not None:
            p, g = np.where(p == ignore_label, 0, p), np.where(g == ignore_label, 0, g)
        top = int(max(p.max(), g.max()))
        chosen = list(range(top + 1))
    elif isinstance(classes, (int, np.integer)) and not isinstance(classes, bool):
        if classes < 1:
            raise ValueError(f"classes must be >= 1 when given as a number of classes; got {classes}")
        chosen = list(range(int(classes)))
    else:
        chosen = [int(c) for c in classes]  # type: ignore[union-attr]
        if not chosen:
            raise ValueError("classes is empty: give at least one class id")
        return chosen
    if not include_background:
        chosen = [c for c in chosen if c != 0]
    if not chosen:
        raise ValueError("no class left to evaluate (only background present and include_background=False); "
                         "pass classes= or include_background=True")
    return chosen


def _similarity_stack(
    p: np.ndarray, g: np.ndarray, class_ids: list[int], distance: str, class_absent: str,
    keep: np.ndarray | None = None,
) -> np.ndarray:
    """(b, K, K) class-averaged similarity for b images with label maps p (b, N, 1, P), g (b, M, 1, P)."""
    absent = _EMPTY_VALUES[class_absent]
    total = None
    valid = None
    for c in class_ids:
        pc, gc = (p == c, g == c) if keep is None else ((p == c) & keep, (g == c) & keep)
        inter = pair_counts(pc, gc, batch=True).blocks[0].inter.astype(np.float64)
        areas = np.diagonal(inter, axis1=1, axis2=2)
        sums = areas[:, :, None] + areas[:, None, :]
        denom = sums - inter if distance == "iou" else sums
        num = inter if distance == "iou" else 2.0 * inter
        sim = np.full(inter.shape, absent)
        np.divide(num, denom, out=sim, where=denom > 0)
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
    preds: object,
    gts: object,
    *,
    classes: ClassSpec,
    batch: bool,
    include_background: bool,
    class_absent: str,
    distance: str,
    ignore_label: int | None = None,
) -> tuple[list[np.ndarray], list[int], bool]:
    """Class-averaged similarity matrix (K, K) of every image, and N of every image."""
    check_choice("class_absent", class_absent, EMPTY_PAIRS)
    check_choice("distance", distance, DISTANCES)
    if not isinstance(include_background, bool):
        raise TypeError(f"include_background must be True or False; got {include_background!r}")
    n_images, groups = prepare_inputs(preds, gts, batch)
    sims: list[np.ndarray | None] = [None] * n_images
    ns = [0] * n_images
    for group in groups:
        _check_labels(group)
        p, g = _flat(group.preds), _flat(group.gts)
        keep = None if ignore_label is None else _kept_pixels(g, ignore_label)
        if classes is None:  # per-image class list: count image by image
            parts = [(k, [k]) for k in range(len(group.index))]
        else:
            parts = [(0, list(range(len(group.index))))]
        for first, rows in parts:
            class_ids = _class_list(classes, include_background, p[first], g[first], ignore_label)
            if ignore_label is not None and ignore_label in class_ids:
                raise ValueError(f"ignore_label={ignore_label} is also in classes {class_ids}")
            sim = _similarity_stack(p[rows], g[rows], class_ids, distance, class_absent,
                                    None if keep is None else keep[rows])
            for r, s in zip(rows, sim, strict=True):
                sims[int(group.index[r])] = s
                ns[int(group.index[r])] = group.n_pred
    return sims, ns, bool(batch)  # type: ignore[return-value]


def multiclass_similarity(
    preds: object,
    gts: object,
    *,
    classes: ClassSpec = None,
    batch: bool = False,
    include_background: bool = False,
    class_absent: str = "one",
    distance: str = "iou",
    conventions: object = None,
    ignore_label: int | None = None,
) -> np.ndarray | list[np.ndarray]:
    """Class-averaged IoU (or Dice) of every pair of the N + M label maps, predictions first.

    Parameters
    ----------
    {inputs}
    distance : {{"iou", "dice"}}, default "iou"
        Per-class IoU or Dice.

    Returns
    -------
    ndarray of shape (K, K), K = N + M, or a list of B such arrays with ``batch=True``
        NaN where ``class_absent="skip"`` left no class to average.
    """
    opts = _apply_conventions(conventions, classes, class_absent=class_absent,
                              include_background=include_background,
                              distance=distance)
    sims, _, is_batch = _per_image_similarity(
        preds, gts, classes=classes, batch=batch, ignore_label=ignore_label, **opts
    )
    return sims if is_batch else sims[0]


def multiclass_ged_terms(
    preds: object,
    gts: object,
    *,
    classes: ClassSpec = None,
    batch: bool = False,
    include_background: bool = False,
    class_absent: str = "one",
    estimator: str = "v-statistic",
    distance: str = "iou",
    conventions: object = None,
    ignore_label: int | None = None,
    gt_weights: object = None,
) -> GEDTerms:
    """Squared GED of multi-class label maps and its three terms, d = 1 - mean over classes of IoU.

    Parameters
    ----------
    {inputs}
    estimator : {{"v-statistic", "unbiased"}}, default "v-statistic"
        Self-pairs in (all published codes) or out (needs N, M >= 2).
    distance : {{"iou", "dice"}}, default "iou"
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
    opts = _apply_conventions(conventions, classes, class_absent=class_absent,
                              include_background=include_background,
                              distance=distance, estimator=estimator)
    estimator = check_choice("estimator", opts.pop("estimator"), ESTIMATORS)
    sims, ns, is_batch = _per_image_similarity(
        preds, gts, classes=classes, batch=batch, ignore_label=ignore_label, **opts
    )
    weights = check_gt_weights(gt_weights, [s.shape[0] - n for s, n in zip(sims, ns, strict=True)],
                               bool(batch)) if gt_weights is not None else None
    rows = []
    for i, (sim, n) in enumerate(zip(sims, ns, strict=True)):
        m = sim.shape[0] - n
        if estimator == "unbiased" and (n < 2 or m < 2):
            raise ValueError(
                f'ged with estimator="unbiased" needs at least 2 predictions and 2 annotations per image; '
                f"got N={n}, M={m}"
            )
        w = None if weights is None else weights[i][None]
        rows.append(_terms_from_distance(1.0 - sim[None], n, estimator, w)[0])
    values = np.array(rows)
    if is_batch:
        return GEDTerms(*(values[:, j] for j in range(4)))
    return GEDTerms(*(float(v) for v in values[0]))


def multiclass_ged(
    preds: object,
    gts: object,
    *,
    classes: ClassSpec = None,
    batch: bool = False,
    include_background: bool = False,
    class_absent: str = "one",
    estimator: str = "v-statistic",
    distance: str = "iou",
    conventions: object = None,
    ignore_label: int | None = None,
    gt_weights: object = None,
) -> float | np.ndarray:
    """Squared GED of multi-class label maps (see :func:`multiclass_ged_terms`).

    Parameters
    ----------
    {inputs}
    estimator : {{"v-statistic", "unbiased"}}, default "v-statistic"
    distance : {{"iou", "dice"}}, default "iou"

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


def multiclass_hungarian_iou(
    preds: object,
    gts: object,
    *,
    classes: ClassSpec = None,
    batch: bool = False,
    include_background: bool = False,
    class_absent: str = "one",
    distance: str = "iou",
    conventions: object = None,
    ignore_label: int | None = None,
) -> float | np.ndarray:
    """HM-IoU of multi-class label maps: Hungarian matching (lcm duplication) on the class-averaged IoU.

    Parameters
    ----------
    {inputs}
    distance : {{"iou", "dice"}}, default "iou"
        Match on class-averaged IoU or Dice.

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
    opts = _apply_conventions(conventions, classes, class_absent=class_absent,
                              include_background=include_background,
                              distance=distance)
    sims, ns, is_batch = _per_image_similarity(
        preds, gts, classes=classes, batch=batch, ignore_label=ignore_label, **opts
    )
    values = np.array(
        [hungarian_from_matrix(np.nan_to_num(sim[:n, n:], nan=1.0)) for sim, n in zip(sims, ns, strict=True)]
    )
    return values if is_batch else float(values[0])


for _f in (multiclass_similarity, multiclass_ged_terms, multiclass_ged, multiclass_hungarian_iou):
    _f.__doc__ = _f.__doc__.replace("{inputs}", _INPUTS_DOC).replace("{weights}", GT_WEIGHTS_DOC)
    _f.__doc__ = _f.__doc__.replace("{{", "{").replace("}}", "}")
