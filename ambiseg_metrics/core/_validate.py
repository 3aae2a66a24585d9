"""Input rules: the one place that knows how user inputs are read and where every input error is raised.

Masks are turned into foreground/background as follows (the rule is documented once here and in every
public docstring through :data:`INPUT_RULES_DOC`):

* ``bool`` and integer arrays: nonzero is foreground (so 0/1 and 0/255 masks both work);
* floating-point arrays are probabilities: foreground is ``value > threshold`` (compared in the array's
  own precision, as numpy does), and every value must lie in [0, 1] (NaN is rejected);
* anything else (complex, object, strings) raises :class:`TypeError`.

Binarisation itself happens inside the packing kernel (:mod:`ambiseg_metrics.core._kernels`) in the same pass
that packs the bits, so a float volume is never copied as a whole; the kernel reports the first invalid
value of each mask and :func:`raise_bad_values` turns it into the error message.

Every error about the masks themselves is an :class:`InputError` (a ``ValueError``; :class:`InputTypeError`
for a dtype the rules reject is also a ``TypeError``) carrying *which* input is wrong as fields: ``side``
(``"preds"`` or ``"gts"``), ``image`` (position in a batch), ``index`` (mask number within the image's
stack) and ``path`` (set by the file layer). Code that needs to know where an error points reads these
fields; the message is text for people.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "INPUT_RULES_DOC",
    "MIN_MASKS",
    "ImageGroup",
    "InputError",
    "InputTypeError",
    "check_bool",
    "check_choice",
    "check_threshold",
    "pairs_error",
    "prepare_inputs",
    "raise_bad_values",
    "value_range_error",
]

#: The fewest predictions (and annotations) per image that the within-set metrics need (pairs i < j).
MIN_MASKS = 2


class InputError(ValueError):
    """Bad input masks: the message says what is wrong; the fields say where.

    Attributes
    ----------
    side : {"preds", "gts"} or None
        Which input is wrong (None: the pair of inputs, e.g. too few masks or mismatched shapes).
    image : int or None
        Position of the image in a batch (None for a single image).
    index : int or None
        Number of the offending mask within the image's stack (None when not one mask).
    path : str or None
        The file the masks came from, when the file layer knows it.
    """

    def __init__(
        self, message: str, *, side: str | None = None, image: int | None = None, index: int | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.side = side
        self.image = image
        self.index = index
        self.path = path

    @property
    def reason(self) -> str:
        """The message (text for people)."""
        return str(self.args[0]) if self.args else ""

    def __reduce__(self):  # keep the fields when the error crosses a process boundary
        fields = {"side": self.side, "image": self.image, "index": self.index, "path": self.path}
        return (_rebuild, (type(self), self.reason, fields))


def _rebuild(cls: type, message: str, fields: dict) -> InputError:
    return cls(message, **fields)


class InputTypeError(InputError, TypeError):
    """An :class:`InputError` about the type of an input (e.g. a dtype the rules reject); also a TypeError."""

#: numpydoc text of the input parameters, for :func:`~ambiseg_metrics.core.docfill.fill_doc`.
INPUT_RULES_DOC = """preds : array-like, shape (N, *spatial)
    The N sampled masks of one image; spatial is 2D ``(H, W)`` or 3D ``(D, H, W)``. With
    ``batch=True``: an array of shape (B, N, *spatial), or a sequence of B per-image arrays (N and the
    image size may differ between images). numpy arrays, lists of arrays and torch tensors are
    accepted. bool/integer: nonzero is foreground; float: probabilities, foreground is
    ``> threshold``.
gts : array-like, shape (M, *spatial)
    The M annotations of the same image(s), same rules; spatial shape must equal that of ``preds``.
batch : bool, default False
    Declare that the inputs hold several images (never guessed from ``ndim``).
