"""Ablation of the CIMD variants on AmbiBlobs: equal budgets, several seeds, intervals over seeds and images.

For every variant and seed: train (the generic loop of :mod:`cimd_model.train`, ``steps`` x ``batch_size``
identical for all variants; an existing checkpoint at that step is reused), sample ``n`` masks for the
first ``test_images`` test images (same sampler and seed for every model), and score each image with
:func:`ambiseg_metrics.evaluate` (GED, CI as published, CI harmonic, HM-IoU, D_max) and the GED against
the true annotation distribution (:func:`cimd_model.true_ged.true_ged_batch`); then run
:func:`cimd_model.diffusion.diagnostics.latent_diagnostics` on ``diag_pairs`` training pairs.

Intervals: a two-level bootstrap (seeds with replacement, then images with replacement within each
drawn seed), 95% percentile interval of the mean; the difference of each variant to ``cond-ddpm`` uses
the same draws of images for both (paired by image) and independent draws of seeds.

Example (the run in ``docs/cimd_ablation.md``)::

    OMP_NUM_THREADS=1 python benchmarks/cimd_ablation.py --variants cond-ddpm --seeds 0,1,2 \\
        --out runs/ablation --json runs/ablation/cond-ddpm.json
    python benchmarks/cimd_ablation.py --summarise runs/ablation/*.json
    python benchmarks/cimd_ablation.py --init-kl --seeds 0,1,2,3,4    # KL at init, cpu-small, 64x64
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np
import torch

METRICS = ("ged", "true_ged", "ci", "ci_harmonic", "hm_iou", "max_dice_matching", "diversity")
BASELINE = "cond-ddpm"


def run_one(name: str, seed: int, args: argparse.Namespace, overrides: dict[str, Any]) -> dict[str, Any]:
    """Train (or reuse) one model and score it; returns per-image metrics and diagnostics."""
    from pathlib import Path

    from ambiseg_metrics import evaluate, sample_diversity
    from cimd_model.cli import resolve_config
    from cimd_model.data import load_dataset
    from cimd_model.diffusion.diagnostics import latent_diagnostics
    from cimd_model.registry import build_model
    from cimd_model.sample import sample_dataset
    from cimd_model.train import load_checkpoint, load_model, seed_everything, train
    from cimd_model.true_ged import true_ged_batch

    out = Path(args.out) / name / f"seed{seed}"
    kw = {"size": args.size, **args.data_kwargs}
    train_set = load_dataset(args.data, "train", seed=0, **kw)
    cfg = resolve_config(
        name, args.config, {"image_size": args.size, **overrides}, None, None
    )
    t0 = time.time()
    ckpt = out / "checkpoint.pt"
    run = {"model": name, "data": args.data, "data_kwargs": kw, "config_name": args.config}
    if ckpt.is_file():  # reused or resumed below: only a checkpoint of this very run
        saved = load_checkpoint(ckpt, "cpu").get("run", {})
        if any(saved.get(k) != v for k, v in run.items()):
            raise ValueError(
                f"{ckpt} was trained for {({k: saved.get(k) for k in run})}, not {run}; choose another --out"
            )
    if ckpt.is_file() and load_model(ckpt)[1]["step"] >= args.steps:
        model = load_model(ckpt)[0]
        train_s = None
    else:
        seed_everything(seed)
        model = build_model(name, cfg, train_set.in_channels)
        train(
            model,
            train_set,
            out,
            args.steps,
            args.batch_size,
            seed=seed,
            resume=True,
            run=run,
            progress=False,
        )
        train_s = time.time() - t0
    model.set_sampling(args.sampler, args.sampling_steps, eta=args.eta)
    model.set_progress(False)
    test = load_dataset(args.data, "test", seed=0, **kw)
    t1 = time.time()
    preds, gts, modes = [], [], []
    for i, (_, probs, ann) in enumerate(
        sample_dataset(model, test, args.n, batch_size=4, seed=0, limit=args.test_images)
    ):
        preds.append(probs)
        gts.append(ann)
        modes.append(test.modes(i) if callable(getattr(test, "modes", None)) else None)
    sample_s = time.time() - t1
    pred, gt = np.stack(preds), np.stack(gts)
    scores = evaluate(
        pred, gt, batch=True, metrics=["ged", "ci", "ci_harmonic", "hm_iou", "max_dice_matching"]
    )
    per_image = {
        k: [float(v) for v in scores[k]] for k in ("ged", "ci", "ci_harmonic", "hm_iou", "max_dice_matching")
    }
    if all(ms is not None for ms in modes):  # only synthetic data know their annotation distribution
        tg = true_ged_batch(
            list(pred), [np.stack([m for m, _ in ms]) for ms in modes], [[p for _, p in ms] for ms in modes]
        )
        per_image["true_ged"] = [float(v) for v in tg]
    per_image["diversity"] = [float(v) for v in sample_diversity(pred, batch=True, estimator="unbiased")]
    images, masks = _pairs(train_set, args.diag_pairs)
    diag = latent_diagnostics(model, images, masks, generator=torch.Generator().manual_seed(seed)).to_dict()
    print(
        f"{name} seed {seed}: train {train_s} s, sample {sample_s:.1f} s, "
        + ", ".join(f"{k} {np.mean(v):.4f}" for k, v in per_image.items()),
        file=sys.stderr,
        flush=True,
    )
    return {
        "model": name,
        "seed": seed,
        "train_s": train_s,
        "sample_s": sample_s,
        "per_image": per_image,
        "diagnostics": diag,
    }


def _pairs(dataset, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``k`` images, image ``i`` with its annotation ``i mod M``: (k, C, H, W), (k, 1, H, W)."""
    items = [dataset[i] for i in range(k)]
    images = torch.stack([it["image"] for it in items])
    masks = torch.stack([it["masks"][i % it["masks"].shape[0]] for i, it in enumerate(items)])
    return images, masks[:, None].float()


