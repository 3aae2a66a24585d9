"""The human reference ("rater floor") on real LIDC-IDRI rater masks: each metric for reference samplers.

For every nodule (largest-union axial slice, 128 × 128 at 0.5 mm, :mod:`cimd_model.data.lidc_raters`) and its
M = 4 annotations, N samples are drawn by

* ``raters (N = M)``: the M annotations themselves, each once (the sample set *is* the annotation set);
* ``perfect, with replacement``: N draws uniformly from the M annotations (seeded);
* ``perfect, leave-one-rater-out``: N draws uniformly from the annotations other than rater m, scored against
  all M; averaged over m (a sampler that knows every rater but one);
* ``majority consensus × N``: the pixels that at least half of the M masks mark (pylidc's ``consensus`` at
  level 0.5), repeated N times;
* ``single rater × N``: one annotation repeated N times, averaged over which *present* rater it is;
* ``empty × N``: N empty masks;

and scored with :func:`ambiseg_metrics.evaluate` (public API only): GED with d = 1 − IoU (V-statistic and
unbiased estimator), CI as published and its true harmonic mean, D_max (max Dice matching), D_a (diversity
agreement, V = 1 − Dice), HM-IoU. ``present-only`` uses the nodules with exactly four raters; ``pad-empty``
uses every nodule with one to four raters, padded with empty masks to M = 4. Mean over nodules ± the
half-width of a normal 95% interval (1.96 · sd / √n).

The script also reports the rater-vs-rater statistic: the mean over nodules of the mean 1 − IoU over pairs of
distinct annotations (IoU(∅, ∅) = 1).

Example (the table in ``docs/lidc_raters.md``)::

    cimd-lidc build                      # once: the cache of all 1,018 scans
    python benchmarks/rater_floor.py --n 16 --out docs/lidc_rater_floor.md

With ``--gts DIR`` the floor is computed on the annotation stacks of a folder instead (one ``.npy`` of shape
(M, H, W) per case, e.g. the ``gts/`` that ``cimd-table1`` writes), so that it stands beside a Table 1 column
on exactly its test images; there every annotation counts as present.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

import numpy as np

from ambiseg_metrics import evaluate

METRICS = [
    ("GED (V)", "ged", "v-statistic"),
    ("GED (unbiased)", "ged", "unbiased"),
    ("CI", "ci", None),
    ("CI (harmonic)", "ci_harmonic", None),
    ("D_max", "max_dice_matching", None),
    ("D_a", "diversity_agreement", None),
    ("HM-IoU", "hm_iou", None),
]
SAMPLERS = [
    "raters (N = M)",
    "perfect, with replacement",
    "perfect, leave-one-rater-out",
    "majority consensus × N",
    "single rater × N",
    "empty × N",
]


def crops(cache, missing: str, size: int, spacing: float, limit: int | None):
    """(B, 4, H, W) bool masks and (B,) present-rater counts for the nodules a convention keeps."""
    from cimd_model.data.lidc_raters import nodule_2d, select

    keep = select(cache, missing, 4 if missing == "present-only" else None)[:limit]
    masks = np.stack([nodule_2d(cache[i], missing, size, spacing) for i in keep])
    return masks, cache.n_raters[keep].astype(int)


def _score(preds: np.ndarray, gts: np.ndarray) -> dict[str, np.ndarray]:
    v = evaluate(preds, gts, batch=True, estimator="v-statistic")
    u = evaluate(preds, gts, batch=True, metrics=["ged"], estimator="unbiased")
    return {
        label: np.asarray((u if est == "unbiased" else v)[key], dtype=float) for label, key, est in METRICS
    }


def _mean_of(parts: list[dict[str, np.ndarray]], weights: np.ndarray) -> dict[str, np.ndarray]:
    """Per-nodule weighted mean over several sample sets (weights (K, B), rows summing to 1 per nodule)."""
    return {k: sum(w * p[k] for w, p in zip(weights, parts, strict=True)) for k in parts[0]}


def floor_table(gts: np.ndarray, present: np.ndarray, n: int, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Per-nodule metric values for every sampler (see the module docstring)."""
    rng = np.random.default_rng(seed)
    b, m = gts.shape[:2]
    rows: dict[str, dict[str, np.ndarray]] = {}
    rows[SAMPLERS[0]] = _score(gts, gts)
    draw = rng.integers(0, m, size=(b, n))
    rows[SAMPLERS[1]] = _score(np.take_along_axis(gts, draw[:, :, None, None], axis=1), gts)
    parts = []
    for left_out in range(m):
        others = np.array([r for r in range(m) if r != left_out])
        draw = others[rng.integers(0, m - 1, size=(b, n))]
        parts.append(_score(np.take_along_axis(gts, draw[:, :, None, None], axis=1), gts))
    rows[SAMPLERS[2]] = _mean_of(parts, np.full((m, b), 1.0 / m))
    majority = gts.mean(axis=1) >= 0.5
    rows[SAMPLERS[3]] = _score(np.repeat(majority[:, None], n, axis=1), gts)
    parts, weights = [], []
    for r in range(m):
        parts.append(_score(np.repeat(gts[:, r : r + 1], n, axis=1), gts))
        weights.append(np.where(r < present, 1.0 / present, 0.0))  # present raters come first
    rows[SAMPLERS[4]] = _mean_of(parts, np.array(weights))
    rows[SAMPLERS[5]] = _score(np.zeros((b, n, *gts.shape[2:]), bool), gts)
    return rows


