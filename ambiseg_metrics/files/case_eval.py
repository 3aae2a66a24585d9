"""Reading and evaluating cases: one case (:func:`run_case`) or a chunk of them in batches
(:func:`evaluate_chunk`, the task every runner of :func:`~ambiseg_metrics.files.cases.evaluate_cases`
executes: in this process, in local worker processes, on Dask).

A chunk's cases are read one by one and then evaluated together, one batched
:func:`ambiseg_metrics.evaluate` call per group of cases that get the same metrics — many times faster
than a call per case for small images, and the same numbers bit for bit (each image's counts are
integers and its readouts do not look at the other images; tests/test_chunked_runner.py checks it).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..core._kernel_load import load_kernels
from ..core._validate import InputError, pairs_error
from ..evaluation import FAMILIES, evaluate
from .io import Case, InputFileError, Source, mask_extension, mask_files, read_source
from .masks import ReadOptions
from .runner import kernel_threads

if TYPE_CHECKING:
    from .cases import EvalOptions

__all__ = ["BATCH_BYTES", "BATCH_MIN_CASES", "warm_up", "workload"]


def _pair_metrics() -> frozenset[str]:
    return frozenset().union(*(family.needs_pairs for family in FAMILIES))


def _describe(source: Source, name: str, side: str) -> str:
    if isinstance(source, np.ndarray):
        return f"case {name!r} ({side} array)"
    return os.fspath(source)


def _file_error(exc: InputError, pred: Source, gt: Source, name: str) -> InputFileError:
    """Turn a library input error into an InputFileError naming the file it came from (by its fields)."""
    if exc.side not in ("preds", "gts"):
        pair = f"{_describe(pred, name, 'predictions')} / {_describe(gt, name, 'annotations')}"
        return InputFileError(f"case {name!r} ({pair}): {exc}", exc.path)
    source, what = (pred, "predictions") if exc.side == "preds" else (gt, "annotations")
    where = _describe(source, name, what)
    path = exc.path or (None if isinstance(source, np.ndarray) else os.fspath(source))
    if exc.path is None and path is not None and exc.index is not None and Path(path).is_dir():
        files = mask_files(Path(path))
        if exc.index < len(files):  # in the folder layout mask k is the k-th file by name
            where = path = os.fspath(files[exc.index])
    error = InputFileError(f"{where}: {exc}", path)
    error.side, error.index = exc.side, exc.index
    return error


@dataclass
class _Read:
    """One case read from disk, before evaluation: its masks and the metrics defined for it."""

    case: Case
    preds: np.ndarray
    gts: np.ndarray
    wanted: list[str]
    notes: list[tuple[str, str]]

    @property
    def binary(self) -> bool:
        return self.preds.dtype.kind in "biu" and self.gts.dtype.kind in "biu"


def _read_case(case: Case, options: EvalOptions, read: ReadOptions | None) -> _Read:
    """Read one case's masks and decide which metrics it gets (an error for an undefined one asked for)."""
    name, pred, gt = case.name, case.pred, case.gt
    notes: list[tuple[str, str]] = []

    def warn(kind: str, message: str) -> None:
        notes.append((kind, message))

    preds = read_source(pred, warn, read)
    gts = read_source(gt, warn, read)
    if preds.shape[1:] != gts.shape[1:]:
        raise InputFileError(
            f"case {name!r}: the predictions ({_describe(pred, name, 'predictions')}) have masks of shape "
            f"{preds.shape[1:]} but the annotations ({_describe(gt, name, 'annotations')}) have "
            f"{gts.shape[1:]}",
            None if isinstance(pred, np.ndarray) else pred,
        )
    n, m = int(preds.shape[0]), int(gts.shape[0])
    names = options.names
    undefined: list[str] = []
    if pairs_error("", n, m) is not None:
        undefined = [x for x in names if x in _pair_metrics()]
        error = pairs_error(", ".join(undefined), n, m)
        if undefined and options.metrics is not None and error is not None:
            pair = f"{_describe(pred, name, 'predictions')}, {_describe(gt, name, 'annotations')}"
            path = None if isinstance(pred, np.ndarray) else pred
            raise InputFileError(f"case {name!r} ({pair}): {error}", path)
        if undefined:
            warn("undefined", f"case {name!r} has N={n}, M={m}: {', '.join(undefined)} left undefined (NaN)")
    return _Read(case, preds, gts, [x for x in names if x not in undefined], notes)


