"""Sampler sweep for a trained CIMD-variant checkpoint, and the per-variant sampling cost.

**Sweep** (``--checkpoint``): every setting ``sampler:steps`` samples the same images with the same seed,
``n`` masks per image in one batch of ``B * n`` per step, and is scored (masks thresholded at 0.5) with
:func:`ambiseg_metrics.evaluate` against the stored annotations (GED, CI), with
:func:`ambiseg_metrics.sample_diversity` (mean pairwise 1 - IoU of the samples, unbiased) and, for
AmbiBlobs, with the GED against the *true* annotation distribution
(:func:`cimd_model.true_ged.true_ged_batch`).
Each figure is reported as mean and 95% interval over images (mean ± 1.96 sd / sqrt(images)). The wall
time counts ``model.sample`` only. The sampler picked is the cheapest setting whose GED-vs-truth and
diversity means both lie inside the 95% interval of the reference setting (default ``ddpm:1000``).

**Variant cost** (``--variants``): seconds and FLOPs per sample per step of ``model.sample`` for each
registered CIMD variant, built (untrained: the cost does not depend on the weights) from a named config.

Examples::

    python benchmarks/cimd_sampling.py --checkpoint runs/cimd/checkpoint.pt --limit 8 --n 8 \\
        --settings ddpm:1000,ddim:10,ddim:50,dpm++:10,dpm++:50 --json sweep.json
    python benchmarks/cimd_sampling.py --variants --config cpu-small --images 2 --n 8 --steps 5
    python benchmarks/cimd_sampling.py --toy     # the samplers on a Gaussian toy with the exact noise
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from typing import Any

import numpy as np
import torch

from ambiseg_metrics import evaluate, sample_diversity
from cimd_model.data import load_dataset
from cimd_model.train import load_model

SAMPLER_NAMES = ("ddpm", "ddim", "dpm++")
VARIANT_NAMES = ("cimd-official", "cimd-paper", "cimd-latent", "cond-ddpm")


def parse_settings(text: str) -> list[tuple[str, int]]:
    """``"ddpm:1000,dpm++:10"`` -> ``[("ddpm", 1000), ("dpm++", 10)]``."""
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, _, steps = item.partition(":")
        if name not in SAMPLER_NAMES or not steps.isdigit():
            raise ValueError(f"--settings: expected items like ddpm:1000, ddim:50 or dpm++:10, got {item!r}")
        out.append((name, int(steps)))
    if not out:
        raise ValueError("--settings is empty")
    return out


def _interval(values: np.ndarray) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    half = 1.96 * float(v.std(ddof=1)) / math.sqrt(len(v)) if len(v) > 1 else float("nan")
    return {"mean": float(v.mean()), "lo": float(v.mean()) - half, "hi": float(v.mean()) + half}


def run(
    checkpoint: str,
    data: str | None,
    split: str,
    limit: int,
    n: int,
    settings: list[tuple[str, int]],
    seed: int,
    eta: float,
    batch_size: int,
    json_path: str | None = None,
) -> dict[str, Any]:
    """Sample and score every setting; returns a JSON-serialisable report (rewritten to ``json_path``
    after every setting, so a long run cut short keeps its finished rows)."""
    model, ckpt = load_model(checkpoint)
    model.eval()
    if not hasattr(model, "set_sampling"):
        raise ValueError(
            f"checkpoint {checkpoint} holds a {model.name!r} model, which has no sampler options"
        )
    model.set_progress(False)
    run_info = ckpt.get("run", {})
    spec = data or run_info.get("data")
    if not spec:
        raise ValueError("the checkpoint names no data set; pass --data")
    kw = dict(run_info.get("data_kwargs", {})) if data is None else {}
    kw.pop("n", None)
    dataset = load_dataset(spec, split, seed=int(run_info.get("seed", 0)), **kw)
    count = min(limit, len(dataset))
    items = [dataset[i] for i in range(count)]
    gts = np.stack([it["masks"].numpy().astype(np.uint8) for it in items])
    modes = [dataset.modes(i) for i in range(count)] if hasattr(dataset, "modes") else None
    rows: list[dict[str, Any]] = []
    report = {
        "checkpoint": str(checkpoint),
        "model": model.name,
        "train_step": int(ckpt.get("step", -1)),
        "data": spec,
        "data_kwargs": kw,
        "split": split,
        "images": count,
        "n": n,
        "seed": seed,
        "eta": eta,
        "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__,
        "rows": rows,
    }
    for sampler, steps in settings:
        model.set_sampling(sampler, steps, eta=eta)
        preds, elapsed = [], 0.0
        for b, start in enumerate(range(0, count, batch_size)):
            images = torch.stack([it["image"] for it in items[start : start + batch_size]])
            gen = torch.Generator().manual_seed(seed * 1_000_003 + b)
            t0 = time.perf_counter()
            probs = model.sample(images, n, generator=gen)
            elapsed += time.perf_counter() - t0
            preds.append(probs.numpy())
        pred = np.concatenate(preds)
        scores = evaluate(pred, gts, batch=True, metrics=["ged", "ci"], threshold=0.5)
        row: dict[str, Any] = {
            "sampler": sampler,
            "steps": steps,
            "eta": eta if sampler == "ddim" else None,
            "wall_s": elapsed,
            "s_per_sample_step": elapsed / (count * n * steps),
            "ged": _interval(scores["ged"]),
            "ci": _interval(scores["ci"]),
            "diversity": _interval(sample_diversity(pred, batch=True, estimator="unbiased")),
        }
        if modes is not None:
            from cimd_model.true_ged import true_ged_batch

            tg = true_ged_batch(
                list(pred),
                [np.stack([m for m, _ in ms]) for ms in modes],
                [[p for _, p in ms] for ms in modes],
            )
            row["true_ged"] = _interval(tg)
        rows.append(row)
        print(_row_text(row), file=sys.stderr)
        if json_path:
            _write_json(json_path, report)
    return report


def pick_sampler(
    report: dict[str, Any], reference: tuple[str, int] = ("ddpm", 1000)
) -> dict[str, Any] | None:
    """The cheapest row whose true-GED (or GED) and diversity means lie in the reference's 95% intervals."""
    rows = report["rows"]
    ref = next((r for r in rows if (r["sampler"], r["steps"]) == tuple(reference)), None)
    if ref is None:
        return None
    key = "true_ged" if "true_ged" in ref else "ged"

    def inside(r: dict[str, Any], k: str) -> bool:
        return ref[k]["lo"] <= r[k]["mean"] <= ref[k]["hi"]

    ok = [r for r in rows if inside(r, key) and inside(r, "diversity")]
    return min(ok, key=lambda r: r["steps"]) if ok else None


