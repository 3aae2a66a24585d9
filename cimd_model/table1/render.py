"""What ``cimd-table1`` writes: ``table1.md``, ``table1.csv``, ``per_image.csv`` and the figures."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .evaluate import TRUE_GED
from .profiles import METHOD_LABELS, MODELS
from .specs import STANDS_IN_FOR, data_key, data_label

#: Table 1 of Rahman et al. (CVPR 2023): data set -> method -> (GED, CI, D_max)
#: Table 1 of Rahman et al. (CVPR 2023): data set -> method -> (GED, CI, D_max)
PUBLISHED: dict[str, dict[str, tuple[float, float, float]]] = {
    "LIDC-IDRI": {
        "prob_unet": (0.353, 0.731, 0.892),
        "phiseg": (0.270, 0.736, 0.904),
        "gen_prob_unet": (0.299, 0.707, 0.905),
        "cimd": (0.321, 0.759, 0.915),
    },
    "Bone ultrasound": {
        "prob_unet": (0.390, 0.738, 0.844),
        "phiseg": (0.312, 0.7544, 0.848),
        "gen_prob_unet": (0.289, 0.7501, 0.863),
        "cimd": (0.295, 0.7578, 0.889),
    },
    "MS-lesion": {
        "prob_unet": (0.749, 0.514, 0.502),
        "phiseg": (0.681, 0.518, 0.506),
        "gen_prob_unet": (0.678, 0.522, 0.513),
        "cimd": (0.733, 0.560, 0.562),
    },
}

#: the paper data set each AmbiBlobs flavour stands in for

#: (metric key, column label) of the paper's three columns and of the extra columns
MAIN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ged", "GED ↓"),
    ("ci", "CI ↑"),
    ("max_dice_matching", "D_max ↑"),
)
EXTRA_COLUMNS: tuple[tuple[str, str], ...] = (
    ("hm_iou", "HM-IoU ↑"),
    ("ci_harmonic", "CI (harmonic) ↑"),
    ("ged_true", "GED vs. truth ↓"),
)


# ------------------------------------------------------------------------------------------ tables
def _fmt(s: Mapping[str, float] | None) -> str:
    if s is None or math.isnan(s["mean"]):
        return "–"
    half = (s["ci_high"] - s["ci_low"]) / 2.0
    if "seed_low" not in s:
        return f"{s['mean']:.3f} ± {half:.3f}"
    return f"{s['mean']:.3f} ± {half:.3f} [± {(s['seed_high'] - s['seed_low']) / 2.0:.3f}]"


def _md_table(rows: list[list[str]], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def published_markdown() -> str:
    """The published Table 1 (GED / CI / D_max) as a Markdown table."""
    sets = list(PUBLISHED)
    header = ["Method"] + [f"{d} {lab}" for d in sets for _, lab in MAIN_COLUMNS]
    rows = [[METHOD_LABELS[m]] + [f"{v:g}" for d in sets for v in PUBLISHED[d][m]] for m in MODELS]
    return _md_table(rows, header)


def table_markdown(
    summary: Mapping[str, Mapping[str, Mapping[str, Mapping[str, float]]]],
    specs: Sequence[str],
    models: Sequence[str],
    meta: Mapping[str, Any],
) -> str:
    """``table1.md``: the paper layout, the extra columns, the published numbers, how it was made."""
    keys = [data_key(s) for s in specs]
    synthetic = any(s in STANDS_IN_FOR for s in specs)
    out = ["# Table 1 reproduction" + (" (SYNTHETIC data: AmbiBlobs)" if synthetic else ""), ""]
    seeds = list(meta.get("seeds") or [meta["seed"]])
    head = f"Profile `{meta['profile']}`, n = {meta['n_samples']} samples per test image"
    if len(seeds) == 1:
        out.append(
            f"{head}, seed {meta['seed']}. "
            "Cells: mean ± half-width of the 95% percentile-bootstrap CI of the mean over test images "
            f"({meta['n_boot']} resamples, seed {meta['seed']}); masks binarised at 0.5; "
            "GED with d = 1 − IoU (V-statistic), CI/D_max with Dice, empty–empty pairs count as a match."
        )
    else:
        out.append(
            f"{head}, every model trained and sampled with each of the {len(seeds)} seeds "
            f"{', '.join(map(str, seeds))} on the same data "
            f"(data seed {meta['seed']}). Cells: mean over seeds and test images ± half-width of the 95% "
            "percentile-bootstrap CI over test images (each image's mean over the seeds; "
            f"{meta['n_boot']} resamples, seed {meta['seed']}) [± half-width of the 95% Student-t interval "
            f"over the {len(seeds)} seeds' means]; masks binarised at 0.5; GED with d = 1 − IoU "
            "(V-statistic), CI/D_max with Dice, empty–empty pairs count as a match."
        )
    extras = []
    if meta.get("budget"):
        extras.append(
            "training budget of every model: "
            + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(meta["budget"].items()))
        )
    if meta.get("protocol", "ours") != "ours":
        extras.append(f"LIDC protocol `{meta['protocol']}` (cimd_model.data.protocols)")
    if extras:
        out += ["", "; ".join(extras).capitalize() + "."]
    out.append("")
    for k, s in zip(keys, specs, strict=True):
        n_img = {summary[k][m]["ged"]["n"] for m in models if m in summary[k]}
        out.append(f"* `{k}`: {data_label(s)} -- {', '.join(str(n) for n in sorted(n_img))} test images")
    out.append("")
    header = ["Method"] + [f"{k} {lab}" for k in keys for _, lab in MAIN_COLUMNS]
    rows = [
        [METHOD_LABELS.get(m, m)] + [_fmt(summary[k][m].get(c)) for k in keys for c, _ in MAIN_COLUMNS]
        for m in models
    ]
    out += ["## Paper layout (GED, CI, D_max)", "", _md_table(rows, header)]
    extra = [(c, lab) for c, lab in EXTRA_COLUMNS if any(c in summary[k][m] for k in keys for m in models)]
    missing = [lab for c, lab in EXTRA_COLUMNS if (c, lab) not in extra]
    if extra:
        header = ["Method"] + [f"{k} {lab}" for k in keys for _, lab in extra]
        rows = [
            [METHOD_LABELS.get(m, m)] + [_fmt(summary[k][m].get(c)) for k in keys for c, _ in extra]
            for m in models
        ]
        out += ["## Extra columns", "", _md_table(rows, header)]
        notes = []
        if any(c == TRUE_GED for c, _ in extra):
            notes.append(
                "GED vs. truth: GED between the model's samples and the known AmbiBlobs mixture of modes "
                "(weights = mode probabilities; unbiased sample-diversity term) -- the quantity the sampled "
                "GED estimates; – where the distribution is unknown."
            )
        if any(c == "ci_harmonic" for c, _ in extra):
            notes.append(
                "CI (harmonic): the true harmonic mean 3 / (1/S_c + 1/D_max + 1/D_a); the CI column is "
                "the paper's form 3·S_c·D_max·D_a / (S_c + D_max + D_a), comparable with the published CI."
            )
        out += [f"* {n}" for n in notes] + [""]
    if missing:
        out += [f"Not reported (metric not available in this ambiseg_metrics): {', '.join(missing)}.", ""]
    out += [
        "## Published (Rahman et al., CVPR 2023, Table 1; real data, for reference)",
        "",
        published_markdown(),
    ]
    out += ["Command:", "", "```", meta["command"], "```", ""]
    return "\n".join(out)


def _csv_float(v: float) -> str:
    return repr(float(v))


def table_csv(
    summary: Mapping[str, Mapping[str, Mapping[str, Mapping[str, float]]]],
    specs: Sequence[str],
    models: Sequence[str],
) -> str:
    """``table1.csv``: one row per method; per data set and metric the columns ``<data>:<metric>``
    (mean), ``…:ci_low``, ``…:ci_high``, plus ``<data>:n_images``; for runs of several seeds also
    ``…:seed_low``, ``…:seed_high`` (95% t-interval over the seeds) and ``<data>:n_seeds``. Every metric
    evaluated is included."""
    keys = [data_key(s) for s in specs]
    metric_order: dict[str, list[str]] = {}
    for k in keys:
        names: list[str] = []
        for m in models:
            names += [n for n in summary[k][m] if n not in names]
        metric_order[k] = names
    seeded = any("seed_low" in v for k in keys for m in models for v in summary[k][m].values())
    fields = (
        ("mean", "ci_low", "ci_high", "seed_low", "seed_high") if seeded else ("mean", "ci_low", "ci_high")
    )
    header = ["method", "model"]
    for k in keys:
        header += [f"{k}:n_images"] + ([f"{k}:n_seeds"] if seeded else [])
        for n in metric_order[k]:
            header += [f"{k}:{n}" if f == "mean" else f"{k}:{n}:{f}" for f in fields]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for m in models:
        row = [METHOD_LABELS.get(m, m), m]
        for k in keys:
            row.append(str(summary[k][m]["ged"]["n"]))
            if seeded:
                row.append(str(summary[k][m]["ged"].get("n_seeds", 1)))
            for n in metric_order[k]:
                s = summary[k][m].get(n)
                row += ["nan" if s is None else _csv_float(s.get(f, math.nan)) for f in fields]
        w.writerow(row)
    return buf.getvalue()


def per_image_csv(
    per_image: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]],
    ids: Mapping[str, list[str]],
    per_seed: Mapping[str, Mapping[str, Mapping[int, Mapping[str, np.ndarray]]]] | None = None,
) -> str:
    """``per_image.csv``: data set, model, case and every metric, one row per (data set, model, image); with
    ``per_seed`` (runs of several seeds) a ``seed`` column and one row per (data set, model, seed, image)."""
    names: list[str] = []
    for by_model in per_image.values():
        for vals in by_model.values():
            names += [n for n in vals if n not in names]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["data", "model", *(["seed"] if per_seed else []), "case", *names])
    for k, by_model in per_image.items():
        for m, vals in by_model.items():
            runs = per_seed[k][m].items() if per_seed else [(None, vals)]
            for s, v in runs:
                lead = [k, m] if s is None else [k, m, str(s)]
                for i, case in enumerate(ids[k]):
                    w.writerow([*lead, case, *(_csv_float(v[n][i]) if n in v else "nan" for n in names)])
    return buf.getvalue()


def draw_figures(
    out: Path,
    figure_inputs: Mapping[str, tuple[str, Any, int]],
    per_image: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]],
    models: Sequence[str],
    n_cases: int = 2,
    n_show: int = 8,
    subdir: str = "",
) -> list[Path]:
    """Sample grids for the first ``n_cases`` test images and per-image metric box plots, per data set."""
    from .. import figures as fig

    written: list[Path] = []
    fig_dir = out / "figures"
    for key, (spec, test_ds, limit) in figure_inputs.items():
        for i in range(min(n_cases, limit)):
            item = test_ds[i]
            samples = {
                METHOD_LABELS.get(m, m): np.load(out / key / m / subdir / "samples" / f"{item['id']}.npy")
                for m in models
            }
            path = fig_dir / f"{key}_samples_{i}.png"
            fig.sample_grid(
                item["image"].numpy(),
                item["masks"].numpy(),
                samples,
                path,
                title=f"{data_label(spec)}: {item['id']}",
                n_show=n_show,
            )
            written.append(path)
        metrics = [
            (c, lab) for c, lab in MAIN_COLUMNS + EXTRA_COLUMNS if all(c in per_image[key][m] for m in models)
        ]
        path = fig_dir / f"{key}_metrics.png"
        fig.metric_boxplots(
            {METHOD_LABELS.get(m, m): per_image[key][m] for m in models},
            metrics,
            path,
            title=data_label(spec),
        )
        written.append(path)
    return written
