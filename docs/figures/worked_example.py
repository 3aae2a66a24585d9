"""Worked example of the docs: a small ambiguous lesion, its annotations, a model's samples, the metrics.

Run at documentation build time: matplotlib's ``plot`` directive calls :func:`plot_figure`, and the
``metrics-table`` directive of ``docs/_ext/ambiseg_docs.py`` renders :func:`example_metrics`, so the
figure and the numbers beside it always come from the library as it is. To save the figure by hand::

    cd docs/figures && python -c "import worked_example as w; w.plot_figure().savefig('example.png')"
"""

from __future__ import annotations

import numpy as np

SIZE = 32  # pixels per side


def ellipse(cy: float, cx: float, ry: float, rx: float, size: int = SIZE) -> np.ndarray:
    """Boolean (size, size) mask of the axis-aligned ellipse centred at (cy, cx) with radii (ry, rx)."""
    y, x = np.mgrid[0:size, 0:size]
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0


def example_masks() -> tuple[np.ndarray, np.ndarray]:
    """The example image's N = 6 samples and M = 4 annotations, boolean arrays (N or M, 32, 32).

    Three annotators draw the lesion's core with slightly different borders; one of them also marks a
    faint satellite lobe; the fourth sees no lesion at all (an empty mask, common in LIDC). The model's
    samples vary the border in the same way, two of them find the lobe, and one is empty.
    """
    core = ellipse(15, 14, 6, 7)
    lobe = ellipse(9, 24, 3, 3)
    empty = np.zeros((SIZE, SIZE), dtype=bool)
    gts = np.stack([
        core,
        ellipse(15, 14, 7, 8),
        ellipse(15, 13, 5, 6) | lobe,
        empty,
    ])
    preds = np.stack([
        ellipse(15, 14, 6, 6),
        ellipse(16, 14, 7, 8),
        ellipse(15, 15, 5, 7) | lobe,
        ellipse(14, 14, 6, 7) | ellipse(9, 24, 2, 3),
        ellipse(15, 14, 4, 5),
        empty,
    ])
    return preds, gts


def example_metrics() -> dict[str, float]:
    """GED (and its terms), the CI score (both forms) and its components on :func:`example_masks`."""
    from ambiseg_metrics import evaluate

    preds, gts = example_masks()
    return evaluate(preds, gts)


def plot_figure():
    """Masks in two rows (annotations, samples) and the pairwise IoU matrix the metrics are read from."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    from ambiseg_metrics import iou_from_counts, pair_counts

    preds, gts = example_masks()
    n, m = len(preds), len(gts)
    values = example_metrics()
    iou = iou_from_counts(pair_counts(preds, gts).blocks[0].inter[0])

    fig = plt.figure(figsize=(10.5, 3.7), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[1.9, 1.0])
    axes = left.subplots(2, max(n, m))
    for row, (stack, label, color) in enumerate([(gts, "Y", "#d62728"), (preds, "S", "#1f77b4")]):
        for j, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(stack):
                ax.set_axis_off()
                continue
            ax.imshow(stack[j], cmap=ListedColormap(["#f4f4f4", color]), vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_title(f"${label}_{j + 1}$" + (" (empty)" if not stack[j].any() else ""), fontsize=9)
    axes[0, 0].set_ylabel(f"annotations\nM = {m}", fontsize=9)
    axes[1, 0].set_ylabel(f"samples\nN = {n}", fontsize=9)
    left.suptitle(
        "GED = {ged:.3f}    CI = {ci:.3f}    ($S_c$ = {combined_sensitivity:.3f}, "
        "$D_{{max}}$ = {max_dice_matching:.3f}, $D_a$ = {diversity_agreement:.3f})".format(**values),
        fontsize=9,
    )

    ax = right.subplots()
    im = ax.imshow(iou, cmap="viridis", vmin=0, vmax=1)
    names = [f"$S_{j + 1}$" for j in range(n)] + [f"$Y_{i + 1}$" for i in range(m)]
    ax.set_xticks(range(n + m), names, fontsize=8)
    ax.set_yticks(range(n + m), names, fontsize=8)
    for pos in (n - 0.5,):
        ax.axhline(pos, color="white", lw=1.5)
        ax.axvline(pos, color="white", lw=1.5)
    ax.set_title("pairwise IoU (empty vs empty = 1)", fontsize=9)
    right.colorbar(im, ax=ax, shrink=0.8)
    return fig