def _row_text(r: dict[str, Any]) -> str:
    tg = f" true-GED {r['true_ged']['mean']:.4f}" if "true_ged" in r else ""
    return (
        f"{r['sampler']:>5} {r['steps']:>5} steps: {r['wall_s']:8.1f} s  GED {r['ged']['mean']:.4f}{tg}  "
        f"diversity {r['diversity']['mean']:.4f}  CI {r['ci']['mean']:.4f}"
    )


def _fmt(iv: dict[str, float]) -> str:
    return f"{iv['mean']:.3f} [{iv['lo']:.3f}, {iv['hi']:.3f}]"


def markdown_table(report: dict[str, Any]) -> str:
    """The sweep as a Markdown table (mean [95% interval over images])."""
    truth = any("true_ged" in r for r in report["rows"])
    head = "| sampler | steps | wall (s) | s / sample / step | GED | " + ("GED vs truth | " if truth else "")
    head += "diversity | CI |"
    lines = [head, "|---|---:|---:|---:|---|" + ("---|" if truth else "") + "---|---|"]
    for r in report["rows"]:
        label = r["sampler"].upper() + (f" (eta {r['eta']:g})" if r.get("eta") is not None else "")
        cells = [label, str(r["steps"]), f"{r['wall_s']:.1f}", f"{r['s_per_sample_step']:.2e}"]
        cells.append(_fmt(r["ged"]))
        if truth:
            cells.append(_fmt(r["true_ged"]) if "true_ged" in r else "")
        cells += [_fmt(r["diversity"]), _fmt(r["ci"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def variant_costs(
    config: str, images: int, n: int, steps: int, size: int, sampler: str = "ddim", repeats: int = 3
) -> list[dict[str, Any]]:
    """Seconds per sample per step of ``model.sample`` for each CIMD variant (untrained weights; the
    fastest of ``repeats`` timed calls after one warm-up call), and the FLOPs per sample per step of that
    call (``torch.utils.flop_counter.FlopCounterMode``: convolutions and matrix products; independent of
    the machine's load)."""
    from torch.utils.flop_counter import FlopCounterMode

    from cimd_model.cli import resolve_config
    from cimd_model.registry import build_model

    rows = []
    for name in VARIANT_NAMES:
        cfg = resolve_config(name, config, {}, None, None)
        torch.manual_seed(0)
        model = build_model(name, cfg, 1).eval()
        model.set_progress(False)
        model.set_sampling(sampler, steps)
        x = torch.randn(images, 1, size, size, generator=torch.Generator().manual_seed(0))
        with FlopCounterMode(display=False) as counter:
            model.sample(x, n, generator=torch.Generator().manual_seed(0))  # warm-up, FLOPs counted
        flops = int(counter.get_total_flops())
        wall = float("inf")
        for rep in range(repeats):  # the minimum: the least disturbed by other jobs on the machine
            t0 = time.perf_counter()
            model.sample(x, n, generator=torch.Generator().manual_seed(1 + rep))
            wall = min(wall, time.perf_counter() - t0)
        per = images * n * steps
        rows.append({"model": name, "wall_s": wall, "s_per_sample_step": wall / per,
                     "flops_per_sample_step": flops / per})
        print(f"{name:>14}: {wall / per:.3e} s, {flops / per:.4e} FLOP / sample / step", file=sys.stderr)
    return rows


TOY_SETTINGS = (
    ("ddpm", 1000, 0.0, "time"),
    ("ddim", 10, 1.0, "time"),
    ("ddim", 50, 1.0, "time"),
    ("ddim", 10, 0.0, "time"),
    ("ddim", 50, 0.0, "time"),
    ("dpm++", 10, 0.0, "time"),
    ("dpm++", 5, 0.0, "logsnr"),
    ("dpm++", 10, 0.0, "logsnr"),
    ("dpm++", 25, 0.0, "logsnr"),
    ("dpm++", 50, 0.0, "logsnr"),
    ("dpm++", 100, 0.0, "logsnr"),
)


def gaussian_toy(n: int = 20000, var: float = 0.25, seed: int = 0) -> list[dict[str, Any]]:
    """Sample variance of each sampler on data N(0, ``var``) with the exact optimal noise predictor.

    ``eps*(x_t, t) = sqrt(1 - abar_t) x_t / (abar_t var + 1 - abar_t)``; no clipping. A perfect sampler
    returns ``var``; the deviation is the sampler's own error. ``spacing="time"`` for DPM-Solver++ runs it
    on DDIM's time-uniform steps instead of its log-SNR-uniform ones.
    """
    from cimd_model.diffusion.dpm_solver import DPMSolverPP2M
    from cimd_model.diffusion.sampler import DiffusionSampler, timestep_sequence
    from cimd_model.diffusion.schedule import DiffusionSchedule

    sched = DiffusionSchedule(1000)

    def optimal(x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, None]:
        abar = sched.alphas_cumprod[t].float().reshape(-1, 1)
        return (1 - abar).sqrt() * x / (abar * var + 1 - abar), None

    rows = []
    for method, steps, eta, spacing in TOY_SETTINGS:
        gen = torch.Generator().manual_seed(seed)
        if method == "dpm++" and spacing == "time":
            x = torch.randn((n, 1), generator=gen)
            out = DPMSolverPP2M(sched, timestep_sequence(1000, steps), clip_x0=False).run(optimal, x)
        else:
            out = DiffusionSampler(sched, method, steps, eta=eta, clip_x0=False).sample(optimal, (n, 1), gen)
        rows.append(
            {"sampler": method, "steps": steps, "eta": eta, "spacing": spacing, "variance": float(out.var())}
        )
    return rows


def _write_json(path: str, obj: Any) -> None:
    from cimd_model.fileio import write_text

    write_text(path, json.dumps(obj, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=None, help="checkpoint of a CIMD variant (cimd-train output)")
    p.add_argument("--variants", action="store_true", help="time every variant instead of a sweep")
    p.add_argument("--toy", action="store_true", help="sampler variances on the exact-noise Gaussian toy")
    p.add_argument("--pick", nargs="+", default=None, help="merge the rows of these sweep JSONs and pick")
    p.add_argument("--config", default="cpu-small", help="--variants: named config")
    p.add_argument("--images", type=int, default=2, help="--variants: images per sampling call")
    p.add_argument("--size", type=int, default=64, help="--variants: image size")
    p.add_argument("--steps", type=int, default=5, help="--variants: DDIM steps")
    p.add_argument("--data", default=None, help="data spec (default: the training data set)")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--limit", type=int, default=8, help="number of test images")
    p.add_argument("--n", type=int, default=8, help="samples per image")
    p.add_argument("--settings", default="ddpm:1000,ddim:50,ddim:10,dpm++:50,dpm++:10")
    p.add_argument("--reference", default="ddpm:1000", help="the setting the others must match")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM eta")
    p.add_argument("--batch-size", type=int, default=8, help="images per sampling call")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--json", default=None, help="also write the report here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.pick:
        reports = []
        for path in args.pick:
            with open(path) as fh:
                reports.append(json.load(fh))
        keys = ("checkpoint", "images", "n", "seed", "split")
        if any(any(r[k] != reports[0][k] for k in keys) for r in reports[1:]):
            raise SystemExit(f"--pick: the reports differ in one of {keys}")
        rows = []
        for r in reports:
            for row in r["rows"]:
                rows.append({**row, "eta": row.get("eta", r["eta"] if row["sampler"] == "ddim" else None)})
        merged = {**reports[0], "rows": rows}
        chosen = pick_sampler(merged, parse_settings(args.reference)[0])
        print(markdown_table(merged))
        name = None if chosen is None else f"{chosen['sampler']}:{chosen['steps']}"
        print(f"\nchosen (cheapest within the 95% interval of {args.reference}): {name}")
        return 0
    if args.toy:
        print("| sampler | steps | eta | step spacing | sample variance (target 0.25) |")
        print("|---|---:|---:|---|---:|")
        for r in gaussian_toy():
            eta = f"{r['eta']:g}" if r["sampler"] == "ddim" else "-"
            print(f"| {r['sampler'].upper()} | {r['steps']} | {eta} | {r['spacing']} | {r['variance']:.3f} |")
        return 0
    if args.variants:
        rows = variant_costs(args.config, args.images, args.n, args.steps, args.size)
        if args.json:
            _write_json(
                args.json, {"config": args.config, "size": args.size, "steps": args.steps, "rows": rows}
            )
        for r in rows:
            print(f"| {r['model']} | {r['s_per_sample_step']:.2e} | {r['flops_per_sample_step']:.4e} |")
        return 0
    if not args.checkpoint:
        p.error("--checkpoint is required (or --variants)")
    report = run(
        args.checkpoint,
        args.data,
        args.split,
        args.limit,
        args.n,
        parse_settings(args.settings),
        args.seed,
        args.eta,
        args.batch_size,
        args.json,
    )
    chosen = pick_sampler(report, parse_settings(args.reference)[0])
    report["chosen"] = None if chosen is None else f"{chosen['sampler']}:{chosen['steps']}"
    if args.json:
        _write_json(args.json, report)
    print(markdown_table(report))
    print(f"\nchosen (cheapest within the 95% interval of {args.reference}): {report['chosen']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