def _boot(
    runs: list[dict], metric: str, rng: np.random.Generator, n_boot: int, base: list[dict] | None = None
):
    """Two-level bootstrap of the mean (or of the mean difference to ``base``, paired by image)."""
    vals = np.array([r["per_image"][metric] for r in runs])  # (seeds, images)
    bvals = None if base is None else np.array([r["per_image"][metric] for r in base])
    point = vals.mean() - (0.0 if bvals is None else bvals.mean())
    s, n = vals.shape
    stats = np.empty(n_boot)
    for b in range(n_boot):
        img = rng.integers(0, n, (s, n))
        si = rng.integers(0, s, s)
        est = vals[si[:, None], img].mean()
        if bvals is not None:
            sb = rng.integers(0, bvals.shape[0], bvals.shape[0])
            bimg = img if bvals.shape[0] == s else rng.integers(0, n, (bvals.shape[0], n))
            est -= bvals[sb[:, None], bimg].mean()
        stats[b] = est
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return float(point), float(lo), float(hi)


def summarise(results: list[dict], n_boot: int = 2000) -> str:
    """Markdown tables: metrics per variant, differences to cond-ddpm, diagnostics."""
    rng = np.random.default_rng(0)
    by = {}
    for r in results:
        by.setdefault(r["model"], []).append(r)
    names = [n for n in ("cimd-official", "cimd-paper", "cimd-latent", "cond-ddpm") if n in by]
    metrics = [m for m in METRICS if all(m in r["per_image"] for r in results)]  # true_ged: synthetic only
    lines = ["| model | seeds | " + " | ".join(metrics) + " |", "|---|---:|" + "---|" * len(metrics)]
    for name in names:
        cells = []
        for m in metrics:
            p, lo, hi = _boot(by[name], m, rng, n_boot)
            cells.append(f"{p:.3f} [{lo:.3f}, {hi:.3f}]")
        lines.append(f"| {name} | {len(by[name])} | " + " | ".join(cells) + " |")
    if BASELINE in by:
        lines += ["", f"Difference to {BASELINE} (mean [95% interval]):", ""]
        lines += ["| model | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
        for name in names:
            if name == BASELINE:
                continue
            cells = []
            for m in metrics:
                p, lo, hi = _boot(by[name], m, rng, n_boot, by[BASELINE])
                cells.append(f"{p:+.3f} [{lo:+.3f}, {hi:+.3f}]")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Diagnostics (per seed):", ""]
    lines += [
        "| model | seed | active units | KL (nats) | KL grad share | shuffled-z increase by t bin | train s |"
    ]
    lines += ["|---|---:|---:|---:|---:|---|---:|"]
    for name in names:
        for r in by[name]:
            d = r["diagnostics"]
            inc = d["shuffle_increase"]
            inc_s = "n/a (z not an input)" if inc is None else ", ".join(f"{v:+.4f}" for v in inc)
            kl = "n/a" if d["kl_nats"] is None else f"{d['kl_nats']:.3g}"
            au = "n/a" if d["active_units"] is None else f"{d['active_units']}/{d['latent_dim']}"
            ts = "reused" if r["train_s"] is None else f"{r['train_s']:.0f}"
            lines.append(
                f"| {name} | {r['seed']} | {au} | {kl} | {d['kl_grad_share']:.2e} | {inc_s} | {ts} |"
            )
    return "\n".join(lines)


def init_kl(seeds: list[int], pairs: int = 16, config: str = "cpu-small", data: str = "ambiblobs-ct") -> str:
    """KL (nats) and KL-gradient share at initialisation of ``cimd-official`` and ``cimd-paper``."""
    from cimd_model.cli import resolve_config
    from cimd_model.data import load_dataset
    from cimd_model.diffusion.diagnostics import latent_diagnostics
    from cimd_model.registry import build_model

    ds = load_dataset(data, "train", seed=0)
    images, masks = _pairs(ds, pairs)
    lines = ["| model | seed | KL at init (nats) | KL gradient share on the denoiser |"]
    lines.append("|---|---:|---:|---:|")
    for name in ("cimd-official", "cimd-paper"):
        for seed in seeds:
            torch.manual_seed(seed)
            model = build_model(name, resolve_config(name, config, {}, None, None), ds.in_channels)
            gen = torch.Generator().manual_seed(seed)
            d = latent_diagnostics(model, images, masks, z_effect_steps=0, generator=gen)
            lines.append(f"| {name} | {seed} | {d.kl_nats:.4g} | {d.kl_grad_share:.3g} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--summarise", nargs="+", default=None, help="only summarise these JSON result files")
    p.add_argument("--init-kl", action="store_true", help="only the KL at init")
    p.add_argument("--variants", default="cimd-official,cimd-paper,cimd-latent,cond-ddpm")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--data", default="ambiblobs-ct")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--data-arg", dest="data_args", action="append", metavar="KEY=VALUE",
                   help="data set option, e.g. spacing=2.0 for lidc-raters-sim (repeatable)")
    p.add_argument("--config", default="cpu-small")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE", help="config override")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--test-images", type=int, default=16)
    p.add_argument("--n", type=int, default=8, help="samples per test image")
    p.add_argument("--sampler", default="dpm++")
    p.add_argument("--sampling-steps", type=int, default=25)
    p.add_argument("--eta", type=float, default=0.0)
    p.add_argument("--diag-pairs", type=int, default=32)
    p.add_argument("--out", default="runs/ablation")
    p.add_argument("--json", default=None, help="write the raw results here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.init_kl:
        print(init_kl([int(s) for s in args.seeds.split(",")], config=args.config, data=args.data))
        return 0
    if args.summarise:
        results = []
        for path in args.summarise:
            with open(path) as fh:
                results += json.load(fh)["results"]
        print(summarise(results))
        return 0
    from cimd_model.cli import parse_assignments
    from cimd_model.fileio import write_text

    overrides = parse_assignments(args.overrides, "--set")
    args.data_kwargs = parse_assignments(args.data_args, "--data-arg")
    results = []
    for name in args.variants.split(","):
        for seed in [int(s) for s in args.seeds.split(",")]:
            results.append(run_one(name, seed, args, overrides))
            if args.json:
                payload = {"command": " ".join(sys.argv), "args": vars(args), "results": results}
                write_text(args.json, json.dumps(payload, indent=1) + "\n")
    print(summarise(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
