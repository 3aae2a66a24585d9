"""Reading masks from disk and matching cases: what ``ambiseg-eval`` reads, and every error about a file.

Two layouts, chosen per case (``preds/`` and ``gts/`` may use different ones):

* **folder per case** — ``<root>/<case>/<anything>.<ext>``: every file is one mask (one sample under
  ``preds/``, one annotation under ``gts/``), read in sorted file-name order and stacked;
* **file per case** — ``<root>/<case>.<ext>``: one file holds the whole stack of the case's masks.

Formats (by extension, case-insensitive):

========================  ==================================================================================
``.png .jpg .jpeg .bmp``  one 2D mask per file (Pillow); grey or grey-as-RGB(A); alpha is ignored
``.tif .tiff``            tifffile; a multi-page TIFF is a stack of 2D masks in the file-per-case layout
                          (in a case folder every file is one mask, so there it is one 3D mask)
``.npy``                  one array; ``.npz``: its only array, or the array named ``masks``
``.nii .nii.gz``          NIfTI (nibabel): one 2D/3D mask; a stack keeps NIfTI's convention of the volume
                          index on the *last* axis (``(X, Y, Z, N)``, or ``(X, Y, N)`` for 2D masks)
========================  ==================================================================================

A stack file (file-per-case layout) holds ``(N, *spatial)``: ``ndim`` 3 = N 2D masks, ``ndim`` 4 = N 3D
masks, ``ndim`` 2 = a single 2D mask. In the folder layout every file must hold one 2D or 3D mask, all of
the same shape and dtype. Masks are then read by the library's input rules: bool/integer images are
foreground where nonzero, float arrays are probabilities, foreground ``> threshold``. NIfTI voxel spacing
is ignored (the metrics are overlap counts).

Lossy JPEG masks are read but reported (``kind="jpeg"``): compression noise around the edges is nonzero,
so under the nonzero rule it becomes a speckle halo of false foreground.

Every problem with a user's file raises :class:`InputFileError`, whose message names the file.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputFileError, UnmatchedCasesError
from .images import read_image
from .masks import ReadOptions, interpret, multivalued

__all__ = [
    "IMAGE_EXTENSIONS",
    "MASK_EXTENSIONS",
    "Case",
    "InputFileError",
    "UnmatchedCasesError",
    "case_name",
    "discover_cases",
    "mask_extension",
    "mask_files",
    "read_file",
    "read_source",
]

#: Extensions read with Pillow (one 2D mask per file).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp")
#: Every extension this module reads.
MASK_EXTENSIONS: tuple[str, ...] = (*IMAGE_EXTENSIONS, ".tif", ".tiff", ".npy", ".npz", ".nii", ".nii.gz")

_LONGEST_FIRST = tuple(sorted(MASK_EXTENSIONS, key=len, reverse=True))  # ".nii.gz" before ".gz"-less ones

#: ``warn(kind, message)`` callback for non-fatal findings (e.g. lossy JPEG); ``None`` ignores them.
Warn = Callable[[str, str], None] | None

Source = str | os.PathLike | np.ndarray


@dataclass(frozen=True)
class Case:
    """One image of the evaluation: its name and where its samples and annotations come from.

    Attributes
    ----------
    name : str
        The case name (folder name, or file name without its mask extension).
    pred, gt : path or ndarray
        A case folder, a stack file, or an array of shape (N, *spatial) / (M, *spatial).
    """

    name: str
    pred: Source
    gt: Source


def mask_extension(path: str | os.PathLike) -> str | None:
    """The mask extension of ``path`` (lower case, ``.nii.gz`` as one), or None if it is not one we read."""
    name = os.fspath(path).lower()
    for ext in _LONGEST_FIRST:
        if name.endswith(ext):
            return ext
    return None


def case_name(path: str | os.PathLike) -> str:
    """The case a stack file or folder stands for: its name without the mask extension."""
    name = Path(path).name
    ext = mask_extension(name)
    return name[: -len(ext)] if ext and not Path(path).is_dir() else name


def _hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("~$") or name in {"Thumbs.db", "desktop.ini"}


def _unknown_extension(path: Path) -> InputFileError:
    return InputFileError(
        f"{path}: unknown mask file extension; ambiseg-eval reads {', '.join(MASK_EXTENSIONS)}", path
    )


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    return np.asarray(tifffile.imread(path))


def _read_npz(path: Path) -> np.ndarray:
    with np.load(path, allow_pickle=False) as z:
        keys = list(z.files)
        if len(keys) == 1:
            return z[keys[0]]
        if "masks" in keys:
            return z["masks"]
    raise InputFileError(
        f"{path}: an .npz file must hold one array, or one named 'masks'; found {keys or 'none'}", path
    )


def _read_nifti(path: Path) -> np.ndarray:
    import nibabel as nib

    return np.asanyarray(nib.load(path).dataobj)


def _reason(exc: Exception) -> str:
    """A one-line reason for a reader's exception (corrupt/truncated file, wrong format...)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if any(s in text for s in ("backend", "can not handle", "cannot identify")):  # imageio/pillow
        return "not a valid image (corrupt, truncated, or another format under this extension)"
    if "pickled" in text:  # numpy: no NPY header, so it took the bytes for a pickle
        return "not a NumPy file (no .npy header: corrupt, or another format under this extension)"
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def read_file(path: str | os.PathLike, warn: Warn = None, read: ReadOptions | None = None) -> np.ndarray:
    """Read the array stored in one mask file (no axis changes), as stored or as ``read`` says
    (:class:`~ambiseg_metrics.files.masks.ReadOptions`: label, 8-bit probabilities, multi-valued masks).

    Raises
    ------
    InputFileError
        Unknown extension, unreadable, corrupt or non-numeric content; the message names ``path``.
    """
    path = path if isinstance(path, Path) else Path(path)
    ext = mask_extension(path)
    if ext is None:
        raise _unknown_extension(path)
    try:
        if ext in IMAGE_EXTENSIONS:
            a = read_image(path, ext)
        elif ext in (".tif", ".tiff"):
            a = _read_tiff(path)
        elif ext == ".npy":
            a = np.load(path, allow_pickle=False)
        elif ext == ".npz":
            a = _read_npz(path)
        else:
            a = _read_nifti(path)
    except InputFileError:
        raise
    except Exception as exc:  # every reader has its own exception types for a bad file
        raise InputFileError(f"{path}: cannot read this {ext} file: {_reason(exc)}", path) from exc
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise InputFileError(
            f"{path}: holds {a.dtype} data; masks must be bool, integer or float probabilities", path
        )
    if a.size == 0:
        raise InputFileError(f"{path}: holds an empty array (shape {a.shape})", path)
    if ext in (".jpg", ".jpeg") and warn is not None:
        warn(
            "jpeg",
            f"{path}: JPEG is lossy; its compression noise near edges is nonzero and so becomes "
            "foreground (a speckle halo). Prefer PNG/NPZ masks, or binarise the JPEGs first "
            "(e.g. value > 127) and save them losslessly.",
        )
    if read is None:
        return a
    return _interpreted(path, a, warn, read)