def rater_vs_rater(gts: np.ndarray) -> dict[str, np.ndarray]:
    """Per nodule: mean 1 − IoU over pairs of annotations (IoU(∅, ∅) = 1), over the M(M − 1) pairs of distinct
    annotations ("distinct") and over all M² ordered pairs, i = j included ("all", GED's V-statistic term)."""
    out = {}
    for label, estimator in (("distinct", "unbiased"), ("all", "v-statistic")):
        r = evaluate(gts, gts, batch=True, metrics=["ged_annotator_diversity"], estimator=estimator)
        out[label] = np.asarray(r["ged_annotator_diversity"], dtype=float)
    return out


def _fmt(v: np.ndarray) -> str:
    v = v[np.isfinite(v)]
    if v.size == 0:
        return "—"
    half = 1.96 * v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else float("nan")
    return f"{v.mean():.3f} ± {half:.3f}"


def markdown(title: str, rows: dict[str, dict[str, np.ndarray]]) -> str:
    labels = [m[0] for m in METRICS]
    lines = [f"**{title}**", "", "| sampler | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for name, vals in rows.items():
        lines.append(f"| {name} | " + " | ".join(_fmt(vals[k]) for k in labels) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", default=None, help="cache file or 'fixture' (default: the user cache)")
    p.add_argument("--n", type=int, default=16, help="samples per nodule (default 16)")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--spacing", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="at most this many nodules per set")
    p.add_argument("--out", default=None, help="write the markdown tables here")
    p.add_argument("--gts", default=None, help="a folder of per-case annotation stacks (.npy), not the cache")
    args = p.parse_args(argv)
    if args.gts is not None:
        return _main_gts(args, argv)
    from cimd_model.data.lidc_cache import load_cache

    t0 = time.perf_counter()
    cache = load_cache(args.cache)
    parts = [
        f"Rater floor on {cache.path.name} (N = {args.n} samples, {args.size}×{args.size} at "
        f"{args.spacing} mm, seed {args.seed}); mean over nodules ± 95% half-width.",
        "",
    ]
    for missing, title in (("present-only", "four-rater nodules"), ("pad-empty", "all 1–4-rater nodules")):
        gts, present = crops(cache, missing, args.size, args.spacing, args.limit)
        rows = floor_table(gts, present, args.n, args.seed)
        rvr = rater_vs_rater(gts)
        parts += [markdown(f"{missing}: {len(gts)} {title}, M = 4", rows), ""]
        subsets = [("all nodules", np.ones(len(gts), bool))]
        if missing == "pad-empty":
            subsets.append((f"the {(present >= 2).sum()} nodules with 2–4 raters", present >= 2))
        for name, sel in subsets:
            parts.append(
                f"- rater vs rater, mean 1 − IoU ({missing}, {name}): {_fmt(rvr['distinct'][sel])} over "
                f"pairs of distinct raters; {_fmt(rvr['all'][sel])} over all M² pairs (i = j included)"
            )
        parts.append("")
    parts.append(
        f"Computed in {time.perf_counter() - t0:.0f} s on {platform.machine()} "
        f"({platform.python_version()}) with: python benchmarks/rater_floor.py "
        + " ".join(sys.argv[1:] if argv is None else argv)
    )
    return _emit("\n".join(parts) + "\n", args.out)


def _emit(text: str, out: str | None) -> int:
    print(text)
    if out:
        from ambiseg_metrics.files.atomic import atomic_write

        atomic_write(out, text, mkdir=True)
    return 0


def _main_gts(args: argparse.Namespace, argv: list[str] | None) -> int:
    """The floor on the annotation stacks of a folder (every annotation counted as present)."""
    from pathlib import Path

    t0 = time.perf_counter()
    files = sorted(Path(args.gts).glob("*.npy"))
    if not files:
        raise SystemExit(f"rater_floor: no .npy annotation stacks in {args.gts}")
    gts = np.stack([np.load(f) != 0 for f in files])
    rows = floor_table(gts, np.full(len(gts), gts.shape[1]), args.n, args.seed)
    rvr = rater_vs_rater(gts)
    parts = [
        f"Rater floor on the {len(gts)} annotation stacks of `{Path(args.gts).name}/` (M = {gts.shape[1]}, "
        f"{gts.shape[2]}×{gts.shape[3]}; N = {args.n} samples, seed {args.seed}); mean over cases ± 95% "
        "half-width.",
        "",
        markdown(f"{len(gts)} cases, M = {gts.shape[1]}", rows),
        "",
        f"- rater vs rater, mean 1 − IoU: {_fmt(rvr['distinct'])} over pairs of distinct raters; "
        f"{_fmt(rvr['all'])} over all M² pairs (i = j included)",
        "",
        f"Computed in {time.perf_counter() - t0:.1f} s with: python benchmarks/rater_floor.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
    ]
    return _emit("\n".join(parts) + "\n", args.out)


if __name__ == "__main__":
    raise SystemExit(main())
