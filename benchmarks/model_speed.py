"""Model-side speed: seconds per training step and per sampled mask of every model, with a FLOP estimate.

For each model (Prob. U-Net, PHiSeg, Generalized Prob. U-Net, CIMD) and named config (``cpu-small`` at
64×64, ``paper`` at 128×128, one input channel) this measures, on random inputs (speed does not depend on
the weights):

* a **training step**: ``training_loss`` + ``backward`` + the model's own optimizer step, at the config's
  batch size (``--batch`` overrides it; the paper configs are slow on a CPU);
* **sampling**: ``model.sample(images, n)`` under ``torch.inference_mode`` for ``--images`` images × ``--n``
  masks; for CIMD with ``--sampler-steps`` network steps, reported per mask *and per network step* (a full
  draw costs that times the sampler's step count: 25 for ``cpu-small``, 1000 for ``paper``).

``--device cpu`` (the default): each measurement is tried with every combination of torch threads
(``--threads``, default 1 and the number of CPUs) and memory format (contiguous, ``channels_last``).
``--device cuda``: with every combination of memory format and precision: ``fp32`` (TF32 off for matrix
products and cuDNN convolutions), ``tf32`` (TF32 on) and ``bf16`` (TF32 on plus
``torch.autocast(dtype=torch.bfloat16)``); ``torch.backends.cudnn.benchmark`` is on, each call ends with a
``torch.cuda.synchronize``, and the row records the peak GPU memory of the call.

Each setting is timed as the median of ``--repeats`` calls after one warm-up; the fastest is reported with its
setting, and every setting's time is kept in the JSON (``every_setting_s``). Beside each time: the FLOPs of
that call counted by ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix products; backward
counted too) and the time they would take at this machine's measured matrix-product rate for the same setting
(``torch.mm`` of 1024² float32 on the CPU with the same threads; of 8192² on a GPU, in float32, TF32 or
bfloat16), i.e. the compute bound of the call. The ratio time / bound says how far the model runs from the
device's arithmetic peak (small convolutions on few channels run far from it).

Run: ``python -m benchmarks.model_speed`` (all models, both configs; several minutes on 2 cores) or
``--configs cpu-small --models cimd``; ``--device cuda`` on a GPU (``benchmarks/model_gpu_run.sh`` runs it
with the user path in one call); ``--json out.json`` keeps the rows, written after each row;
``--count-only`` counts the FLOPs of a run's calls on the CPU without timing them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from .torch_settings import (
    MATMUL_SIZE,
    Setting,
    apply_setting,
    matmul_rate,
    median_after_warm_up,
    precision_mode,
    settings_for,
    synchronizer,
)

MODELS = ("prob_unet", "phiseg", "gen_prob_unet", "cimd")
SIZES = {"cpu-small": 64, "paper": 128}
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


def _check_outputs(loss: Any, masks: Any, images: int, n: int, size: int) -> dict[str, Any]:
    """What one float32 training loss and one draw look like: finite, in range, the right shape."""
    import torch

    return {
        "loss": float(loss),
        "loss_finite": bool(torch.isfinite(loss).all()),
        "sample_shape": list(masks.shape),
        "sample_shape_ok": list(masks.shape) == [images, n, size, size],
        "sample_finite": bool(torch.isfinite(masks).all()),
        "sample_min": float(masks.min()),
        "sample_max": float(masks.max()),
    }


@dataclass
class _Calls:
    """A model built on a device with its inputs, and the two calls that are timed."""

    model: Any
    row: dict[str, Any]
    inputs: tuple[Any, ...]
    train_step: Callable[[], Any]
    draw: Callable[[], Any]


def _calls(name: str, config_name: str, *, batch: int | None, images: int, n: int, sampler_steps: int,
           device: str) -> _Calls:
    import torch

    dev = torch.device(device)
    torch.manual_seed(0)
    model, config = _build(name, config_name, batch, sampler_steps)
    model.to(dev)
    size, bsz = SIZES[config_name], int(config["batch_size"])
    params = sum(p.numel() for p in model.parameters())
    gen = torch.Generator(device=dev).manual_seed(0)
    x = torch.randn(bsz, 1, size, size, device=dev, generator=gen)
    y = (torch.rand(bsz, 1, size, size, device=dev, generator=gen) > 0.5).float()
    xs = torch.randn(images, 1, size, size, device=dev, generator=gen)
    optimizer = model.make_optimizer()
    sync = synchronizer(dev)

    def train_step() -> Any:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        loss, _ = model.training_loss(x, y)
        loss.backward()
        optimizer.step()
        sync()
        return loss.detach()

    def draw() -> Any:
        model.eval()
        with torch.inference_mode():
            masks = model.sample(xs, n, generator=torch.Generator(device=dev).manual_seed(0))
        sync()
        return masks

    row: dict[str, Any] = {"model": name, "config": config_name, "size": size, "params": params,
                           "train_batch": bsz, "sample_images": images, "n": n, "device": str(dev)}
    return _Calls(model, row, (x, y, xs), train_step, draw)


def _units(name: str, images: int, n: int, sampler_steps: int) -> int:
    """Sampling units of one draw: masks, times network steps for CIMD."""
    return images * n * (sampler_steps if name == "cimd" else 1)


def count_flops(name: str, config_name: str, *, batch: int | None, images: int, n: int,
                sampler_steps: int) -> dict[str, Any]:
    """FLOPs of the two calls of :func:`measure`, counted on the CPU without timing (``--count-only``).

    ``FlopCounterMode`` counts the operators torch dispatches, with the shapes they get; a GPU run of the same
    calls counts the same number (checked on the ``paper`` CIMD row, ``docs/benchmarks.rst``).
    """
    calls = _calls(name, config_name, batch=batch, images=images, n=n, sampler_steps=sampler_steps,
                   device="cpu")
    units = _units(name, images, n, sampler_steps)
    return {**calls.row, "train_step": {"flops": _flops(calls.train_step)},
            "sample": {"flops": _flops(calls.draw), "units": units}}


def measure(
    name: str, config_name: str, *, threads: list[int], repeats: int, batch: int | None, images: int, n: int,
    sampler_steps: int, rates: dict[str, float], device: str = "cpu",
) -> dict[str, Any]:
    """The row of one model and config (see the module docstring)."""
    import torch

    dev = torch.device(device)
    calls = _calls(name, config_name, batch=batch, images=images, n=n, sampler_steps=sampler_steps,
                   device=device)
    model, row, size = calls.model, calls.row, calls.row["size"]
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        row["device_name"] = torch.cuda.get_device_name(dev)
    with precision_mode("fp32", dev.type):
        row["checks"] = _check_outputs(calls.train_step(), calls.draw(), images, n, size)
    per_draw = _units(name, images, n, sampler_steps)
    for what, fn, per in (("train_step", calls.train_step, 1), ("sample", calls.draw, per_draw)):
        best: tuple[float, Setting] | None = None
        failed: dict[str, str] = {}
        every: dict[str, float] = {}
        for setting in settings_for(dev.type, threads):
            apply_setting(setting, model, calls.inputs)

            def timed(fn: Callable[[], Any] = fn, setting: Setting = setting) -> Any:
                with precision_mode(setting.precision, dev.type):
                    return fn()

            try:
                seconds = median_after_warm_up(timed, repeats)
            except (RuntimeError, TypeError, ValueError) as exc:  # a setting a model cannot run in
                failed[setting.label(dev.type)] = f"{type(exc).__name__}: {exc}"[:300]
                continue
            every[setting.label(dev.type)] = seconds
            if best is None or seconds < best[0]:
                best = (seconds, setting)
        if best is None:
            raise RuntimeError(f"{name}/{config_name}: every setting failed for {what}: {failed}")
        seconds, setting = best
        apply_setting(setting, model, calls.inputs)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        with precision_mode(setting.precision, dev.type):
            flops = _flops(fn)
        entry = {"seconds": seconds, "units": per, "per_unit_s": seconds / per, **asdict(setting),
                 "setting": setting.label(dev.type), "flops": flops,
                 "bound_s": flops / rates[setting.rate_key(dev.type)], "every_setting_s": every}
        if dev.type == "cuda":
            entry["peak_memory_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30
        if failed:
            entry["failed_settings"] = failed
        row[what] = entry
    row["sample"]["unit"] = "mask × network step" if name == "cimd" else "mask"
    return row


def _table(rows: list[dict[str, Any]]) -> str:
    head = ("| model | config | params | train step (batch) | FLOPs | compute bound | ratio | setting "
            "| s / sampled mask | unit | FLOPs / unit | ratio | setting |")
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        t, s = r["train_step"], r["sample"]
        lines.append(
            f"| {r['model']} | {r['config']} ({r['size']}²) | {r['params'] / 1e6:.2f} M | "
            f"{t['seconds']:.3g} s ({r['train_batch']}) | {t['flops'] / 1e9:.1f} G | {t['bound_s']:.3g} s | "
            f"{t['seconds'] / t['bound_s']:.1f}× | {t['setting']} | {s['per_unit_s']:.2e} | {s['unit']} | "
            f"{s['flops'] / s['units'] / 1e9:.2f} G | {s['seconds'] / s['bound_s']:.1f}× | {s['setting']} |"
        )
    return "\n".join(lines)


def _defaults(device_type: str) -> dict[str, int]:
    """Sampling batch and repeats: a GPU needs many masks per call to be measured at all."""
    if device_type == "cuda":
        return {"images": 8, "n": 16, "sampler_steps": 2, "repeats": 3}
    return {"images": 2, "n": 8, "sampler_steps": 2, "repeats": 3}


def _count_only(args: argparse.Namespace) -> int:
    rows = []
    for config_name in args.configs.split(","):
        for model_name in args.models.split(","):
            row = count_flops(model_name, config_name, batch=args.batch, images=args.images, n=args.n,
                              sampler_steps=args.sampler_steps)
            rows.append(row)
            print(f"  {model_name} / {config_name}: train step (batch {row['train_batch']}) "
                  f"{row['train_step']['flops'] / 1e9:.1f} GFLOP, sampling "
                  f"{row['sample']['flops'] / row['sample']['units'] / 1e9:.3g} GFLOP per unit", flush=True)
    if args.json:
        from ambiseg_metrics.files.atomic import atomic_write

        atomic_write(args.json, json.dumps({"count_only": True, "args": vars(args), "rows": rows}, indent=2)
                     + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.model_speed",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--configs", default="cpu-small,paper")
    ap.add_argument("--device", default="cpu", help="torch device: cpu (default) or cuda[:i]")
    ap.add_argument("--threads", default=None, help="comma-separated torch thread counts to try on the CPU "
                    "(default: 1 and the number of usable CPUs)")
    ap.add_argument("--repeats", type=int, default=None, help="timed calls per setting (default 3)")
    ap.add_argument("--batch", type=int, default=None, help="training batch size (default: the config's)")
    ap.add_argument("--images", type=int, default=None, help="images per sampling call (2 on CPU, 8 on GPU)")
    ap.add_argument("--n", type=int, default=None, help="masks per image (8 on CPU, 16 on GPU)")
    ap.add_argument("--sampler-steps", type=int, default=None,
                    help="CIMD network steps per timed draw (default 2)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--count-only", action="store_true",
                    help="count, on the CPU and without timing, the FLOPs of the calls that a --device "
                    "run makes (with its default shapes)")
    args = ap.parse_args(argv)
    import torch

    dev = torch.device(args.device)
    if dev.type not in MATMUL_SIZE:
        ap.error(f"--device must be cpu or cuda, got {args.device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available() and not args.count_only:
        ap.error("--device cuda: torch sees no CUDA device")
    for key, value in _defaults(dev.type).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.count_only:
        return _count_only(args)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = sorted({int(t) for t in args.threads.split(",")}) if args.threads else sorted({1, cpus})
    settings = settings_for(dev.type, threads)
    rates = {s.rate_key(dev.type): matmul_rate(s.threads, args.device, s.precision) for s in settings}
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}; device {args.device} ({name}); CPUs {cpus}; "
          f"load average {os.getloadavg()}")
    print("matmul rate: " + ", ".join(f"{k} {r / 1e12:.3g} TFLOP/s" for k, r in rates.items()))
    rows: list[dict[str, Any]] = []
    errors: dict[str, str] = {}

    def save() -> None:  # after every row, so a run stopped by a time limit keeps what it measured
        if args.json:
            from ambiseg_metrics.files.atomic import atomic_write

            doc = {"device": args.device, "device_name": name, "rates_flops_per_s": rates, "cpus": cpus,
                   "torch": torch.__version__, "args": vars(args), "rows": rows, "errors": errors,
                   "load_end": os.getloadavg()}
            atomic_write(args.json, json.dumps(doc, indent=2) + "\n")

    for config_name in args.configs.split(","):
        for model_name in args.models.split(","):
            t0 = time.perf_counter()
            try:
                row = measure(model_name, config_name, threads=threads, repeats=args.repeats,
                              batch=args.batch, images=args.images, n=args.n,
                              sampler_steps=args.sampler_steps, rates=rates, device=args.device)
            except Exception as exc:  # noqa: BLE001 - report the row and go on to the next model
                errors[f"{model_name}/{config_name}"] = f"{type(exc).__name__}: {exc}"
                print(f"  {model_name} / {config_name}: FAILED {type(exc).__name__}: {exc}", flush=True)
                save()
                continue
            rows.append(row)
            save()
            print(f"  {model_name} / {config_name}: train step {row['train_step']['seconds']:.3g} s "
                  f"({row['train_step']['setting']}), sample {row['sample']['per_unit_s']:.2e} s per "
                  f"{row['sample']['unit']} ({row['sample']['setting']}); checks {row['checks']} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    print()
    print(_table(rows))
    print(f"\nload average at the end {os.getloadavg()}")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
