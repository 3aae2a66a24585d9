"""Evaluating many cases: the one per-case code path, run in-process, in local processes or on Dask.

:func:`evaluate_case` reads one case's samples and annotations (:mod:`ambiseg_metrics.files.io`) and calls
:func:`ambiseg_metrics.evaluate` once; :func:`evaluate_cases` runs many cases — in this process, in
``jobs`` local processes (:mod:`~ambiseg_metrics.files.runner`), or on a ``dask.distributed.Client`` — in
chunks of cases, each read and evaluated as a batch (:mod:`~ambiseg_metrics.files.case_eval`), and returns
a :class:`CaseTable` with one row per case, sorted by case name. Every way of running calls the same
function, and each case's numbers do not depend on the chunk it was in, so the table does not depend on
how the work was spread.

Cases with fewer than two samples or annotations
-------------------------------------------------
Some metrics (those a metric family lists in ``needs_pairs``: ``ci``, ``ci_harmonic``,
``diversity_agreement``) are undefined when N < 2 or M < 2. If the metrics were chosen explicitly
(``metrics=...``, ``--metrics``) such a case is an error naming it; with the default (all metrics) those
cells are NaN (empty in summaries, ``nan`` in the CSV, ``null`` in JSON) and a warning names the cases.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np

from ..conventions import Conventions, resolve_options
from ..evaluation import METRICS, check_metrics
from ..options import evaluate_options
from . import case_eval, distributed, runner
from .case_eval import evaluate_chunk, run_case
from .io import Case, Source, case_name
from .masks import ReadOptions

__all__ = [
    "CaseTable", "EvalOptions", "InputWarning", "evaluate_case", "evaluate_cases", "progress_bar", "to_cases",
]

#: Columns of every row before the metrics.
ID_COLUMNS: tuple[str, ...] = ("case", "n_pred", "n_gt")


class InputWarning(UserWarning):
    """A non-fatal finding about the inputs (lossy JPEG masks, skipped cases, undefined metrics)."""


def _option_fields(cls: type) -> type:
    """One ``None``-defaulted field per option of :func:`~ambiseg_metrics.options.evaluate_options`: the
    four of the first versions in their old positions (before ``conventions``), any other one after it."""
    own = dict(cls.__dict__.get("__annotations__", {}))
    legacy = ("threshold", "estimator", "distance", "variance")
    names = evaluate_options()
    annotations = {"metrics": own.pop("metrics")}
    annotations.update({name: "object" for name in legacy if name in names})
    annotations["conventions"] = own.pop("conventions")
    annotations.update({name: "object" for name in names if name not in legacy})
    for name in names:
        setattr(cls, name, None)
    cls.__annotations__ = {**annotations, **own}
    return cls


@dataclass(frozen=True)
@_option_fields
class EvalOptions:
    """What to compute for every case; the options of :func:`ambiseg_metrics.evaluate`.

    Attributes
    ----------
    metrics : tuple of str or None
        Metric names from :data:`~ambiseg_metrics.METRICS`; None = all of them, and metrics undefined for
        a case (N < 2 or M < 2) are then NaN instead of an error.
    threshold, estimator, distance, variance, ... : optional
        One field per option of :func:`ambiseg_metrics.evaluate` (the table
        :data:`ambiseg_metrics.options.OPTIONS`); None = not given, the value of ``conventions`` applies.
        Any other value, ``threshold=0.0`` included, is explicit and wins over the preset.
    conventions : str or Conventions or None
        A preset name of :data:`~ambiseg_metrics.PRESETS` (None = the library defaults, preset ``cimd``).
        :meth:`checked` resolves it with the options given above into one
        :class:`~ambiseg_metrics.Conventions`, the single thing passed on to :func:`evaluate`.
    """

    metrics: tuple[str, ...] | None = None
    conventions: str | Conventions | None = None

    def checked(self) -> EvalOptions:
        """Validate and resolve: ``metrics`` normalised, ``conventions`` a :class:`Conventions` carrying
        every choice (and every option field filled in from it). Raises ValueError/TypeError."""
        metrics = None if self.metrics is None else tuple(check_metrics(self.metrics))
        names = evaluate_options()
        explicit = {name: getattr(self, name) for name in names if getattr(self, name) is not None}
        conv = resolve_options(self.conventions, accepted=names, caller="EvalOptions", **explicit)
        filled = {name: getattr(conv, name) for name in names}
        return replace(self, metrics=metrics, conventions=conv, **filled)

    @property
    def names(self) -> tuple[str, ...]:
        """The metric columns, in report order."""
        return METRICS if self.metrics is None else tuple(self.metrics)


@dataclass
class CaseTable:
    """Per-case results: one row per case, sorted by case name.

    Attributes
    ----------
    rows : list of dict
        ``{"case": str, "n_pred": int, "n_gt": int, <metric>: float, ...}``; NaN marks an undefined metric.
    metrics : tuple of str
        The metric columns, in report order.
    notes : list of str
        Non-fatal findings (also issued as :class:`InputWarning`).
    """

    rows: list[dict[str, object]]
    metrics: tuple[str, ...]
    notes: list[str] = field(default_factory=list)

    @property
    def columns(self) -> tuple[str, ...]:
        return (*ID_COLUMNS, *self.metrics)

    @property
    def cases(self) -> list[str]:
        return [str(r["case"]) for r in self.rows]

    def column(self, name: str) -> np.ndarray:
        """One column as an array (float64 for metrics, in row order)."""
        if name not in self.columns:
            raise KeyError(f"no column {name!r}; columns are {', '.join(self.columns)}")
        values = [r[name] for r in self.rows]
        return np.asarray(values, dtype=object if name == "case" else np.float64)

    def __len__(self) -> int:
        return len(self.rows)


# ----------------------------------------------------------------------------------------------- one case
def evaluate_case(
    pred_source: Source, gt_source: Source, options: EvalOptions | None = None, *, name: str | None = None
) -> dict[str, object]:
    """Every requested metric of one case, read from files or arrays.

    Parameters
    ----------
    pred_source, gt_source : path or ndarray
        A case folder (one mask per file), a stack file, or an array (N, *spatial) / (M, *spatial).
    options : EvalOptions, optional
        What to compute (default: every metric, library defaults).
    name : str, optional
        The case name used in the row and in messages (default: derived from ``pred_source``).

    Returns
    -------
    dict
        ``{"case", "n_pred", "n_gt", <metric>: float, ...}``.

    Raises
    ------
    InputFileError
        A file is unreadable, of the wrong shape or content; the message names it.
    """
    options = (options or EvalOptions()).checked()
    if name is None:
        name = "case" if isinstance(pred_source, np.ndarray) else case_name(pred_source)
    row, notes = run_case(name, pred_source, gt_source, options, ReadOptions())
    for _, message in notes:
        warnings.warn(message, InputWarning, stacklevel=2)
    return row


# ----------------------------------------------------------------------------------------------- many cases
def to_cases(cases: Iterable[object] | Mapping[str, Sequence[Source]]) -> list[Case]:
    """Normalise the ways of giving cases to a list of :class:`~ambiseg_metrics.files.io.Case`.

    Accepted: :class:`Case` objects, ``(name, pred, gt)`` triples, ``(pred, gt)`` pairs (named after the
    prediction file/folder, or ``case_00000``... for arrays), or a mapping ``name -> (pred, gt)``.
    """
    if isinstance(cases, Mapping):
        cases = [(name, *pair) for name, pair in cases.items()]
    out: list[Case] = []
    for i, item in enumerate(cases):
        if isinstance(item, Case):
            out.append(item)
            continue
        if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
            raise TypeError(
                f"case {i}: expected a Case, a (pred, gt) pair or a (name, pred, gt) triple; "
                f"got {type(item).__name__}"
            )
        if len(item) == 3:
            out.append(Case(str(item[0]), item[1], item[2]))
        else:
            pred, gt = item
            name = f"case_{i:05d}" if isinstance(pred, np.ndarray) else case_name(pred)
            out.append(Case(name, pred, gt))
    seen: dict[str, int] = {}
    for i, c in enumerate(out):
        if c.name in seen:
            raise ValueError(f"case name {c.name!r} is used twice (cases {seen[c.name]} and {i})")
        seen[c.name] = i
    return out


def _aggregate(notes: list[tuple[str, str]]) -> list[str]:
    """One line per kind of note: the first message and how many more there were."""
    by_kind: dict[str, list[str]] = {}
    for kind, message in notes:
        if message not in by_kind.setdefault(kind, []):
            by_kind[kind].append(message)
    out = []
    for messages in by_kind.values():
        more = len(messages) - 1
        out.append(messages[0] + (f" [and {more} more like this]" if more else ""))
    return out


def progress_bar(total: int, show: bool) -> object:
    """The tqdm bar over cases (on stderr; a no-op object unless ``show``), without tqdm's monitor thread:
    workers are forked from this process (:func:`~ambiseg_metrics.files.runner.start_method`), and a
    process with no thread but its main one is what a fork expects (Python 3.12+ warns otherwise)."""
    from tqdm.auto import tqdm

    class Bar(tqdm):
        monitor_interval = 0  # the monitor only adjusts the refresh of a bar left without updates

    return Bar(total=total, disable=not show, unit="case", desc="cases", leave=False)


def evaluate_cases(
    cases: Iterable[object] | Mapping[str, Sequence[Source]],
    options: EvalOptions | None = None,
    *,
    client: object | None = None,
    jobs: int | str = 1,
    progress: bool = True,
    extra_notes: Sequence[tuple[str, str]] = (),
    read: ReadOptions | None = None,
) -> CaseTable:
    """Evaluate many cases (files or arrays) and return the per-case table, sorted by case name.

    Parameters
    ----------
    cases : iterable or mapping
        :class:`~ambiseg_metrics.files.io.Case` objects, ``(pred, gt)`` pairs or ``(name, pred, gt)``
        triples of paths (case folder or stack file) or arrays, or a mapping ``name -> (pred, gt)``; see
        :func:`ambiseg_metrics.files.io.discover_cases` to find them on disk.
    options : EvalOptions, optional
        What to compute (default: every metric with the library defaults).
    client : dask.distributed.Client, optional
        Run the cases on this Dask cluster, in chunks of cases per task (workers read the files
        themselves, so paths must be visible to them). Default: run here.
    jobs : int or "auto", default 1
        Without ``client``: the number of local processes, this one and ``jobs - 1`` workers (1 = in
        this process only; ``"auto"``: from the workload and the machine — one process for runs too small
        for a worker to pay, by the kind and size of the first case, and for arrays given in memory;
        else one per free CPU — see :mod:`ambiseg_metrics.files.runner`). The results are the same for
        every value.
    progress : bool, default True
        Show a progress bar over cases (tqdm, on stderr).
    extra_notes : sequence of (kind, message)
        Notes found before evaluation (e.g. by case discovery) to report with the others.
    read : ReadOptions, optional
        How mask files are read (label selection, 8-bit probabilities, multi-valued masks); default:
        the library's rule, with a warning for multi-valued integer masks.

    Returns
    -------
    CaseTable

    Raises
    ------
    InputFileError
        A case's file is bad (the message names it); the whole evaluation stops.
    """
    options = (options or EvalOptions()).checked()
    read = ReadOptions() if read is None else read
    items = to_cases(cases)
    jobs = runner.check_jobs(jobs)
    if not items:
        raise ValueError("no cases to evaluate")
    if jobs == "auto":
        jobs = runner.auto_jobs(len(items), None, *case_eval.workload(items[0])) if client is None else 1
    results: dict[int, tuple] = {}
    with progress_bar(len(items), progress) as bar:
        batched = len(items) >= case_eval.BATCH_MIN_CASES
        if client is not None:
            stream = distributed.run_on_client(client, items, options,
                                               partial(evaluate_chunk, read=read, batched=batched))
        else:
            stream = runner.run_local(evaluate_chunk, items, (options, read, batched), int(jobs),
                                      warm_up=(case_eval.warm_up, (options, batched)))
        with closing(stream):  # on any error: cancel what is still queued (pool / cluster) right away
            for i, result in stream:
                if i in results:
                    raise RuntimeError(f"case {items[i].name!r} was returned twice")
                results[i] = result
                bar.update(1)
    missing = [items[i].name for i in range(len(items)) if i not in results]
    if missing or len(results) != len(items):
        raise RuntimeError(f"{len(missing)} case(s) never returned a result: {', '.join(missing[:10])}")
    order = sorted(range(len(items)), key=lambda i: items[i].name)
    rows = [results[i][0] for i in order]
    notes = _aggregate([*extra_notes, *(note for i in order for note in results[i][1])])
    for message in notes:
        warnings.warn(message, InputWarning, stacklevel=2)
    return CaseTable(rows, options.names, notes)