def _row(r: _Read, names: Sequence[str], values: Mapping[str, object], j: int | None = None) -> dict:
    row: dict[str, object] = {"case": r.case.name, "n_pred": int(r.preds.shape[0]),
                              "n_gt": int(r.gts.shape[0])}
    for x in names:
        if x not in values:
            row[x] = math.nan
        else:
            row[x] = float(values[x] if j is None else values[x][j])  # type: ignore[index]
    return row


def _evaluate_one(r: _Read, options: EvalOptions) -> tuple[dict[str, object], list]:
    try:
        # every choice travels in the resolved Conventions (see EvalOptions.checked); the kernels serialise
        # their parallel sections themselves, so threaded Dask workers are safe
        values = evaluate(r.preds, r.gts, metrics=r.wanted, conventions=options.conventions)
    except InputError as exc:  # InputTypeError (a dtype the rules reject) included
        raise _file_error(exc, r.case.pred, r.case.gt, r.case.name) from exc
    return _row(r, options.names, values), r.notes


def run_case(
    name: str, pred: Source, gt: Source, options: EvalOptions, read: ReadOptions | None = None
) -> tuple[dict[str, object], list]:
    """Evaluate one case; return its row and the non-fatal notes ``[(kind, message), ...]``."""
    return _evaluate_one(_read_case(Case(name, pred, gt), options, read), options)


#: The cases of a chunk are evaluated together in batches of at most about this many bytes of masks.
BATCH_BYTES = 64 << 20
#: Runs of fewer cases are evaluated one case at a time: a batch of small cases is counted by the numba
#: kernels, whose loading (about 0.5 s per process) costs more than it saves on a few hundred small
#: cases, and a small run (``ambiseg-eval --example``) then never imports numba, as before.
BATCH_MIN_CASES = 200