threshold : float, default 0.5
    Foreground threshold for float inputs, in [0, 1)."""


@dataclass(frozen=True)
class ImageGroup:
    """Images that share (N, M, number of pixels): packed into one array and counted in one kernel call.

    Attributes
    ----------
    index : ndarray of int64, shape (B_g,)
        Positions of these images in the caller's batch.
    preds, gts : list of ndarray
        Either one array of shape (B_g, N, *spatial) / (B_g, M, *spatial) (a uniform batch), or B_g arrays
        of shape (1, N, *spatial) / (1, M, *spatial); dtype unsigned integer (a view of the user's bool or
        integer array) or float32/float64; not binarised and not copied.
    n_pred, n_gt, n_pixels : int
    """

    index: np.ndarray
    preds: list[np.ndarray]
    gts: list[np.ndarray]
    n_pred: int
    n_gt: int
    n_pixels: int


def check_threshold(threshold: object) -> float:
    """Return ``threshold`` as a float after checking it is a real number in [0, 1)."""
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"threshold must be a real number in [0, 1); got {threshold!r}")
    t = float(threshold)
    if not (0.0 <= t < 1.0):
        raise ValueError(f"threshold must lie in [0, 1); got {threshold!r}")
    return t


def check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise a ValueError listing them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` if it is ``True`` or ``False`` (numpy bools too), else raise a TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def pairs_error(what: str, n_pred: int, n_gt: int, image: int | None = None) -> InputError | None:
    """The error for an image with fewer than :data:`MIN_MASKS` predictions or annotations, else None.

    The one statement of the N < 2 rule: every metric that needs pairs of distinct masks on both sides
    (the unbiased GED, D_a and the CI) asks here.
    """
    if n_pred >= MIN_MASKS and n_gt >= MIN_MASKS:
        return None
    where = "" if image is None else f" (image {image})"
    return InputError(
        f"{what} needs at least {MIN_MASKS} predictions and {MIN_MASKS} annotations per image; "
        f"got N={n_pred}, M={n_gt}{where}",
        image=image,
    )


def value_range_error(side: str, value: float, mask: int, pixel: int, image: int | None = None) -> InputError:
    """The error for a float mask value outside [0, 1] (or NaN): the one message of that rule."""
    where = f"mask {mask}, pixel {pixel}"
    if image is not None:
        where = f"image {image}, " + where
    what = "NaN" if np.isnan(value) else f"{float(value)!r}"
    return InputError(
        f"{side} contains {what} ({where}): probabilities must lie in [0, 1] without NaN (float masks are "
        "read as probabilities); pass bool/integer masks, or clip/normalise the probabilities first",
        side=side, image=image, index=mask,
    )


def _is_torch_tensor(x: object) -> bool:
    return type(x).__module__.split(".")[0] == "torch" and hasattr(x, "detach")


def _to_array(x: object, name: str) -> np.ndarray:
    """Convert one array-like (numpy, torch tensor, nested list) to a numpy array without copying numpy."""
    if isinstance(x, np.ndarray):
        return x
    if _is_torch_tensor(x):
        t = x.detach()
        if str(t.dtype) == "torch.bfloat16":  # numpy has no bfloat16
            t = t.float()
        return t.cpu().numpy()
    if isinstance(x, (list, tuple)):
        if len(x) == 0:
            raise InputError(f"{name} is empty: at least one mask is needed", side=_side(name))
        if not all(isinstance(p, np.ndarray) or _is_torch_tensor(p) for p in x):
            try:  # nested Python lists (of lists) of numbers
                return np.asarray(x)
            except ValueError as exc:
                raise InputError(f"{name} is a ragged nested list; the masks must share one shape",
                                 side=_side(name)) from exc
        parts = [_to_array(p, f"{name}[{i}]") for i, p in enumerate(x)]
        shapes = {p.shape for p in parts}
        if len(shapes) > 1:
            raise InputError(f"{name}: the masks in the list have different shapes {sorted(shapes)}",
                             side=_side(name))
        return np.stack(parts)
    if isinstance(x, (str, bytes)) or x is None or np.isscalar(x):
        raise InputTypeError(
            f"{name} must be an array of masks (numpy, torch or list); got {type(x).__name__}",
            side=_side(name),
        )
    try:
        return np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic array-likes
        raise InputTypeError(f"{name} could not be read as an array: {exc}", side=_side(name)) from exc


def _as_kernel_dtype(a: np.ndarray, name: str) -> np.ndarray:
    """View/convert to what the kernel reads: unsigned ints (nonzero test) or float32/float64."""
    kind = a.dtype.kind
    if kind == "b":
        return a.view(np.uint8)
    if kind in "iu":  # a native unsigned view: byte order does not change which values are nonzero
        return a.view(np.dtype(f"u{a.dtype.itemsize}"))
    if kind == "f":
        if not a.dtype.isnative:  # '>f4' on a little-endian machine: numba reads native floats only
            a = a.astype(a.dtype.newbyteorder("="))
        if a.dtype.itemsize < 4:  # float16: numba has no arithmetic for it; one small upcast copy
            return a.astype(np.float32)
        if a.dtype.itemsize > 8:
            return a.astype(np.float64)
        return a
    raise InputTypeError(
        f"{name} has dtype {a.dtype}; masks must be bool, integer (nonzero = foreground) "
        "or float probabilities in [0, 1]",
        side=_side(name),
    )


def _side(name: str) -> str:
    """``"preds"`` / ``"gts"`` from an argument label such as ``"preds[3]"``."""
    return name.split("[", 1)[0]


def _stack_of_masks(x: object, name: str, lead: str, image: int | None = None) -> np.ndarray:
    """One image's stack: array of shape (R, *spatial), spatial 2D or 3D, R >= 1, non-empty."""
    a = _to_array(x, name)
    side = _side(name)
    if a.ndim not in (3, 4):
        hint = ""
        if a.ndim == 2:
            hint = f" (a single 2D mask? add the leading axis: {name}[None])"
        elif a.ndim == 5:
            hint = " (a batch of images? pass batch=True)"
        raise InputError(
            f"{name} must have shape ({lead}, H, W) or ({lead}, D, H, W); got shape {a.shape}{hint}",
            side=side, image=image,
        )
    if a.shape[0] == 0:
        raise InputError(f"{name} has {lead}=0 masks (shape {a.shape}); at least one is needed",
                         side=side, image=image)
    if 0 in a.shape[1:]:
        raise InputError(f"{name} has an empty image (shape {a.shape})", side=side, image=image)
    return _as_kernel_dtype(a, name)


