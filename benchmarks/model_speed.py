"""Model-side speed: seconds per training step and per sampled mask of every model, with a FLOP estimate.

For each model (Prob. U-Net, PHiSeg, Generalized Prob. U-Net, CIMD) and named config (``cpu-small`` at
64×64, ``paper`` at 128×128, one input channel) this measures, on random inputs (speed does not depend on
the weights):

* a **training step**: ``training_loss`` + ``backward`` + the model's own optimizer step, at the config's
  batch size (``--batch`` overrides it; the paper configs are slow on a CPU);
* **sampling**: ``model.sample(images, n)`` under ``torch.inference_mode`` for ``--images`` images × ``--n``
  masks; for CIMD with ``--sampler-steps`` network steps, reported per mask *and per network step* (a full
  draw costs that times the sampler's step count: 25 for ``cpu-small``, 1000 for ``paper``).

Each measurement is tried with every combination of torch threads (``--threads``, default 1 and the number
of CPUs) and memory format (contiguous, ``channels_last``), median of ``--repeats`` after one warm-up, and the
fastest is reported with its setting. Beside each time: the FLOPs of that call counted by
``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix products; backward counted too) and the
time they would take at this machine's measured float32 matrix-product rate (``torch.mm`` of 1024², same
threads), i.e. the compute bound of the call. The ratio time / bound says how far the model runs from the
CPU's arithmetic peak (small convolutions on few channels run far from it).

Run: ``python -m benchmarks.model_speed`` (all models, both configs; several minutes on 2 cores) or
``--configs cpu-small --models cimd``; ``--json out.json`` keeps the rows.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from collections.abc import Callable
from typing import Any

from .harness import median_time

MODELS = ("prob_unet", "phiseg", "gen_prob_unet", "cimd")
SIZES = {"cpu-small": 64, "paper": 128}


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (allocator, oneDNN primitive caches)
    return median_time(fn, repeats)[0]


def matmul_rate(threads: int) -> float:
    """float32 FLOP/s of ``torch.mm`` on 1024×1024 matrices with ``threads`` torch threads."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    seconds = _median_time(lambda: torch.mm(a, b), 5)
    return 2 * 1024**3 / seconds


def _flops(fn: Callable[[], object]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def _build(name: str, config_name: str, batch: int | None, sampler_steps: int):
    from cimd_model.registry import build_model, model_configs

    config = json.loads(json.dumps(model_configs(name)[config_name]))
    if batch is not None:
        config["batch_size"] = int(batch)
    if "image_size" in config:
        config["image_size"] = SIZES[config_name]
    if "sampling_steps" in config:
        config["sampler"], config["sampling_steps"] = "ddim", int(sampler_steps)
    return build_model(name, config, in_channels=1), config


def measure(
    name: str, config_name: str, *, threads: list[int], repeats: int, batch: int | None, images: int, n: int,
    sampler_steps: int, rates: dict[int, float],
) -> dict[str, Any]:
    """The row of one model and config (see the module docstring)."""
    import torch

    torch.manual_seed(0)
    model, config = _build(name, config_name, batch, sampler_steps)
    size, bsz = SIZES[config_name], int(config["batch_size"])
    params = sum(p.numel() for p in model.parameters())
    x = torch.randn(bsz, 1, size, size)
    y = (torch.rand(bsz, 1, size, size) > 0.5).float()
    xs = torch.randn(images, 1, size, size)
    optimizer = model.make_optimizer()

    def train_step() -> None:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        loss, _ = model.training_loss(x, y)
        loss.backward()
        optimizer.step()

    def draw() -> None:
        model.eval()
        with torch.inference_mode():
            model.sample(xs, n, generator=torch.Generator().manual_seed(0))

    row: dict[str, Any] = {"model": name, "config": config_name, "size": size, "params": params,
                           "train_batch": bsz, "sample_images": images, "n": n}
    steps = sampler_steps if name == "cimd" else 1
    for what, fn, per in (("train_step", train_step, 1), ("sample", draw, images * n * steps)):
        best: tuple[float, int, bool] | None = None
        for t, channels_last in itertools.product(threads, (False, True)):
            torch.set_num_threads(t)
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            model.to(memory_format=fmt)
            for tensor in (x, y, xs):
                tensor.data = tensor.data.contiguous(memory_format=fmt)
            seconds = _median_time(fn, repeats)
            if best is None or seconds < best[0]:
                best = (seconds, t, channels_last)
        assert best is not None
        seconds, t, channels_last = best
        torch.set_num_threads(t)
        flops = _flops(fn)
        row[what] = {"seconds": seconds, "units": per, "per_unit_s": seconds / per, "threads": t,
                     "channels_last": channels_last, "flops": flops, "bound_s": flops / rates[t]}
    row["sample"]["unit"] = "mask × network step" if name == "cimd" else "mask"
    return row


def _table(rows: list[dict[str, Any]]) -> str:
    head = ("| model | config | params | train step (batch) | FLOPs | compute bound | ratio | setting "
            "| s / sampled mask | unit | FLOPs / unit | ratio | setting |")
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        t, s = r["train_step"], r["sample"]

        def setting(m: dict[str, Any]) -> str:
            return f"{m['threads']} thr{', channels_last' if m['channels_last'] else ''}"

        lines.append(
            f"| {r['model']} | {r['config']} ({r['size']}²) | {r['params'] / 1e6:.2f} M | "
            f"{t['seconds']:.3f} s ({r['train_batch']}) | {t['flops'] / 1e9:.1f} G | {t['bound_s']:.3f} s | "
            f"{t['seconds'] / t['bound_s']:.1f}× | {setting(t)} | {s['per_unit_s']:.2e} | {s['unit']} | "
            f"{s['flops'] / s['units'] / 1e9:.2f} G | {s['seconds'] / s['bound_s']:.1f}× | {setting(s)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.model_speed",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--configs", default="cpu-small,paper")
    ap.add_argument("--threads", default=None, help="comma-separated torch thread counts to try "
                    "(default: 1 and the number of usable CPUs)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=None, help="training batch size (default: the config's)")
    ap.add_argument("--images", type=int, default=2, help="images per sampling call")
    ap.add_argument("--n", type=int, default=8, help="masks per image")
    ap.add_argument("--sampler-steps", type=int, default=2, help="CIMD network steps per timed draw")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    import torch

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = sorted({int(t) for t in args.threads.split(",")}) if args.threads else sorted({1, cpus})
    rates = {t: matmul_rate(t) for t in threads}
    print(f"torch {torch.__version__}; CPUs {cpus}; load average {os.getloadavg()}")
    rate_text = ", ".join(f"{t} thread(s) {r / 1e9:.1f} GFLOP/s" for t, r in rates.items())
    print(f"float32 matmul rate: {rate_text}")
    rows = []
    for config_name in args.configs.split(","):
        for name in args.models.split(","):
            t0 = time.perf_counter()
            row = measure(name, config_name, threads=threads, repeats=args.repeats, batch=args.batch,
                          images=args.images, n=args.n, sampler_steps=args.sampler_steps, rates=rates)
            rows.append(row)
            print(f"  {name} / {config_name}: train step {row['train_step']['seconds']:.3f} s, "
                  f"sample {row['sample']['per_unit_s']:.2e} s per {row['sample']['unit']} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    print()
    print(_table(rows))
    print(f"\nload average at the end {os.getloadavg()}")
    if args.json:
        from ambiseg_metrics.files.atomic import atomic_write

        doc = {"rates_flops_per_s": rates, "cpus": cpus, "torch": torch.__version__, "rows": rows,
               "load_end": os.getloadavg()}
        atomic_write(args.json, json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
