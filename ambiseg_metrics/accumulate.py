"""Accumulate metrics over a data set, batch by batch (numpy only; torchmetrics/MONAI-style interface).

>>> import numpy as np
>>> from ambiseg_metrics import MetricAccumulator
>>> acc = MetricAccumulator(["ged", "hm_iou"])
>>> rng = np.random.default_rng(0)
>>> for _ in range(3):                                   # three batches of 2 images, N = 4, M = 2
...     _ = acc.update(rng.random((2, 4, 8, 8)) > 0.5, rng.random((2, 2, 8, 8)) > 0.5)
>>> result = acc.compute()
>>> result.n_images, result.per_image["ged"].shape
(6, (6,))
>>> acc.reset(); acc.n_images
0

Every number comes from :func:`ambiseg_metrics.evaluate` (one counting pass per batch); the accumulator
only stores the per-image values and averages them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .conventions import Conventions, Options
from .core.docfill import fill_doc
from .evaluation import evaluate, resolve_evaluation
from .options import CONVENTIONS_DOC, options_doc
from .summary import nan_summary

__all__ = ["AccumulatedMetrics", "MetricAccumulator", "summarise"]


@dataclass(frozen=True)
class AccumulatedMetrics:
    """What :meth:`MetricAccumulator.compute` returns.

    Attributes
    ----------
    per_image : dict of str -> ndarray of shape (n_images,)
        Every metric of every image, in the order the images were given.
    mean : dict of str -> float
        Data-set mean of each metric over the images where it is defined (NaN values, e.g. a GED term
        with every pair skipped under the ``kohl`` conventions, are left out and counted in
        ``n_undefined``); NaN if no image defines it.
    n_images : int
    n_undefined : dict of str -> int
        Number of images whose value is NaN.
    """

    per_image: dict[str, np.ndarray]
    mean: dict[str, float]
    n_images: int
    n_undefined: dict[str, int]


def summarise(per_image: dict[str, np.ndarray]) -> AccumulatedMetrics:
    """Data-set means (NaN-aware) of per-image metric arrays."""
    summaries = {name: nan_summary(values) for name, values in per_image.items()}
    n_images = next((s.n + s.n_undefined for s in reversed(summaries.values())), 0)
    means = {name: s.mean for name, s in summaries.items()}
    undefined = {name: s.n_undefined for name, s in summaries.items()}
    return AccumulatedMetrics(dict(per_image), means, n_images, undefined)


@fill_doc(conventions=CONVENTIONS_DOC, options=options_doc())
class MetricAccumulator:
    """Stateful metric collection over a data set: ``update`` per batch, ``compute``, ``reset``.

    Parameters
    ----------
    metrics : iterable of str or str, optional
        Names from :data:`ambiseg_metrics.METRICS` (default: all). ``ci``, ``ci_harmonic`` and
        ``diversity_agreement`` need N, M >= 2 in every image.
    {conventions}
    {options}

    Notes
    -----
    Not thread-safe. For several processes, accumulate one per process and combine them with
    :meth:`merge` (or use :class:`ambiseg_metrics.torchmetrics_adapter.AmbiSegMetric` under DDP).
    """

    def __init__(
        self,
        metrics: Iterable[str] | str | None = None,
        *,
        conventions: str | Conventions | None = None,
        **options: object,
    ) -> None:
        chosen, resolved = resolve_evaluation(metrics, conventions, options, "MetricAccumulator()")
        self.metrics = tuple(chosen)
        #: The resolved options (every option's value), checked before any batch is seen.
        self.options: Options = resolved
        self._parts: dict[str, list[np.ndarray]] = {name: [] for name in self.metrics}

    @property
    def n_images(self) -> int:
        """Number of images accumulated so far."""
        first = self._parts[self.metrics[0]]
        return int(sum(len(p) for p in first))

    def update(self, preds: object, gts: object, *, batch: bool = True) -> dict[str, np.ndarray]:
        """Evaluate one batch and store its per-image values.

        Parameters
        ----------
        preds, gts : array-like
            A batch as :func:`~ambiseg_metrics.evaluate` takes it with ``batch=True``: arrays of shape
            (B, N, *spatial) / (B, M, *spatial) or sequences of per-image arrays. With ``batch=False``,
            a single image (N, *spatial) / (M, *spatial).
        batch : bool, default True

        Returns
        -------
        dict of str -> ndarray
            This batch's per-image values (B,), e.g. for logging.
        """
        values = evaluate(preds, gts, batch=batch, metrics=self.metrics, conventions=self.options)
        out = {name: np.atleast_1d(np.asarray(values[name], dtype=np.float64)) for name in self.metrics}
        for name, v in out.items():
            self._parts[name].append(v)
        return out

    def compute(self) -> AccumulatedMetrics:
        """Per-image values and data-set means of everything accumulated since the last :meth:`reset`.

        Raises
        ------
        ValueError
            If nothing has been accumulated.
        """
        if self.n_images == 0:
            raise ValueError("MetricAccumulator.compute() called before any update(): no image to average")
        return summarise({name: np.concatenate(parts) for name, parts in self._parts.items()})

    def reset(self) -> None:
        """Forget every accumulated value (the metric choice and options stay)."""
        self._parts = {name: [] for name in self.metrics}

    def merge(self, other: MetricAccumulator) -> MetricAccumulator:
        """Append ``other``'s images after this accumulator's (same metrics and options required)."""
        if not isinstance(other, MetricAccumulator):
            raise TypeError(f"can only merge a MetricAccumulator; got {type(other).__name__}")
        if other.metrics != self.metrics or other.options != self.options:
            raise ValueError("cannot merge accumulators with different metrics or options")
        for name in self.metrics:
            self._parts[name].extend(other._parts[name])
        return self

    def __repr__(self) -> str:
        return f"MetricAccumulator(metrics={list(self.metrics)}, n_images={self.n_images})"