def _interpreted(path: Path, a: np.ndarray, warn: Warn, read: ReadOptions) -> np.ndarray:
    try:
        return interpret(a, read, warn, str(path))
    except ValueError as exc:
        raise InputFileError(f"{path}: {exc}", path) from exc


def _as_stack(path: Path, a: np.ndarray) -> np.ndarray:
    """A stack file's array as (N, *spatial)."""
    if mask_extension(path) in (".nii", ".nii.gz") and a.ndim in (3, 4):
        a = np.moveaxis(a, -1, 0)  # NIfTI puts the volume index last
    if a.ndim == 2:
        return a[None]
    if a.ndim not in (3, 4):
        raise InputFileError(
            f"{path}: a per-case file must hold a stack of shape (N, H, W) or (N, D, H, W) "
            f"(or a single 2D mask); got shape {a.shape}", path
        )
    return a


def _entries(folder: Path) -> list[tuple[str, bool]]:
    """``(name, is a folder)`` of every entry of ``folder``, sorted by name (scandir: the entry types come
    with the listing, no stat per file); an unreadable folder is an :class:`InputFileError`."""
    try:
        with os.scandir(folder) as it:
            return sorted(((e.name, e.is_dir()) for e in it), key=lambda x: x[0])
    except OSError as exc:
        raise InputFileError(f"{folder}: cannot list this folder: {exc.strerror or exc}", folder) from exc


def mask_files(folder: Path) -> list[Path]:
    """The mask files of a case folder in the order they are stacked (by name, hidden ones left out)."""
    files = []
    for name, is_dir in _entries(folder):
        if _hidden(name):
            continue
        entry = folder / name
        if is_dir:
            raise InputFileError(f"{entry}: a case folder must hold mask files only, not folders", entry)
        if mask_extension(name) is None:
            raise _unknown_extension(entry)
        files.append(entry)
    if not files:
        raise InputFileError(f"{folder}: empty case folder (no mask files)", folder)
    return files


