"""Evaluation of the written sample files, through :mod:`ambiseg_metrics` only, and their summaries."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: metric name of the GED against the known annotation distribution
#: metric name of the GED against the known annotation distribution
TRUE_GED = "ged_true"


# ------------------------------------------------------------------------------------------ evaluation
def load_case_arrays(samples_dir: Path, gts_dir: Path, ids: Sequence[str]) -> tuple[list, list]:
    """The written samples and annotations of ``ids`` (raises FileNotFoundError naming a missing file)."""
    preds, gts = [], []
    for case in ids:
        for folder, out in ((samples_dir, preds), (gts_dir, gts)):
            path = folder / f"{case}.npy"
            if not path.is_file():
                raise FileNotFoundError(f"missing {path}")
            out.append(np.load(path, allow_pickle=False))
    return preds, gts


def evaluate_model_samples(
    samples_dir: str | os.PathLike,
    gts_dir: str | os.PathLike,
    ids: Sequence[str],
    modes: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    chunk: int = 256,
) -> dict[str, np.ndarray]:
    """Every metric of :mod:`ambiseg_metrics` per test image, from the written files.

    :func:`ambiseg_metrics.evaluate` (``batch=True``, threshold 0.5, default options) over the cases, in
    chunks of ``chunk`` images to bound memory (the values do not depend on it); with ``modes`` (per image:
    mode masks and probabilities) also :data:`TRUE_GED` (:func:`cimd_model.true_ged.true_ged_batch`,
    unbiased sample-diversity term). Pair metrics (CI, D_a) are left out when some image has N or M < 2.

    Returns
    -------
    dict metric name -> (B,) float64 array, in the order of ``ids``
    """
    from ambiseg_metrics import METRICS, evaluate

    from ..true_ged import true_ged_batch

    if not ids:
        raise ValueError("no test cases to evaluate")
    parts: list[dict[str, np.ndarray]] = []
    metrics = list(METRICS)
    for start in range(0, len(ids), int(chunk)):
        preds, gts = load_case_arrays(Path(samples_dir), Path(gts_dir), ids[start : start + int(chunk)])
        if min(p.shape[0] for p in preds) < 2 or min(g.shape[0] for g in gts) < 2:
            metrics = [m for m in metrics if m not in ("ci", "ci_harmonic", "diversity_agreement")]
        part = {
            k: np.asarray(v, dtype=np.float64)
            for k, v in evaluate(preds, gts, batch=True, metrics=metrics).items()
        }
        if modes is not None:
            chunk_modes = modes[start : start + int(chunk)]
            part[TRUE_GED] = true_ged_batch(preds, [m for m, _ in chunk_modes], [w for _, w in chunk_modes])
        parts.append(part)
    keys = [k for k in parts[-1] if all(k in p for p in parts)]
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}


def _bootstrap_ci(x: np.ndarray, seed: int, n_boot: int) -> tuple[float, float]:
    try:
        from ambiseg_metrics.files.report import bootstrap_ci
    except ImportError:  # pragma: no cover - older ambiseg_metrics without the report module
        if x.size == 0:
            return math.nan, math.nan
        rng = np.random.default_rng(seed)
        means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
        low, high = np.quantile(means, [0.025, 0.975])
        return float(low), float(high)
    return bootstrap_ci(x, n_boot=n_boot, confidence=0.95, seed=seed)


def summarize_values(values: np.ndarray, seed: int = 0, n_boot: int = 10_000) -> dict[str, float]:
    """Mean and seeded percentile-bootstrap 95% CI of the mean over images (NaNs left out)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    low, high = _bootstrap_ci(x, seed, n_boot)
    return {"n": int(x.size), "mean": float(x.mean()) if x.size else math.nan, "ci_low": low, "ci_high": high}


#: two-sided 95% Student-t quantiles t(0.975, df) for df = 1 … 30 (standard tables); beyond 30 the normal 1.96
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t_quantile_975(df: int) -> float:
    """``t(0.975, df)``: the half-width factor of a 95% Student-t interval with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    return _T975[df - 1] if df <= len(_T975) else 1.96


def summarize_over_seeds(per_seed: Sequence[np.ndarray], seed: int = 0, n_boot: int = 10_000) -> dict:
    """Summary of one metric over ``S`` training seeds, each a (B,) array over the same test images.

    Over images: each image's mean over the seeds, then :func:`summarize_values` (mean and bootstrap 95% CI
    over images). Over seeds (``S >= 2``): each seed's mean over images, their mean ± ``t(0.975, S-1) · sd /
    √S`` (``seed_low``, ``seed_high``; ``n_seeds``). With one seed this is :func:`summarize_values` exactly.
    """
    arrays = [np.asarray(v, dtype=np.float64) for v in per_seed]
    if not arrays:
        raise ValueError("no seeds to summarize")
    if len(arrays) == 1:
        return summarize_values(arrays[0], seed=seed, n_boot=n_boot)
    stack = np.stack(arrays)  # (S, B)
    with np.errstate(invalid="ignore"):
        ok = ~np.isnan(stack)
        per_image = np.where(ok.any(0), np.where(ok, stack, 0).sum(0) / np.maximum(ok.sum(0), 1), np.nan)
    out = summarize_values(per_image, seed=seed, n_boot=n_boot)
    means = np.array([a[~np.isnan(a)].mean() if (~np.isnan(a)).any() else math.nan for a in arrays])
    means = means[~np.isnan(means)]
    half = (
        t_quantile_975(means.size - 1) * means.std(ddof=1) / math.sqrt(means.size)
        if means.size > 1
        else math.nan
    )
    centre = float(means.mean()) if means.size else math.nan
    out.update({"n_seeds": int(means.size), "seed_low": centre - half, "seed_high": centre + half})
    return out
