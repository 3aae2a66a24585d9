"""``cimd-table1``: reproduce Table 1 of the CIMD paper (Rahman et al., CVPR 2023) with one command.

For every data set and every model (Prob. U-Net, PHiSeg, Generalized Prob. U-Net, CIMD) the pipeline

1. trains the model (or reuses ``<out>/<data>/<model>/checkpoint.pt``; an interrupted run resumes),
2. draws ``n`` masks per test image into ``<out>/<data>/<model>/samples/<case>.npy`` (float32 (n, H, W)),
   next to the annotations ``<out>/<data>/gts/<case>.npy`` (uint8 (M, H, W)),
3. evaluates the *written files* with one :func:`ambiseg_metrics.evaluate` call per model and data set,
   plus -- where the true annotation distribution is known (AmbiBlobs) -- the GED against that
   distribution (:mod:`cimd_model.true_ged`),
4. writes ``<out>/table1.md`` and ``<out>/table1.csv`` (rows = methods, column groups = data sets; mean and
   seeded percentile-bootstrap 95% CI over test images), ``<out>/per_image.csv`` and, unless
   ``--no-figures``, ``<out>/figures/*.png`` (:mod:`cimd_model.figures`). Wall times go to
   ``<out>/timings.json`` only, so that a rerun reproduces the tables byte for byte.

Profiles (``--config``)
-----------------------
``paper``
    The models' ``paper`` configs (paper step counts and batch sizes, CIMD sampled with 1000 DDPM
    steps), all test images, n = 16. Needs a GPU (see ``docs/table1.md`` for the expected cost).
``cpu-small``
    The models' ``cpu-small`` configs unchanged on the full AmbiBlobs splits (64 px, 512 train / 64 test
    images), CIMD with 25 DDIM steps: an estimated 1.5-3 h on 2 CPU cores.
``table1``
    ``cpu-small`` architectures with fewer steps (400 for the baselines, 1000 for CIMD), 32 px AmbiBlobs
    (256 train / 32 test images), CIMD sampled with 10 stochastic DDIM steps (eta = 1): the whole table fits
    in 30 min on 2 CPU cores with ``--jobs 2`` (the committed synthetic table, ``docs/table1_results``).
``tiny``
    A smoke test of the pipeline (3 steps of narrow models, 32 px, 8 train / 4 test images, n = 4).

Examples
--------
::

    cimd-table1 --config table1 --jobs 2 --out runs/table1
    cimd-table1 --data lidc-pickle:/data/data_lidc.pickle --config paper --n-samples 16 --out runs/lidc
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "METHOD_LABELS",
    "MODELS",
    "PROFILES",
    "PUBLISHED",
    "Profile",
    "evaluate_model_samples",
    "main",
    "run_table1",
    "summarize_values",
]

#: the four methods of Table 1, in the paper's row order
MODELS: tuple[str, ...] = ("prob_unet", "phiseg", "gen_prob_unet", "cimd")
METHOD_LABELS: dict[str, str] = {
    "prob_unet": "Prob. U-Net",
    "phiseg": "PHiSeg",
    "gen_prob_unet": "Generalized Prob. U-Net",
    "cimd": "CIMD",
}

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
STANDS_IN_FOR = {"ambiblobs-ct": "LIDC-IDRI", "ambiblobs-us": "Bone ultrasound", "ambiblobs-mri": "MS-lesion"}

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
#: metric name of the GED against the known annotation distribution
TRUE_GED = "ged_true"
DEFAULT_DATA = ("ambiblobs-ct", "ambiblobs-us", "ambiblobs-mri")
SAMPLE_MANIFEST = "manifest.json"


# ------------------------------------------------------------------------------------------ profiles
@dataclass(frozen=True)
class Profile:
    """A named run configuration of the pipeline.

    Attributes
    ----------
    name : str
    model_config : str
        The named config of every model (``CONFIGS[model_config]`` of its module).
    description : str
    overrides : mapping
        Model name (or ``"*"`` for every model that has the key) -> config overrides.
    ambiblobs : mapping
        ``size``, ``n_train``, ``n_test`` for AmbiBlobs specs (``None`` = the data set's default).
    n_test : int or None
        At most this many test images of file-based data sets (``None`` = all).
    n_samples : int
        Default samples per test image.
    sample_batch_size : int
        Images per sampling call.
    """

    name: str
    model_config: str
    description: str
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    ambiblobs: Mapping[str, int | None] = field(default_factory=dict)
    n_test: int | None = None
    n_samples: int = 16
    sample_batch_size: int = 4


PROFILES: dict[str, Profile] = {
    "paper": Profile(
        name="paper",
        model_config="paper",
        description="the models' paper configs (paper step counts; CIMD 1000 DDPM steps); needs a GPU",
        ambiblobs={"size": 128, "n_train": None, "n_test": None},
        n_samples=16,
        sample_batch_size=8,
    ),
    "cpu-small": Profile(
        name="cpu-small",
        model_config="cpu-small",
        description="the models' cpu-small configs unchanged, full AmbiBlobs splits (64 px, 512/64 images)",
        ambiblobs={"size": 64, "n_train": None, "n_test": None},
        n_samples=16,
        sample_batch_size=4,
    ),
    "table1": Profile(
        name="table1",
        model_config="cpu-small",
        description="cpu-small architectures, fewer steps, 32 px AmbiBlobs (256 train / 32 test images), "
        "CIMD sampled with 10 stochastic DDIM steps (eta 1): the whole table in < 30 min on 2 CPU cores "
        "with --jobs 2",
        overrides={
            "prob_unet": {"steps": 400},
            "gen_prob_unet": {"steps": 400},
            "phiseg": {"steps": 400},
            # eta = 1: stochastic DDIM (DDPM-like variance) on 10 respaced steps, the closest cheap stand-in
            # for the paper's 1000-step DDPM; deterministic DDIM (eta = 0) of a briefly trained model leaves
            # a third of the samples as noise (docs/table1.md)
            "cimd": {"steps": 1000, "sampling_steps": 10, "eta": 1.0},
        },
        ambiblobs={"size": 32, "n_train": 256, "n_test": 32},
        n_test=32,
        n_samples=16,
        sample_batch_size=8,
    ),
    "tiny": Profile(
        name="tiny",
        model_config="cpu-small",
        description="pipeline smoke test: 3 steps of narrow models, 32 px, 8 train / 4 test images, n = 4",
        overrides={
            "*": {"steps": 3, "batch_size": 4},
            "prob_unet": {
                "base_channels": 4,
                "encoder_base_channels": 4,
                "mults": [1, 2],
                "encoder_mults": [1, 2],
            },
            "gen_prob_unet": {
                "base_channels": 4,
                "encoder_base_channels": 4,
                "mults": [1, 2],
                "encoder_mults": [1, 2],
            },
            "phiseg": {"base_channels": 4, "mults": [1, 2, 2], "latent_levels": 2},
            "cimd": {
                "base_channels": 4,
                "channel_mult": [1, 2],
                "encoder_channels": 4,
                "encoder_mults": [1, 2],
                "sampling_steps": 2,
            },
        },
        ambiblobs={"size": 32, "n_train": 8, "n_test": 4},
        n_test=4,
        n_samples=4,
        sample_batch_size=4,
    ),
}


def model_config(profile: Profile, name: str, image_size: int | None = None) -> dict[str, Any]:
    """The config of model ``name`` under ``profile`` (``image_size`` fills CIMD's ``image_size`` key)."""
    from .cli import model_configs

    configs = model_configs(name)
    if profile.model_config not in configs:
        raise ValueError(f"model {name!r} has no config {profile.model_config!r}; has {sorted(configs)}")
    config = json.loads(json.dumps(configs[profile.model_config]))
    common = {k: v for k, v in profile.overrides.get("*", {}).items() if k in config}
    own = dict(profile.overrides.get(name, {}))
    unknown = sorted(set(own) - set(config))
    if unknown:
        raise ValueError(f"profile {profile.name!r}: unknown config key(s) {unknown} for model {name!r}")
    config.update(common)
    config.update(own)
    if image_size is not None and "image_size" in config:
        config["image_size"] = int(image_size)
    return config


# ------------------------------------------------------------------------------------------ data
def parse_data_specs(items: Sequence[str] | None) -> list[str]:
    """``--data`` values (repeatable, comma lists allowed) -> unique specs in order.

    A comma splits specs only where the next piece starts a known spec, so paths holding commas survive.
    """
    from .data import SPECS

    def starts_spec(piece: str) -> bool:
        return any(piece.startswith(s) if s.endswith(":") else piece == s for s in SPECS)

    specs: list[str] = []
    for item in items or []:
        pieces = item.split(",")
        current: list[str] = []
        for piece in pieces:
            piece = piece.strip()
            if current and starts_spec(piece):
                specs.append(",".join(current))
                current = []
            if piece or current:
                current.append(piece)
        if current:
            specs.append(",".join(current))
    out = list(dict.fromkeys(s for s in specs if s))
    if not out:
        raise ValueError("--data: no data set given")
    return out


def data_key(spec: str) -> str:
    """Folder / column name of a data spec: ``ambiblobs-ct`` or ``<kind>-<file stem>`` for file specs."""
    from .data.base import safe_id

    kind, sep, path = spec.partition(":")
    if not sep:
        return safe_id(spec)
    return safe_id(f"{kind}-{Path(path.rstrip('/')).stem or 'data'}")


def data_label(spec: str) -> str:
    """Display name of a data set (AmbiBlobs flavours name the paper data set they stand in for)."""
    if spec in STANDS_IN_FOR:
        flavour = spec.split("-", 1)[1].upper()
        return f"AmbiBlobs-{flavour} (synthetic, {STANDS_IN_FOR[spec]}-like)"
    kind = spec.partition(":")[0]
    return {
        "lidc-pickle": "LIDC-IDRI",
        "lidc-png": "LIDC-IDRI",
        "cimd-lidc": "LIDC-IDRI",
        "msmri": "MS-lesion",
        "lidc-raters": "LIDC-IDRI raters (real masks, no images)",
        "lidc-raters-sim": "LIDC-IDRI raters (real masks, semi-synthetic images)",
    }.get(kind, spec)


def loader_kwargs(spec: str, split: str, profile: Profile, data_kw: Mapping[str, Any]) -> dict[str, Any]:
    """Keywords for :func:`cimd_model.data.load_dataset`: ``data_kw`` plus, for AmbiBlobs, the profile's
    ``size`` and ``n_train`` / ``n_test``."""
    kw = dict(data_kw)
    if spec.startswith("ambiblobs-") and ":" not in spec:
        amb = profile.ambiblobs
        if amb.get("size") is not None:
            kw.setdefault("size", int(amb["size"]))
        n = amb.get("n_train" if split == "train" else "n_test")
        if n is not None:
            kw.setdefault("n", int(n))
    return kw


def load_split(spec: str, split: str, profile: Profile, seed: int, data_kw: Mapping[str, Any]):
    """Load one split of ``spec`` with :func:`loader_kwargs`."""
    from .data import load_dataset

    return load_dataset(spec, split, seed=seed, **loader_kwargs(spec, split, profile, data_kw))


def known_modes(dataset, index: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(modes (J, H, W) bool, weights (J,)) of image ``index`` when the data set knows its distribution."""
    modes = getattr(dataset, "modes", None)
    if not callable(modes):
        return None
    pairs = modes(index)
    return np.stack([np.asarray(m, dtype=bool) for m, _ in pairs]), np.array([p for _, p in pairs])


# ------------------------------------------------------------------------------------------ train / sample
_IGNORED_CONFIG_KEYS = ("progress",)
#: config keys that only affect sampling: a checkpoint trained with other values is reused (and resampled)
SAMPLING_KEYS = ("sampler", "sampling_steps", "eta")


def _comparable(config: Mapping[str, Any], ignore: Sequence[str] = _IGNORED_CONFIG_KEYS) -> str:
    return json.dumps({k: v for k, v in config.items() if k not in ignore}, sort_keys=True)


def _training_config(config: Mapping[str, Any]) -> str:
    return _comparable(config, (*_IGNORED_CONFIG_KEYS, *SAMPLING_KEYS))


def _clear_model_dir(model_dir: Path) -> None:
    for pattern in ("checkpoint*.pt", "train_log.jsonl", "config.json"):
        for p in model_dir.glob(pattern):
            p.unlink()
    shutil.rmtree(model_dir / "samples", ignore_errors=True)


def train_or_load(
    name: str,
    config: dict[str, Any],
    train_ds,
    model_dir: Path,
    *,
    seed: int,
    run: dict[str, Any],
    retrain: bool,
    device: str,
    progress: bool,
):
    """Train ``name`` into ``model_dir`` -- or reuse / resume its checkpoint. Returns (model, status).

    A checkpoint trained with another config, data set or seed is an error (pass ``retrain=True``); the
    sampling keys (:data:`SAMPLING_KEYS`) may differ: the returned model samples with ``config``'s.
    """
    import torch

    from .registry import build_model
    from .train import LATEST, load_checkpoint, train

    latest = model_dir / LATEST
    steps = int(config["steps"])
    if retrain:
        _clear_model_dir(model_dir)
    status = "trained"
    if latest.is_file():
        ckpt = load_checkpoint(latest)
        theirs = (
            ckpt["model_name"],
            _training_config(ckpt["config"]),
            ckpt["run"].get("data"),
            json.dumps(ckpt["run"].get("data_kwargs"), sort_keys=True),
            int(ckpt["seed"]),
        )
        ours = (
            name,
            _training_config(config),
            run["data"],
            json.dumps(run["data_kwargs"], sort_keys=True),
            int(seed),
        )
        if theirs != ours:
            raise ValueError(
                f"{latest} was trained with another model/config/data/seed than this run asks for; "
                "pass --retrain to train again or choose another --out"
            )
        status = "reused" if int(ckpt["step"]) >= steps else f"resumed at step {int(ckpt['step'])}"
    torch.manual_seed(int(seed))  # the initial weights depend only on the seed, not on earlier work
    model = build_model(name, config, train_ds.in_channels)
    if "progress" in model.config:
        model.config["progress"] = bool(progress)
    train(
        model,
        train_ds,
        model_dir,
        steps=steps,
        batch_size=int(config["batch_size"]),
        seed=seed,
        resume=True,
        run=run,
        device=device,
        progress=progress and status != "reused",
    )
    if "progress" in model.config:
        model.config["progress"] = bool(progress)
    return model, status


def _manifest(
    model, step: int, n: int, seed: int, batch_size: int, ids: Sequence[str], data: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "model": model.name,
        "data": dict(data),
        "config": json.loads(_comparable(model.config)),
        "checkpoint_step": int(step),
        "n_samples": int(n),
        "seed": int(seed),
        "sample_batch_size": int(batch_size),
        "ids": list(ids),
    }


def sample_or_reuse(
    model,
    test_ds,
    samples_dir: Path,
    *,
    step: int,
    n: int,
    seed: int,
    batch_size: int,
    limit: int,
    progress: bool,
    data: Mapping[str, Any],
) -> tuple[list[str], str]:
    """Write ``samples_dir/<case>.npy`` unless a manifest shows identical samples are there already."""
    from .sample import write_samples
    from .train import write_json

    ids = test_ds.ids[:limit]
    wanted = _manifest(model, step, n, seed, batch_size, ids, data)
    path = samples_dir / SAMPLE_MANIFEST
    if path.is_file():
        try:
            have = json.loads(path.read_text())
        except json.JSONDecodeError:
            have = None
        if have == wanted and all((samples_dir / f"{i}.npy").is_file() for i in ids):
            return ids, "reused"
        path.unlink()
    written = write_samples(
        model, test_ds, n, samples_dir, None, batch_size=batch_size, seed=seed, limit=limit, progress=progress
    )
    if written != ids:
        raise RuntimeError(f"sampler wrote cases {written[:3]}..., expected {ids[:3]}...")
    write_json(path, wanted)
    return ids, "sampled"


def write_gts(test_ds, gts_dir: Path, limit: int) -> list[str]:
    """Write ``gts_dir/<case>.npy`` = uint8 (M, H, W) annotations of the first ``limit`` test images."""
    from .sample import save_npy

    gts_dir.mkdir(parents=True, exist_ok=True)
    ids = []
    for i in range(limit):
        item = test_ds[i]
        save_npy(gts_dir / f"{item['id']}.npy", item["masks"].numpy().astype(np.uint8))
        ids.append(item["id"])
    return ids


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

    from .true_ged import true_ged_batch

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


# ------------------------------------------------------------------------------------------ tables
def _fmt(s: Mapping[str, float] | None) -> str:
    if s is None or math.isnan(s["mean"]):
        return "–"
    half = (s["ci_high"] - s["ci_low"]) / 2.0
    return f"{s['mean']:.3f} ± {half:.3f}"


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
    out.append(
        f"Profile `{meta['profile']}`, n = {meta['n_samples']} samples per test image, seed {meta['seed']}. "
        "Cells: mean ± half-width of the 95% percentile-bootstrap CI of the mean over test images "
        f"({meta['n_boot']} resamples, seed {meta['seed']}); masks binarised at 0.5; "
        "GED with d = 1 − IoU (V-statistic), CI/D_max with Dice, empty–empty pairs count as a match."
    )
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
    (mean), ``…:ci_low``, ``…:ci_high``, plus ``<data>:n_images``. Every metric evaluated is included."""
    keys = [data_key(s) for s in specs]
    metric_order: dict[str, list[str]] = {}
    for k in keys:
        names: list[str] = []
        for m in models:
            names += [n for n in summary[k][m] if n not in names]
        metric_order[k] = names
    header = ["method", "model"]
    for k in keys:
        header.append(f"{k}:n_images")
        for n in metric_order[k]:
            header += [f"{k}:{n}", f"{k}:{n}:ci_low", f"{k}:{n}:ci_high"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for m in models:
        row = [METHOD_LABELS.get(m, m), m]
        for k in keys:
            row.append(str(summary[k][m]["ged"]["n"]))
            for n in metric_order[k]:
                s = summary[k][m].get(n)
                row += (
                    ["nan"] * 3
                    if s is None
                    else [_csv_float(s["mean"]), _csv_float(s["ci_low"]), _csv_float(s["ci_high"])]
                )
        w.writerow(row)
    return buf.getvalue()


def per_image_csv(
    per_image: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]], ids: Mapping[str, list[str]]
) -> str:
    """``per_image.csv``: data set, model, case and every metric, one row per (data set, model, image)."""
    names: list[str] = []
    for by_model in per_image.values():
        for vals in by_model.values():
            names += [n for n in vals if n not in names]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["data", "model", "case", *names])
    for k, by_model in per_image.items():
        for m, vals in by_model.items():
            for i, case in enumerate(ids[k]):
                w.writerow([k, m, case, *(_csv_float(vals[n][i]) if n in vals else "nan" for n in names)])
    return buf.getvalue()


def _write_text(path: Path, text: str) -> None:
    from ambiseg_metrics.files.atomic import atomic_write

    atomic_write(path, text, mkdir=True)


# ------------------------------------------------------------------------------------------ pipeline
def _log(msg: str, quiet: bool) -> None:
    if not quiet:
        print(f"cimd-table1: {msg}", file=sys.stderr, flush=True)


_DATA_CACHE: dict[str, Any] = {}


def _cached_split(spec: str, split: str, profile: Profile, seed: int, data_kw: Mapping[str, Any]):
    key = json.dumps(
        [spec, split, profile.name, dict(profile.ambiblobs), seed, dict(data_kw)], sort_keys=True
    )
    if key not in _DATA_CACHE:
        if len(_DATA_CACHE) >= 4:
            _DATA_CACHE.clear()
        _DATA_CACHE[key] = load_split(spec, split, profile, seed, data_kw)
    return _DATA_CACHE[key]


@dataclass(frozen=True)
class _Task:
    """Train (or reuse) one model on one data set and write its samples (picklable for worker processes)."""

    spec: str
    key: str
    name: str
    profile: Profile
    out: str
    seed: int
    n: int
    data_kwargs: Mapping[str, Any]
    retrain: bool
    device: str
    progress: bool
    quiet: bool
    threads: int | None = None


def _run_task(task: _Task) -> dict[str, Any]:
    """Worker body of one (data set, model) pair; returns its timings and statuses."""
    import torch

    if task.threads is not None:
        torch.set_num_threads(int(task.threads))
    prof = task.profile
    train_ds = _cached_split(task.spec, "train", prof, task.seed, task.data_kwargs)
    test_ds = _cached_split(task.spec, "test", prof, task.seed, task.data_kwargs)
    limit = _test_limit(task.spec, test_ds, prof)
    config = model_config(prof, task.name, int(test_ds[0]["image"].shape[-1]))
    model_dir = Path(task.out) / task.key / task.name
    run = {
        "model": task.name,
        "config_name": prof.model_config,
        "table1_profile": prof.name,
        "data": task.spec,
        "data_kwargs": loader_kwargs(task.spec, "train", prof, task.data_kwargs),
        "seed": int(task.seed),
        "n_train": len(train_ds),
        "n_annotators": train_ds.n_annotators,
    }
    t0 = time.time()
    model, status = train_or_load(
        task.name,
        config,
        train_ds,
        model_dir,
        seed=task.seed,
        run=run,
        retrain=task.retrain,
        device=task.device,
        progress=task.progress,
    )
    t_train = time.time() - t0
    t0 = time.time()
    _, s_status = sample_or_reuse(
        model,
        test_ds,
        model_dir / "samples",
        step=int(config["steps"]),
        n=task.n,
        seed=task.seed,
        batch_size=prof.sample_batch_size,
        limit=limit,
        progress=task.progress,
        data={"spec": task.spec, **loader_kwargs(task.spec, "test", prof, task.data_kwargs)},
    )
    t_sample = time.time() - t0
    _log(f"{task.key}/{task.name}: {status} ({t_train:.1f} s), {s_status} ({t_sample:.1f} s)", task.quiet)
    return {"train_s": round(t_train, 2), "train": status, "sample_s": round(t_sample, 2), "sample": s_status}


def _test_limit(spec: str, test_ds, prof: Profile) -> int:
    limit = len(test_ds) if prof.n_test is None else min(len(test_ds), int(prof.n_test))
    if limit < 1:
        raise ValueError(f"{spec}: the test split is empty")
    return limit


#: relative cost used to start the longest (data set, model) tasks first when running in parallel
_COST = {"cimd": 4, "phiseg": 1, "prob_unet": 1, "gen_prob_unet": 1}


def _run_tasks(tasks: list[_Task], jobs: int) -> list[dict[str, Any]]:
    """Run the tasks in order (``jobs == 1``) or in ``jobs`` spawned processes, longest first."""
    if jobs <= 1 or len(tasks) <= 1:
        return [_run_task(t) for t in tasks]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    order = sorted(range(len(tasks)), key=lambda i: -_COST.get(tasks[i].name, 1))
    results: list[dict[str, Any] | None] = [None] * len(tasks)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=int(jobs), mp_context=ctx) as pool:
        futures = {i: pool.submit(_run_task, tasks[i]) for i in order}
        for i in order:
            results[i] = futures[i].result()
    return [r for r in results if r is not None]