def _read_folder(folder: Path, warn: Warn, read: ReadOptions | None) -> np.ndarray:
    files = mask_files(folder)
    # With the default reading options a mask is returned as stored and only a multi-valued integer file
    # is reported; one check of the whole stack then stands for the checks of its files (a stack with
    # one foreground value and no negative one has no such file), which run only when it finds something.
    plain = read is not None and read == ReadOptions()
    masks = []
    for f in files:
        a = read_file(f, warn, None if plain else read)
        if a.ndim not in (2, 3):
            raise InputFileError(
                f"{f}: each file of a case folder must hold one 2D or 3D mask; got shape {a.shape}", f
            )
        if masks:
            first = masks[0]
            if a.shape != first.shape:
                raise InputFileError(
                    f"{f}: shape {a.shape} differs from {files[0].name} {first.shape} in the same case "
                    "folder",
                    f,
                )
            if a.dtype.kind != first.dtype.kind and "f" in (a.dtype.kind, first.dtype.kind):
                raise InputFileError(
                    f"{f}: {a.dtype} masks mixed with {first.dtype} ({files[0].name}) in one case folder; "
                    "use either probabilities (float) or label masks (bool/integer)", f
                )
        masks.append(a)
    stack = np.stack(masks)
    if plain and stack.dtype.kind in "iu" and multivalued(stack):
        stack = np.stack([_interpreted(f, a, warn, read) for f, a in zip(files, masks, strict=True)])
    return stack


def read_source(source: Source, warn: Warn = None, read: ReadOptions | None = None) -> np.ndarray:
    """The masks of one side of a case as an array of shape (R, *spatial), as stored (not binarised).

    Parameters
    ----------
    source : path or ndarray
        A case folder (one mask per file, sorted by name), a stack file, or an array (returned as is).
    warn : callable, optional
        ``warn(kind, message)`` receives non-fatal findings such as lossy JPEG masks.
    read : ReadOptions, optional
        How stored values become masks (label, 8-bit probabilities, strictness); None: as stored.

    Raises
    ------
    InputFileError
        The file/folder is missing, empty, unreadable or of the wrong shape; the message names it.
    """
    if isinstance(source, np.ndarray):
        return source
    path = source if isinstance(source, Path) else Path(source)
    if path.is_dir():
        return _read_folder(path, warn, read)
    if not path.exists():
        raise InputFileError(f"{path}: no such file or folder", path)
    return _as_stack(path, read_file(path, warn, read))


def _index_root(root: Path, what: str) -> dict[str, Path]:
    """Case name -> folder or stack file under ``root``."""
    if not root.exists():
        raise InputFileError(f"{root}: {what} folder does not exist", root)
    if not root.is_dir():
        raise InputFileError(f"{root}: {what} must be a folder of cases (a folder or file per case)", root)
    cases: dict[str, Path] = {}
    for entry_name, is_dir in _entries(root):
        if _hidden(entry_name):
            continue
        entry = root / entry_name
        if not is_dir and mask_extension(entry) is None:
            raise _unknown_extension(entry)
        name = unicodedata.normalize("NFC", case_name(entry))  # macOS writes NFD names
        if name in cases:
            raise InputFileError(
                f"{entry}: case {name!r} appears twice under {root} (also {cases[name].name})", entry
            )
        cases[name] = entry
    if not cases:
        raise InputFileError(f"{root}: {what} folder holds no cases", root)
    return cases


def _listing(names: Iterable[str], limit: int = 20) -> str:
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def discover_cases(
    pred_root: str | os.PathLike,
    gt_root: str | os.PathLike,
    *,
    allow_missing: bool = False,
    warn: Warn = None,
) -> list[Case]:
    """Match the cases under ``pred_root`` and ``gt_root`` by name (Unicode NFC), sorted by name.

    Parameters
    ----------
    pred_root, gt_root : path
        Folders holding one sub-folder or one stack file per case (see the module docstring).
    allow_missing : bool, default False
        Skip cases present on one side only (reported through ``warn``) instead of raising.
    warn : callable, optional
        ``warn(kind, message)`` for non-fatal findings.

    Raises
    ------
    InputFileError
        A root is missing or empty, holds a file with an unknown extension or a duplicated case name, or
        (without ``allow_missing``) some case is missing on one side — all such cases are listed.
    """
    preds = _index_root(Path(pred_root), "predictions")
    gts = _index_root(Path(gt_root), "annotations")
    only_pred = set(preds) - set(gts)
    only_gt = set(gts) - set(preds)
    if only_pred or only_gt:
        parts = []
        if only_gt:
            parts.append(f"{len(only_gt)} case(s) have annotations but no predictions in {pred_root}: "
                         + _listing(only_gt))
        if only_pred:
            parts.append(f"{len(only_pred)} case(s) have predictions but no annotations in {gt_root}: "
                         + _listing(only_pred))
        message = "; ".join(parts)
        if not allow_missing:
            raise UnmatchedCasesError(message)
        if warn is not None:
            warn("missing", "skipping unmatched cases: " + message)
    common = sorted(set(preds) & set(gts))
    if not common:
        raise InputFileError(f"no case name is shared by {pred_root} and {gt_root}")
    return [Case(name, preds[name], gts[name]) for name in common]
