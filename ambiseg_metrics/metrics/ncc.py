"""Metrics of probability maps: PHiSeg's NCC and the MBH-Seg ``Dice_soft``.

These two read the (soft) pixel values themselves, not the binary Gram counts of the other metrics:

* :func:`ncc` (Baumgartner et al., 2019): how well the model's expected cross-entropy map against its own
  mean prediction correlates with its expected cross-entropy map against each annotator;
* :func:`dice_soft` (MBH-Seg 2025 challenge): Dice between the mean prediction and the mean annotation,
  both thresholded at several levels, averaged over the levels.

Inputs follow the library's rules for shapes and batches; values are read as probabilities (float in
[0, 1], NaN rejected), and bool/integer masks as hard 0/1 probabilities.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from ..core._validate import prepare_inputs, value_range_error
from ..core.docfill import fill_doc
from ..core.pairwise import dice_of_masks

__all__ = ["DICE_SOFT_THRESHOLDS", "NCC_EPS", "dice_soft", "ncc"]

#: ε added inside the logarithm of the cross-entropy maps, as in PHiSeg's ``pixel_wise_xent``.
NCC_EPS = 1e-8
#: The thresholds of the MBH-Seg 2025 ``dice_at_thresh``.
DICE_SOFT_THRESHOLDS = (0.1, 0.3, 0.5, 0.7, 0.9)

_SOFT_INPUTS_DOC = """batch : bool, default False
    Declare that the inputs hold several images: (B, N, ...) arrays or sequences of per-image arrays
    (N, M and the image size may differ between images)."""


def _as_probabilities(a: np.ndarray, name: str, image: int | None) -> np.ndarray:
    """Float64 copy of a kernel-dtype array: unsigned -> nonzero as 1.0; float -> checked in [0, 1]."""
    if a.dtype.kind == "u":
        return (a != 0).astype(np.float64)
    flat = a.reshape(a.shape[0], -1)
    bad = ~((flat >= 0) & (flat <= 1))  # NaN included
    if bad.any():
        mask, pixel = (int(i) for i in np.argwhere(bad)[0])
        raise value_range_error(name, flat[mask, pixel], mask, pixel, image)
    return a.astype(np.float64)


_Image = tuple[int, np.ndarray, np.ndarray]


def _images(preds: object, gts: object, batch: bool) -> tuple[int, Iterator[_Image]]:
    """(n_images, iterator of (image index, preds (N, ...) float64, gts (M, ...) float64))."""
    n_images, groups = prepare_inputs(preds, gts, batch)

    def gen() -> Iterator[_Image]:
        for group in groups:
            rows = [(p, g) for p, g in zip(group.preds, group.gts, strict=True)]
            k = 0
            for p_chunk, g_chunk in rows:
                for b in range(p_chunk.shape[0]):
                    image = int(group.index[k])
                    where = image if batch else None
                    yield (
                        image,
                        _as_probabilities(p_chunk[b], "preds", where),
                        _as_probabilities(g_chunk[b], "gts", where),
                    )
                    k += 1

    return n_images, gen()


def _collect(n_images: int, batch: bool, items: Iterator[tuple[int, float]]) -> float | np.ndarray:
    out = np.empty(n_images)
    for image, value in items:
        out[image] = value
    return out if batch else float(out[0])


def _classes(x: np.ndarray) -> np.ndarray:
    """(R, C, P): a stack of class probability maps (R, C, ...) with its pixels flattened."""
    return x.reshape(x.shape[0], x.shape[1], -1)


def _pearson(a: np.ndarray, b: np.ndarray, constant_value: float) -> np.ndarray:
    """Pearson correlation of map a (P,) with each row of b (M, P); ``constant_value`` for flat maps."""
    ac = a - a.mean()
    bc = b - b.mean(axis=1, keepdims=True)
    sa = np.sqrt((ac * ac).mean())
    sb = np.sqrt((bc * bc).mean(axis=1))
    flat = (np.ptp(a) == 0) | (np.ptp(b, axis=1) == 0)
    out = np.full(b.shape[0], float(constant_value))
    ok = ~flat
    out[ok] = (bc[ok] @ ac) / (b.shape[1] * sa * sb[ok])
    return out


def _mean_log(x: np.ndarray, eps: float) -> np.ndarray:
    """E_i[log(x_i + ε)] over the first axis, without keeping a second full-size temporary."""
    t = x + eps
    np.log(t, out=t)
    return t.mean(axis=0)


def _ncc_image(s: np.ndarray, y: np.ndarray, channels: bool, eps: float, constant_value: float) -> float:
    if channels:
        sc, yc = _classes(s), _classes(y)
        mean_log = _mean_log(sc, eps)  # (C, P): E_i[log(s_ic + ε)]
        e_ss = -(sc.mean(axis=0) * mean_log).sum(axis=0)  # E_i[CE(mean prediction, s_i)] per pixel
        e_sy = -(yc * mean_log[None]).sum(axis=1)  # (M, P): E_i[CE(y_j, s_i)] per pixel
    else:  # classes [1 - p, p] written out: two logarithms per sample pixel, no class axis
        p = s.reshape(s.shape[0], -1)
        q = y.reshape(y.shape[0], -1)
        log0 = _mean_log(1.0 - p, eps)
        log1 = _mean_log(p, eps)
        p_mean = p.mean(axis=0)
        e_ss = -((1.0 - p_mean) * log0 + p_mean * log1)
        e_sy = -((1.0 - q) * log0 + q * log1)
    return float(_pearson(e_ss, e_sy, constant_value).mean())


@fill_doc(batch=_SOFT_INPUTS_DOC)
def ncc(
    preds: object,
    gts: object,
    *,
    batch: bool = False,
    channels: bool = False,
    eps: float = NCC_EPS,
    constant_value: float = 0.0,
) -> float | np.ndarray:
    """NCC of PHiSeg: mean over annotators of the correlation of two expected cross-entropy maps.

    With samples :math:`s_1..s_N` (class probabilities per pixel), their mean :math:`\\bar s` and
    annotations :math:`y_1..y_M`, per pixel

    .. math::

        E_{ss} = \\frac{1}{N}\\sum_i \\mathrm{CE}(\\bar s, s_i), \\qquad
        E_{sy_j} = \\frac{1}{N}\\sum_i \\mathrm{CE}(y_j, s_i), \\qquad
        \\mathrm{CE}(p, q) = -\\sum_c p_c \\log(q_c + \\varepsilon),

    and :math:`\\mathrm{NCC} = \\frac{1}{M}\\sum_j \\rho(E_{ss}, E_{sy_j})` with ρ the Pearson correlation
    over the pixels (population standard deviations, as PHiSeg's ``ncc``).

    Parameters
    ----------
    preds : array-like, shape (N, *spatial), or (N, C, H, W) with ``channels=True``
        The N samples as foreground probabilities (float in [0, 1]; bool/int masks are hard 0/1), or
        with ``channels=True`` as per-class probabilities (softmax outputs) with the class axis second.
    gts : array-like, shape (M, *spatial), or (M, C, H, W) with ``channels=True``
        The M annotations (binary masks, soft labels in [0, 1], or one-hot with ``channels=True``).
    {batch}
    channels : bool, default False
        False: binary, the classes are [1 - p, p]. True: axis 1 of each per-image array is the class
        axis (2D images only).
    eps : float, default 1e-8
        ε inside the logarithm (PHiSeg's value); it keeps log(0) finite for hard 0/1 samples.
    constant_value : float, default 0.0
        Correlation reported for an annotator when either map is constant over the image (its standard
        deviation is 0 and Pearson's ρ is 0/0). This happens, for instance, when all samples are the
        same hard mask (E_ss is then the same at every pixel). PHiSeg's code returns NaN there; the
        default reports 0 ("no correlation measurable"); pass ``float("nan")`` to get NaN.

    Returns
    -------
    float or ndarray
        NCC in [-1, 1] (higher is better); B values with ``batch=True``.

    References
    ----------
    Baumgartner et al., "PHiSeg: Capturing Uncertainty in Medical Image Segmentation", MICCAI 2019;
    github.com/baumgach/PHiSeg-code, utils.py (``variance_ncc_dist``, ``ncc``).

    Examples
    --------
    >>> import numpy as np
    >>> from ambiseg_metrics import ncc
    >>> s = np.array([[[0.9, 0.6, 0.2, 0.1]], [[0.8, 0.3, 0.3, 0.1]]])   # N = 2 soft samples
    >>> y = np.array([[[1, 1, 0, 0]], [[1, 0, 0, 0]]], bool)              # M = 2 annotations
    >>> round(ncc(s, y), 4)
    0.9465
    >>> ncc(np.ones((2, 1, 4)), y)                                        # identical samples: E_ss flat
    0.0
    """
    eps = float(eps)
    if not eps > 0:
        raise ValueError(f"eps must be > 0; got {eps!r}")
    if not isinstance(channels, bool):
        raise TypeError(f"channels must be True or False; got {channels!r}")
    n_images, images = _images(preds, gts, batch)
    return _collect(
        n_images, bool(batch), ((i, _ncc_image(s, y, channels, eps, constant_value)) for i, s, y in images)
    )


@fill_doc(batch=_SOFT_INPUTS_DOC)
def dice_soft(
    preds: object,
    gts: object,
    *,
    batch: bool = False,
    thresholds: Sequence[float] = DICE_SOFT_THRESHOLDS,
) -> float | np.ndarray:
    """Dice between the mean prediction and the mean annotation thresholded at several levels (MBH-Seg).

    .. math::

        \\mathrm{Dice_{soft}} = \\frac{1}{|T|}\\sum_{t \\in T}
        \\mathrm{Dice}(\\bar S > t, \\bar Y > t), \\quad \\bar S = \\frac{1}{N}\\sum_i S_i, \\;
        \\bar Y = \\frac{1}{M}\\sum_j Y_j

    Parameters
    ----------
    preds : array-like, shape (N, *spatial)
        Samples: bool/int masks (nonzero = 1) or float probabilities in [0, 1], averaged as they are
        (no binarisation before the mean, as in the challenge code).
    gts : array-like, shape (M, *spatial)
        Annotations, same rules.
    {batch}
    thresholds : sequence of float, default (0.1, 0.3, 0.5, 0.7, 0.9)
        Levels T, each in [0, 1).

    Returns
    -------
    float or ndarray
        In [0, 1]; B values with ``batch=True``. Dice(∅, ∅) = 1 at a level where both maps are empty.

    References
    ----------
    MBH-Seg 2025 challenge evaluation, github.com/mbhseg/metrics-mbhseg2025, metrics_set.py
    (``dice_at_thresh``; their smoothed Dice (2I + 1e-8)/(S + 1e-8) differs from the exact ratio by less
    than 1e-8/S).

    Examples
    --------
    >>> import numpy as np
    >>> from ambiseg_metrics import dice_soft
    >>> y = np.array([[[1, 1, 0, 0]], [[1, 0, 0, 0]]], bool)     # mean: 1, .5, 0, 0
    >>> s = np.array([[[1, 0, 0, 0]]], bool)                     # mean: 1, 0, 0, 0
    >>> round(dice_soft(s, y), 4)                                # t=.1, .3: 2/3; t=.5, .7, .9: 1
    0.8667
    """
    levels = [float(t) for t in thresholds]
    if not levels:
        raise ValueError("thresholds is empty: give at least one level")
    for t in levels:
        if not 0.0 <= t < 1.0:
            raise ValueError(f"thresholds must lie in [0, 1); got {t!r}")
    n_images, images = _images(preds, gts, batch)

    def value(s: np.ndarray, y: np.ndarray) -> float:
        ms, my = s.mean(axis=0), y.mean(axis=0)
        return float(np.mean([dice_of_masks(ms > t, my > t) for t in levels]))

    return _collect(n_images, bool(batch), ((i, value(s, y)) for i, s, y in images))