def _per_image(x: object, name: str, lead: str) -> list[np.ndarray]:
    """A batch: list of per-image stacks (views into a batch array where possible)."""
    if isinstance(x, np.ndarray) or _is_torch_tensor(x):
        a = _to_array(x, name)
        if a.ndim not in (4, 5):
            hint = " (a single image? pass batch=False)" if a.ndim == 3 else ""
            raise InputError(
                f"{name} with batch=True must have shape (B, {lead}, H, W) or (B, {lead}, D, H, W), "
                f"or be a sequence of per-image arrays; got shape {a.shape}{hint}",
                side=name,
            )
        if a.shape[0] == 0:
            raise InputError(f"{name} is an empty batch (shape {a.shape})", side=name)
        return [_stack_of_masks(a[i], f"{name}[{i}]", lead, i) for i in range(a.shape[0])]
    if isinstance(x, (list, tuple)):
        if len(x) == 0:
            raise InputError(f"{name} is an empty batch", side=name)
        return [_stack_of_masks(p, f"{name}[{i}]", lead, i) for i, p in enumerate(x)]
    raise InputTypeError(
        f"{name} with batch=True must be an array of shape (B, {lead}, ...) or a sequence of per-image "
        f"arrays; got {type(x).__name__}",
        side=name,
    )


def check_masks(x: object, name: str, batch: bool) -> None:
    """Apply the input rules to one side alone (``name``: ``"preds"`` or ``"gts"``), raising the error
    :func:`prepare_inputs` would raise for it, naming that argument."""
    (_per_image if batch else _stack_of_masks)(x, name, "N" if name == "preds" else "M")


def _flat(a: np.ndarray) -> np.ndarray:
    """(R, *spatial) -> (1, R, *spatial), always a view."""
    return a[None]


