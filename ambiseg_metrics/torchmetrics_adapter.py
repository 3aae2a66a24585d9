"""A torchmetrics ``Metric`` over the functional core, so that accumulation syncs under DDP.

``AmbiSegMetric`` is built on first access (torch and torchmetrics are imported then, never by
``import ambiseg_metrics``); it needs ``pip install torchmetrics`` (which needs torch).

>>> from ambiseg_metrics.torchmetrics_adapter import AmbiSegMetric   # doctest: +SKIP
>>> metric = AmbiSegMetric(["ged", "hm_iou"], conventions="ccdm")     # doctest: +SKIP
>>> for preds, gts in loader:                                       # doctest: +SKIP
...     metric.update(preds > 0.5, gts)      # (B, N, H, W), (B, M, H, W): tensors or arrays
>>> metric.compute()                     # {"ged": tensor(...), "hm_iou": tensor(...)}  # doctest: +SKIP

Per-image values are kept as list states with ``dist_reduce_fx="cat"``: under DDP every rank's values
are gathered before :meth:`compute`, so the data-set mean is over all images of all ranks (not a mean of
per-rank means). The numbers come from :func:`ambiseg_metrics.evaluate`; this class only stores them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .conventions import Conventions
from .evaluation import evaluate, resolve_evaluation
from .options import evaluate_options
from .summary import nan_summary

__all__ = ["AmbiSegMetric", "build_metric_class"]  # noqa: F822 - AmbiSegMetric is built by __getattr__

_CLASS: Any = None


def build_metric_class() -> type:
    """Import torch/torchmetrics and return the ``AmbiSegMetric`` class (built once).

    Raises
    ------
    ImportError
        If torch or torchmetrics is missing, with the command that installs them.
    """
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    try:
        import torch
        from torchmetrics import Metric
        from torchmetrics.utilities.data import dim_zero_cat
    except ImportError as exc:  # pragma: no cover - exercised only without torchmetrics
        raise ImportError(
            "AmbiSegMetric needs torch and torchmetrics: pip install torchmetrics "
            "(or pip install 'ambiseg-metrics[model]')"
        ) from exc
    class AmbiSegMetric(Metric):
        """Ambiguous-segmentation metrics accumulated over batches (torchmetrics ``Metric``).

        Parameters
        ----------
        metrics : iterable of str or str, optional
            Names from :data:`ambiseg_metrics.METRICS` (default: all).
        conventions : str or Conventions, optional
            Preset name or :class:`~ambiseg_metrics.Conventions`; an option passed explicitly wins.
        **kwargs
            The options of :func:`~ambiseg_metrics.evaluate` (``threshold``, ``estimator``, ...), and
            torchmetrics ``Metric`` options (``dist_sync_on_step``, ``process_group``, ...).

        Notes
        -----
        :meth:`update` takes a batch (``(B, N, *spatial)`` / ``(B, M, *spatial)`` tensors or arrays, or
        sequences of per-image ones); values are computed on the CPU by the numba core (the masks are
        copied to host memory). :meth:`compute` returns the NaN-aware mean of every metric over all
        images (all ranks) as float64 tensors; :meth:`compute_per_image` the per-image values.
        """

        is_differentiable = False
        higher_is_better = None
        full_state_update = False

        def __init__(
            self,
            metrics: Any = None,
            *,
            conventions: str | Conventions | None = None,
            **kwargs: Any,
        ) -> None:
            options = {k: kwargs.pop(k) for k in evaluate_options() if k in kwargs}
            chosen, resolved = resolve_evaluation(metrics, conventions, options, "AmbiSegMetric()")
            super().__init__(**kwargs)
            self.metric_names = tuple(chosen)
            #: The resolved options (:class:`~ambiseg_metrics.Conventions`), checked before any batch.
            self.eval_options = resolved
            for name in self.metric_names:
                self.add_state(f"per_image_{name}", default=[], dist_reduce_fx="cat")

        def update(self, preds: Any, gts: Any, batch: bool = True) -> None:  # type: ignore[override]
            values = evaluate(
                preds, gts, batch=batch, metrics=self.metric_names, conventions=self.eval_options
            )
            for name in self.metric_names:
                v = torch.as_tensor(np.atleast_1d(np.asarray(values[name], dtype=np.float64)))
                getattr(self, f"per_image_{name}").append(v.to(self.device))

        def compute_per_image(self) -> dict[str, torch.Tensor]:
            """Per-image values of every metric (all ranks' images under DDP, gathered rank by rank)."""
            with self.sync_context():
                return self._per_image()

        def _per_image(self) -> dict[str, torch.Tensor]:
            out = {}
            for name in self.metric_names:
                state = getattr(self, f"per_image_{name}")
                if isinstance(state, list) and not state:
                    raise ValueError(
                        "AmbiSegMetric.compute() called before any update(): no image to average"
                    )
                out[name] = dim_zero_cat(state)
            return out

        def compute(self) -> dict[str, torch.Tensor]:  # type: ignore[override]
            out = {}
            for name, v in self._per_image().items():
                mean = nan_summary(v.detach().cpu().numpy()).mean
                out[name] = torch.tensor(mean, dtype=v.dtype, device=v.device)
            return out

    AmbiSegMetric.__module__ = __name__
    _CLASS = AmbiSegMetric
    return _CLASS


def __getattr__(name: str) -> Any:
    if name == "AmbiSegMetric":
        return build_metric_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
