"""The report's figures, drawn with matplotlib (imported here only, lazily, Agg backend) as PNG bytes.

Each function returns the bytes of one PNG; :mod:`ambiseg_metrics.files.html` inlines them as base64.
The case grids show, for one case: every annotation, the first samples, the sample frequency map (the
fraction of samples marking each pixel), the rater frequency map (the fraction of annotators) and the
per-pixel disagreement ``|sample freq - rater freq|``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["binarize", "case_grid", "distributions", "sample_curve_figure", "shown_slice"]

MAX_SAMPLES_SHOWN = 6


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def binarize(stack: np.ndarray, threshold: float) -> np.ndarray:
    """Foreground as the metrics read it: float masks ``> threshold``, integer/bool masks nonzero."""
    a = np.asarray(stack)
    return a > threshold if a.dtype.kind == "f" else a != 0


def shown_slice(preds: np.ndarray, gts: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """2D views of (N, *spatial) stacks: 2D as is; 3D the slice (first spatial axis) with most foreground."""
    if preds.ndim == 3:
        return preds, gts, ""
    if preds.ndim != 4:
        raise ValueError(f"can only show 2D or 3D masks; got stacks of shape {preds.shape}")
    k = int(np.argmax(gts.sum(axis=(0, 2, 3)) + preds.sum(axis=(0, 2, 3))))
    return preds[:, k], gts[:, k], f" (slice {k} of {preds.shape[1]})"


def case_grid(preds: np.ndarray, gts: np.ndarray, title: str) -> bytes:
    """One row per kind: annotations; samples; frequency maps and disagreement (boolean stacks in)."""
    plt = _plt()
    preds, gts, where = shown_slice(preds, gts)
    shown = preds[:MAX_SAMPLES_SHOWN]
    f_s, f_r = preds.mean(axis=0), gts.mean(axis=0)
    cols = max(len(gts), len(shown), 3)
    fig, axes = plt.subplots(3, cols, figsize=(1.6 * cols, 5.2), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for j, g in enumerate(gts[:cols]):
        axes[0, j].imshow(g, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[0, j].set_title(f"annotation {j + 1}", fontsize=7)
    for j, s in enumerate(shown):
        axes[1, j].imshow(s, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[1, j].set_title(f"sample {j + 1}" + (f" of {len(preds)}" if j == len(shown) - 1 else ""),
                             fontsize=7)
    panels = [(f_s, "sample frequency", "viridis"), (f_r, "rater frequency", "viridis"),
              (np.abs(f_s - f_r), "|disagreement|", "magma")]
    for j, (img, name, cmap) in enumerate(panels):
        im = axes[2, j].imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        axes[2, j].set_title(name, fontsize=7)
    fig.colorbar(im, ax=axes[2, : len(panels)].tolist(), fraction=0.04, pad=0.02)
    fig.suptitle(title + where, fontsize=9)
    return _png(fig)


def distributions(values: Mapping[str, Mapping[str, np.ndarray]], metrics: Sequence[str]) -> bytes:
    """Per metric, the distribution over cases (histogram), one overlaid outline per model.

    ``values[model][metric]`` is the per-case array (NaN = undefined, left out).
    """
    plt = _plt()
    ncols = min(4, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.4 * nrows), squeeze=False)
    for ax in axes.ravel()[len(metrics):]:
        ax.set_axis_off()
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric in zip(axes.ravel(), metrics, strict=False):
        arrays = {m: np.asarray(v[metric], float) for m, v in values.items()}
        finite = np.concatenate([a[~np.isnan(a)] for a in arrays.values()])
        if finite.size == 0:
            ax.set_title(f"{metric} (undefined)", fontsize=8)
            continue
        lo, hi = float(finite.min()), float(finite.max())
        bins = np.linspace(lo, hi if hi > lo else lo + 1e-9, 16)
        for k, (model, a) in enumerate(arrays.items()):
            a = a[~np.isnan(a)]
            c = colours[k % len(colours)]
            ax.hist(a, bins=bins, histtype="stepfilled", alpha=0.25, color=c)
            ax.hist(a, bins=bins, histtype="step", color=c, label=f"{model} (mean {a.mean():.3f})")
            ax.axvline(a.mean(), color=c, linestyle="--", linewidth=1)
        ax.set_title(metric, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    fig.supxlabel("value per case", fontsize=8)
    fig.supylabel("cases", fontsize=8)
    fig.tight_layout()
    return _png(fig)


def sample_curve_figure(rows: Sequence[Mapping[str, object]], metrics: Sequence[str]) -> bytes:
    """Mean over random subsets ± the within-case sd, and the first-n mean, against n (log2 axis)."""
    plt = _plt()
    ncols = min(4, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.4 * nrows), squeeze=False)
    for ax in axes.ravel()[len(metrics):]:
        ax.set_axis_off()
    for ax, metric in zip(axes.ravel(), metrics, strict=False):
        rs = [r for r in rows if r["metric"] == metric]
        n = np.array([r["n"] for r in rs], float)
        mean = np.array([r["random_mean"] for r in rs], float)
        sd = np.array([r["within_case_sd"] for r in rs], float)
        first = np.array([r["first_mean"] for r in rs], float)
        ax.fill_between(n, mean - sd, mean + sd, alpha=0.25, label="random subsets: mean ± sd within case")
        ax.plot(n, mean, "o-", markersize=3)
        ax.plot(n, first, "x--", markersize=4, label="first n samples")
        ax.set_xscale("log", base=2)
        ax.set_title(metric, fontsize=8)
        ax.tick_params(labelsize=7)
    axes.ravel()[0].legend(fontsize=6)
    fig.supxlabel("n samples per case", fontsize=8)
    fig.tight_layout()
    return _png(fig)