def _stacked(arrays: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    """One (B, R, *spatial) array when the cases agree in shape and dtype (counted in one fused kernel
    pass), else the list (a ragged batch)."""
    first = arrays[0]
    if all(a.shape == first.shape and a.dtype == first.dtype for a in arrays):
        return np.stack(arrays)
    return arrays


def _evaluate_batch(batch: list[_Read], options: EvalOptions) -> list[tuple[dict[str, object], list]]:
    """Rows of the cases read, in order: one batched :func:`evaluate` per group of cases that get the same
    metrics from the same kind of masks. Each image's numbers do not depend on the others of its batch
    (integer counts, per-image readouts; tests/test_chunked_runner.py checks it bit for bit); any error
    re-runs the cases one by one, so that it is raised for the first bad case, naming its file. The
    kernels are loaded already (:func:`evaluate_chunk`)."""
    out: list[tuple[dict[str, object], list] | None] = [None] * len(batch)
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(batch):
        groups.setdefault((tuple(r.wanted), r.binary), []).append(i)
    try:
        for (wanted, _), members in groups.items():
            if len(members) == 1 or not wanted:
                continue
            values = evaluate(_stacked([batch[i].preds for i in members]),
                              _stacked([batch[i].gts for i in members]), batch=True,
                              metrics=list(wanted), conventions=options.conventions)
            for j, i in enumerate(members):
                out[i] = (_row(batch[i], options.names, values, j), batch[i].notes)
    except Exception:
        out = [None] * len(batch)
    return [done if done is not None else _evaluate_one(r, options)
            for done, r in zip(out, batch, strict=True)]


def evaluate_chunk(
    items: Sequence[Case], options: EvalOptions, read: ReadOptions | None = None, batched: bool = True
) -> list[tuple[dict[str, object], list]]:
    """The rows and notes of several cases, in order: the task of every runner (local processes, Dask).

    ``batched``: the masks are read case by case and evaluated in batches (bounded by
    :data:`BATCH_BYTES`), many times faster than one :func:`evaluate` call per case for small images
    once the compiled kernels are loaded (about half a second per process, see :data:`BATCH_MIN_CASES`);
    else one call per case. An error is raised for the first bad case in order, as a run one case at a
    time would.
    """
    if not batched:
        return [_evaluate_one(_read_case(case, options, read), options) for case in items]
    # a batched run is long enough for the kernels to pay off: load them (not numpy first,
    # core/_kernel_load.py), before the first file, so that 8-bit grey PNGs take the compiled fast path
    # (png_plain.py)
    load_kernels()
    results: list[tuple[dict[str, object], list]] = []
    batch: list[_Read] = []
    size = 0
    for case in items:
        try:
            r = _read_case(case, options, read)
        except Exception:  # not an interrupt: that must not wait for (or be replaced by) the batch
            results.extend(_evaluate_batch(batch, options))  # an earlier case's error comes first
            raise
        batch.append(r)
        size += r.preds.nbytes + r.gts.nbytes
        if size >= BATCH_BYTES:
            results.extend(_evaluate_batch(batch, options))
            batch, size = [], 0
    results.extend(_evaluate_batch(batch, options))
    return results


def warm_up(options: EvalOptions, batched: bool) -> None:
    """What a worker process runs before it asks for its first chunk (see
    :func:`ambiseg_metrics.files.workers.run_in_processes`): for a batched run, one batched
    :func:`evaluate` of 8 random cases of 8 + 3 masks of 128 × 128 with the run's metrics and conventions,
    which imports numba and loads the compiled kernels from numba's cache (about 0.5 s of CPU), so that
    no chunk waits for that in a worker while the parent could have run it. Errors are the tasks' business
    (ignored here by the caller). The batch runs on one thread: the same compiled code loads, and no
    thread pool is started (before a fork, the parent's would be left idle, and Python 3.12+ warns of a
    fork of a process with several threads)."""
    if not batched:
        return
    load_kernels()  # else this mid-sized batch would run in numpy (core/_kernel_load.py)
    with kernel_threads(1):
        rng = np.random.default_rng(0)
        evaluate(rng.random((8, 8, 128, 128)) > 0.5, rng.random((8, 3, 128, 128)) > 0.5, batch=True,
                 metrics=list(options.names), conventions=options.conventions)


#: Extensions of stack files read without decoding (``jobs="auto"`` counts their cases as "arrays").
_ARRAY_STACKS = (".npy", ".npz")


def workload(case: Case) -> tuple[str, int | None]:
    """What ``jobs="auto"`` needs to know of a run (from its first case, in well under a millisecond):
    ``"images"`` (a folder of image files, or a TIFF/NIfTI stack, that must be decoded), ``"arrays"``
    (``.npy``/``.npz`` stacks) or ``"memory"`` (arrays given in memory); and the mask pixels of the case,
    predictions and annotations together, where a file header tells them cheaply (``.npy``, Pillow
    images), else None. Never raises: an unreadable case is reported when it is read."""
    if isinstance(case.pred, np.ndarray) or isinstance(case.gt, np.ndarray):
        return "memory", None
    pred = Path(case.pred)
    kind = "arrays" if mask_extension(pred) in _ARRAY_STACKS and not pred.is_dir() else "images"
    try:
        pixels = sum(_pixels(Path(source)) for source in (case.pred, case.gt))
    except Exception:  # noqa: BLE001 - an estimate only
        pixels = None
    return kind, pixels


def _pixels(source: Path) -> int:
    """Mask pixels of one side of a case, from headers only (an error where no header tells them)."""
    if source.is_dir():
        files = mask_files(source)
        from PIL import Image

        with Image.open(files[0]) as im:  # reads the header only
            return len(files) * im.size[0] * im.size[1]
    if mask_extension(source) == ".npy":
        return int(np.load(source, mmap_mode="r").size)  # the header and a mapping, no read
    raise ValueError("no cheap header")