def run_table1(
    data: Sequence[str],
    out: str | os.PathLike,
    *,
    profile: str | Profile = "table1",
    n_samples: int | None = None,
    models: Sequence[str] = MODELS,
    seed: int = 0,
    retrain: bool = False,
    device: str | None = None,
    progress: bool = True,
    figures: bool = True,
    data_kwargs: Mapping[str, Any] | None = None,
    n_boot: int = 10_000,
    jobs: int = 1,
    command: str | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Train, sample, evaluate and tabulate (see the module docstring).

    Parameters
    ----------
    data : data specs (see :func:`cimd_model.data.load_dataset`)
    out : output folder
    profile : name from :data:`PROFILES` or a :class:`Profile`
    n_samples : samples per test image (default: the profile's)
    models : subset of :data:`MODELS`
    seed : seed of the data split, training, sampling and the bootstrap
    retrain : ignore existing checkpoints and samples
    device : torch device (default cuda if available, else cpu)
    progress : tqdm bars
    figures : draw ``figures/*.png``
    data_kwargs : extra keywords for the data loaders
    n_boot : bootstrap resamples
    jobs : train the (data set, model) pairs in this many worker processes (one torch thread each); the
        results do not depend on it (every model is seeded on its own)
    command : the command line recorded in ``table1.md``
    quiet : no log lines on stderr

    Returns
    -------
    dict with ``summary`` (data key -> model -> metric -> {n, mean, ci_low, ci_high}), ``per_image``,
    ``ids``, ``timings`` and the written ``paths``.
    """
    import torch

    if isinstance(profile, str) and profile not in PROFILES:
        raise ValueError(f"unknown config {profile!r}; choose one of {sorted(PROFILES)}")
    prof = PROFILES[profile] if isinstance(profile, str) else profile
    n = int(n_samples if n_samples is not None else prof.n_samples)
    if n < 2:
        raise ValueError(f"n_samples must be >= 2 (CI and GED need sample pairs), got {n}")
    if int(jobs) < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    models = list(dict.fromkeys(models))
    bad = [m for m in models if m not in MODELS]
    if bad or not models:
        raise ValueError(f"unknown model(s) {bad}; choose from {list(MODELS)}")
    specs = list(dict.fromkeys(data))
    keys = [data_key(s) for s in specs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"data sets {specs} map to clashing folder names {keys}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data_kwargs = dict(data_kwargs or {})

    t_start = time.time()
    timings: dict[str, Any] = {
        "device": device,
        "jobs": int(jobs),
        "torch_threads": 1 if jobs > 1 else torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_avg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "stages": {},
    }
    tests: dict[str, tuple[Any, int]] = {}
    for spec, key in zip(specs, keys, strict=True):
        t0 = time.time()
        train_ds = _cached_split(spec, "train", prof, seed, data_kwargs)
        test_ds = _cached_split(spec, "test", prof, seed, data_kwargs)
        tests[key] = (test_ds, _test_limit(spec, test_ds, prof))
        timings["stages"][f"{key}/data"] = round(time.time() - t0, 2)
        _log(f"{key}: {len(train_ds)} training and {tests[key][1]} test images ({data_label(spec)})", quiet)

    tasks = [
        _Task(
            spec,
            key,
            name,
            prof,
            str(out),
            int(seed),
            n,
            data_kwargs,
            bool(retrain),
            device,
            bool(progress) and jobs == 1,
            bool(quiet),
            1 if jobs > 1 else None,
        )
        for spec, key in zip(specs, keys, strict=True)
        for name in models
    ]
    t0 = time.time()
    for task, result in zip(tasks, _run_tasks(tasks, int(jobs)), strict=True):
        timings["stages"][f"{task.key}/{task.name}"] = result
    timings["train_and_sample_s"] = round(time.time() - t0, 2)

    summary: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    per_image: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    all_ids: dict[str, list[str]] = {}
    for key in keys:
        test_ds, limit = tests[key]
        data_dir = out / key
        # the annotations are written only now, after every checkpoint was accepted
        ids = write_gts(test_ds, data_dir / "gts", limit)
        all_ids[key] = ids
        modes = [known_modes(test_ds, i) for i in range(limit)]
        modes = None if any(m is None for m in modes) else modes
        summary[key], per_image[key] = {}, {}
        for name in models:
            t0 = time.time()
            values = evaluate_model_samples(data_dir / name / "samples", data_dir / "gts", ids, modes)
            per_image[key][name] = values
            summary[key][name] = {m: summarize_values(v, seed=seed, n_boot=n_boot) for m, v in values.items()}
            timings["stages"][f"{key}/{name}"]["eval_s"] = round(time.time() - t0, 2)
            cells = ", ".join(
                f"{c} {summary[key][name][c]['mean']:.3f}"
                for c in ("ged", "ci", TRUE_GED)
                if c in summary[key][name]
            )
            _log(f"{key}/{name}: {cells}", quiet)

    meta = {
        "profile": prof.name,
        "n_samples": n,
        "seed": int(seed),
        "n_boot": int(n_boot),
        "command": command
        or f"cimd-table1 --data {','.join(specs)} --config {prof.name} --n-samples {n} --out {out}",
    }
    paths = {"md": out / "table1.md", "csv": out / "table1.csv", "per_image": out / "per_image.csv"}
    _write_text(paths["md"], table_markdown(summary, specs, models, meta))
    _write_text(paths["csv"], table_csv(summary, specs, models))
    _write_text(paths["per_image"], per_image_csv(per_image, all_ids))
    if figures:
        t0 = time.time()
        figure_inputs = {key: (spec, *tests[key]) for spec, key in zip(specs, keys, strict=True)}
        paths["figures"] = draw_figures(out, figure_inputs, per_image, models, n_show=min(n, 8))
        timings["stages"]["figures_s"] = round(time.time() - t0, 2)
    timings["total_s"] = round(time.time() - t_start, 2)
    from .train import write_json

    write_json(out / "timings.json", timings)
    _log(f"wrote {paths['md']} and {paths['csv']} in {timings['total_s']:.1f} s", quiet)
    return {"summary": summary, "per_image": per_image, "ids": all_ids, "timings": timings, "paths": paths}


def draw_figures(
    out: Path,
    figure_inputs: Mapping[str, tuple[str, Any, int]],
    per_image: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]],
    models: Sequence[str],
    n_cases: int = 2,
    n_show: int = 8,
) -> list[Path]:
    """Sample grids for the first ``n_cases`` test images and per-image metric box plots, per data set."""
    from . import figures as fig

    written: list[Path] = []
    fig_dir = out / "figures"
    for key, (spec, test_ds, limit) in figure_inputs.items():
        for i in range(min(n_cases, limit)):
            item = test_ds[i]
            samples = {
                METHOD_LABELS.get(m, m): np.load(out / key / m / "samples" / f"{item['id']}.npy")
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


# ------------------------------------------------------------------------------------------ CLI
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cimd-table1",
        description="Reproduce Table 1 of CIMD: train (or reuse) Prob. U-Net, PHiSeg, Generalized Prob. "
        "U-Net "
        "and CIMD, sample n masks per test image, evaluate with ambiseg_metrics, write table1.md/csv and "
        "figures. Profiles: " + "; ".join(f"{p.name}: {p.description}" for p in PROFILES.values()),
    )
    p.add_argument(
        "--data",
        action="append",
        default=None,
        help="data spec(s), repeatable or comma-separated (default: " + ",".join(DEFAULT_DATA) + ")",
    )
    p.add_argument("--config", default="cpu-small", choices=sorted(PROFILES), help="run profile")
    p.add_argument("--n-samples", type=int, default=None, help="samples per test image (default: profile's)")
    p.add_argument("--out", default="runs/table1", help="output folder")
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of the four models")
    p.add_argument("--seed", type=int, default=0, help="seed of data, training, sampling and bootstrap")
    p.add_argument("--retrain", action="store_true", help="ignore existing checkpoints and samples")
    p.add_argument("--data-arg", action="append", metavar="KEY=VALUE", help="keyword for the data loaders")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="train/sample the (data set, model) pairs in this many processes, 1 torch thread each "
        "(same results; e.g. 2 on a 2-core CPU)",
    )
    p.add_argument("--n-boot", type=int, default=10_000, help="bootstrap resamples for the 95%% CIs")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--quiet", action="store_true", help="no log lines")
    return p


def main(argv: list[str] | None = None) -> int:
    """``cimd-table1``: returns 0 on success, 2 on a usage / data error."""
    args = parser().parse_args(argv)
    import torch

    from .cli import parse_assignments

    if args.threads is not None:
        torch.set_num_threads(int(args.threads))
    shown = " ".join(argv if argv is not None else sys.argv[1:])
    try:
        specs = parse_data_specs(args.data or [",".join(DEFAULT_DATA)])
        result = run_table1(
            specs,
            args.out,
            profile=args.config,
            n_samples=args.n_samples,
            models=[m.strip() for m in args.models.split(",") if m.strip()],
            seed=args.seed,
            retrain=args.retrain,
            device=args.device,
            progress=not args.no_progress,
            figures=not args.no_figures,
            data_kwargs=parse_assignments(args.data_arg, "--data-arg"),
            n_boot=args.n_boot,
            jobs=args.jobs,
            command=f"cimd-table1 {shown}".strip(),
            quiet=args.quiet,
        )
    except (ValueError, FileNotFoundError) as exc:
        print(f"cimd-table1: error: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(result["paths"]["md"].read_text())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