def prepare_inputs(preds: object, gts: object, batch: bool) -> tuple[int, list[ImageGroup]]:
    """Check shapes/dtypes of ``preds`` and ``gts`` and group the images for counting.

    Returns
    -------
    n_images : int
    groups : list of ImageGroup
        Images grouped by (N, M, P); together they cover ``range(n_images)`` once.
    """
    if not isinstance(batch, (bool, np.bool_)):
        raise TypeError(f"batch must be True or False; got {batch!r}")
    if not batch:
        p = _stack_of_masks(preds, "preds", "N")
        g = _stack_of_masks(gts, "gts", "M")
        _check_same_spatial(p, g, None)
        return 1, [
            ImageGroup(
                np.zeros(1, np.int64), [_flat(p)], [_flat(g)], p.shape[0], g.shape[0], _n_pixels(p)
            )
        ]

    # A uniform batch array keeps its (B, R, P) form so that one kernel call packs all of it.
    p_arr = _to_array(preds, "preds") if (isinstance(preds, np.ndarray) or _is_torch_tensor(preds)) else None
    g_arr = _to_array(gts, "gts") if (isinstance(gts, np.ndarray) or _is_torch_tensor(gts)) else None
    p_list = _per_image(preds if p_arr is None else p_arr, "preds", "N")
    g_list = _per_image(gts if g_arr is None else g_arr, "gts", "M")
    if len(p_list) != len(g_list):
        raise InputError(
            f"preds and gts must hold the same number of images; got {len(p_list)} and {len(g_list)}"
        )
    for i, (p, g) in enumerate(zip(p_list, g_list, strict=True)):
        _check_same_spatial(p, g, i)
    n_images = len(p_list)

    if p_arr is not None and g_arr is not None:
        pk = _as_kernel_dtype(p_arr, "preds")
        gk = _as_kernel_dtype(g_arr, "gts")
        n_pix = _n_pixels(p_list[0])
        group = ImageGroup(
            np.arange(n_images, dtype=np.int64),
            [pk],
            [gk],
            pk.shape[1],
            gk.shape[1],
            n_pix,
        )
        return n_images, [group]

    keys: dict[tuple[int, int, int], list[int]] = {}
    for i, (p, g) in enumerate(zip(p_list, g_list, strict=True)):
        keys.setdefault((p.shape[0], g.shape[0], _n_pixels(p)), []).append(i)
    groups = [
        ImageGroup(
            np.asarray(idx, dtype=np.int64),
            [_flat(p_list[i]) for i in idx],
            [_flat(g_list[i]) for i in idx],
            n,
            m,
            npix,
        )
        for (n, m, npix), idx in keys.items()
    ]
    return n_images, groups


def _n_pixels(a: np.ndarray) -> int:
    return int(np.prod(a.shape[1:], dtype=np.int64))


def _check_same_spatial(p: np.ndarray, g: np.ndarray, image: int | None) -> None:
    if p.shape[1:] != g.shape[1:]:
        where = "" if image is None else f" (image {image})"
        raise InputError(
            f"preds and gts must have the same spatial shape{where}; got preds {p.shape} and gts {g.shape}",
            image=image,
        )


def raise_bad_values(
    name: str, src: np.ndarray, bad: np.ndarray, image_index: np.ndarray | None, mask_offset: int = 0
) -> None:
    """Raise the :class:`InputError` for the first NaN / out-of-range value the packing kernel reported.

    ``src`` is the (B, R, P) array that was packed, ``bad`` its (B, R) report (1 + flat index, 0 = ok);
    ``image_index`` maps rows of ``src`` to image numbers (None for a single image) and ``mask_offset``
    is the mask number of ``src``'s first row.
    """
    hits = np.argwhere(bad > 0)
    if hits.size == 0:
        return
    b, r = (int(v) for v in hits[0])
    flat = int(bad[b, r]) - 1
    image = None if image_index is None else int(image_index[b])
    raise value_range_error(name, src[b, r, flat], mask_offset + r, flat, image)
