"""Figures of the Table 1 pipeline (matplotlib, Agg canvas; imported only when figures are drawn).

* :func:`sample_grid`: like the paper's qualitative figure -- the input image and its M annotations in the
  first row, then one row of ``n_show`` samples per model (binarised at 0.5, as the metrics see them).
* :func:`metric_boxplots`: per-image metric distributions, one panel per metric, one box per method.

No pyplot: figures are built on :class:`matplotlib.figure.Figure` with an Agg canvas, so nothing touches
the global backend or needs a display.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["metric_boxplots", "sample_grid"]


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | os.PathLike, dpi: int) -> Path:
    from ambiseg_metrics.files.atomic import atomic_write

    path = Path(path)
    atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=dpi, bbox_inches="tight",
                                              metadata={"Software": None}), mkdir=True)
    return path


def sample_grid(
    image: np.ndarray,
    annotations: np.ndarray,
    samples: Mapping[str, np.ndarray],
    path: str | os.PathLike,
    *,
    title: str = "",
    n_show: int = 8,
    threshold: float = 0.5,
    dpi: int = 80,
) -> Path:
    """Input, annotations and samples of every model for one test image.

    Parameters
    ----------
    image : (C, H, W) or (H, W) array; the first channel is shown
    annotations : (M, H, W) masks
    samples : model label -> (n, H, W) probabilities (shown binarised at ``threshold``)
    path : PNG file to write
    title : figure title
    n_show : samples shown per model
    threshold : binarisation threshold of the samples
    dpi : resolution

    Returns
    -------
    Path of the written PNG.
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3:
        img = img[0]
    if img.ndim != 2:
        raise ValueError(f"image must be (C, H, W) or (H, W), got shape {np.shape(image)}")
    ann = np.asarray(annotations)
    if ann.ndim != 3:
        raise ValueError(f"annotations must be (M, H, W), got shape {ann.shape}")
    n_cols = max(1 + ann.shape[0], min(n_show, max((len(s) for s in samples.values()), default=1)))
    n_rows = 1 + len(samples)
    fig = _figure(1.1 * n_cols + 1.4, 1.15 * n_rows + 0.4)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    axes[0, 0].imshow(img, cmap="gray", interpolation="nearest")
    axes[0, 0].set_title("input", fontsize=7)
    for j, mask in enumerate(ann):
        axes[0, 1 + j].imshow(mask > 0, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[0, 1 + j].set_title(f"annotation {j + 1}", fontsize=7)
    for r, (label, s) in enumerate(samples.items(), start=1):
        s = np.asarray(s)
        if s.ndim != 3 or s.shape[1:] != img.shape:
            raise ValueError(
                f"samples of {label!r} must be (n, {img.shape[0]}, {img.shape[1]}), got {s.shape}"
            )
        for j in range(min(n_show, len(s), n_cols)):
            axes[r, j].imshow(s[j] > threshold, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[r, 0].text(
            -0.08, 0.5, label, transform=axes[r, 0].transAxes, ha="right", va="center", fontsize=7
        )
    if title:
        fig.suptitle(title, fontsize=8)
    return _save(fig, path, dpi)


def metric_boxplots(
    per_method: Mapping[str, Mapping[str, np.ndarray]],
    metrics: Sequence[tuple[str, str]],
    path: str | os.PathLike,
    *,
    title: str = "",
    dpi: int = 80,
) -> Path:
    """Per-image metric distributions: one panel per metric (3 per row), one box (mean marked) per method.

    Parameters
    ----------
    per_method : method label -> metric name -> (B,) per-image values (NaNs are left out)
    metrics : (metric name, panel title) pairs to draw
    path : PNG file to write
    title : figure title
    dpi : resolution
    """
    if not metrics:
        raise ValueError("metrics is empty: nothing to plot")
    labels = list(per_method)
    n_cols = min(3, len(metrics))
    n_rows = -(-len(metrics) // n_cols)
    fig = _figure(2.6 * n_cols + 0.4, 2.9 * n_rows)
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax in axes[len(metrics) :]:
        ax.set_axis_off()
    for ax, (name, panel) in zip(axes, metrics, strict=False):
        data = []
        for lab in labels:
            v = np.asarray(per_method[lab][name], dtype=np.float64)
            data.append(v[~np.isnan(v)])
        ax.boxplot(data, showmeans=True, widths=0.6)
        ax.set_xticks(range(1, len(labels) + 1))
        ax.set_xticklabels(labels, rotation=40, ha="right", fontsize=7)
        ax.set_title(panel, fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return _save(fig, path, dpi)
