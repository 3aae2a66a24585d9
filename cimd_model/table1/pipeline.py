"""``run_table1``: train, sample, evaluate and tabulate every (data set, model) pair."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import write_json, write_text
from .evaluate import TRUE_GED, evaluate_model_samples, summarize_over_seeds
from .profiles import MODELS, PROFILES, Profile, model_config
from .render import draw_figures, per_image_csv, table_csv, table_markdown
from .specs import cached_split, data_key, data_label, known_modes, loader_kwargs, n_test_images
from .stages import sample_or_reuse, train_or_load, write_gts


# ------------------------------------------------------------------------------------------ pipeline
def _log(msg: str, quiet: bool) -> None:
    if not quiet:
        print(f"cimd-table1: {msg}", file=sys.stderr, flush=True)


#: spec kinds that take a LIDC ``protocol`` (:mod:`cimd_model.data.protocols`)
LIDC_KINDS = ("lidc-pickle", "lidc-png", "cimd-lidc")


def protocol_kwargs(spec: str, protocol: str) -> dict[str, Any]:
    """Loader keywords selecting ``protocol`` for ``spec``: none for ``ours`` (so earlier runs' checkpoints
    still match), ``{"protocol": …}`` for LIDC specs, an error for data sets the protocols do not cover."""
    from ..data.protocols import PROTOCOLS

    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown --protocol {protocol!r}; choose one of {sorted(PROTOCOLS)}")
    if protocol == "ours":
        return {}
    if spec.partition(":")[0] not in LIDC_KINDS:
        raise ValueError(
            f"--protocol {protocol} applies to LIDC data ({', '.join(LIDC_KINDS)}), not {spec!r}"
        )
    return {"protocol": protocol}


@dataclass(frozen=True)
class _Task:
    """Train (or reuse) one model on one data set and write its samples (picklable for worker processes)."""

    spec: str
    key: str
    name: str
    profile: Profile
    out: str
    seed: int  # training and sampling seed
    n: int
    data_kwargs: Mapping[str, Any]
    retrain: bool
    device: str
    progress: bool
    quiet: bool
    threads: int | None = None
    data_seed: int | None = None  # seed of the data split / generation (default: ``seed``)
    subdir: str = ""  # "seed<k>" below the model folder when the run has several seeds

    @property
    def label(self) -> str:
        return "/".join(p for p in (self.key, self.name, self.subdir) if p)


def _run_task(task: _Task) -> dict[str, Any]:
    """Worker body of one (data set, model) pair; returns its timings and statuses."""
    import torch

    if task.threads is not None:
        torch.set_num_threads(int(task.threads))
    prof = task.profile
    data_seed = task.seed if task.data_seed is None else task.data_seed
    train_ds = cached_split(task.spec, "train", prof, data_seed, task.data_kwargs)
    test_ds = cached_split(task.spec, "test", prof, data_seed, task.data_kwargs)
    limit = n_test_images(task.spec, test_ds, prof)
    config = model_config(prof, task.name, int(test_ds[0]["image"].shape[-1]))
    model_dir = Path(task.out) / task.key / task.name / task.subdir
    run = {
        "model": task.name,
        "config_name": prof.model_config,
        "table1_profile": prof.name,
        "data": task.spec,
        "data_kwargs": loader_kwargs(task.spec, "train", prof, task.data_kwargs),
        "seed": int(task.seed),
        **({} if data_seed == task.seed else {"data_seed": int(data_seed)}),
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
    _log(f"{task.label}: {status} ({t_train:.1f} s), {s_status} ({t_sample:.1f} s)", task.quiet)
    return {"train_s": round(t_train, 2), "train": status, "sample_s": round(t_sample, 2), "sample": s_status}


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
    seeds: Sequence[int] | None = None,
    protocol: str = "ours",
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
    seed : seed of the data split and the bootstrap (and of training and sampling without ``seeds``)
    seeds : training / sampling seeds (default: the profile's, else ``[seed]``); with two or more, every
        model is trained once per seed into ``<data>/<model>/seed<k>/`` on the same data, and the tables
        give the mean over seeds and images with 95% intervals over images and over seeds
    protocol : LIDC split protocol (``ours``, ``kohl``, ``knegt``; :mod:`cimd_model.data.protocols`)
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
    dict with ``summary`` (data key -> model -> metric -> {n, mean, ci_low, ci_high} and, with several
    seeds, n_seeds, seed_low, seed_high), ``per_image`` (seed-averaged), ``per_seed`` (data key -> model ->
    seed -> metric -> per-image values), ``ids``, ``seeds``, ``timings`` and the written ``paths``.
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
    seeds = [int(s) for s in (seeds if seeds is not None else (prof.seeds or [seed]))]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct integers, got {seeds}")
    multi = len(seeds) > 1
    spec_kwargs = {
        k: {**dict(data_kwargs or {}), **protocol_kwargs(s, protocol)}
        for s, k in zip(specs, keys, strict=True)
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

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
        train_ds = cached_split(spec, "train", prof, seed, spec_kwargs[key])
        test_ds = cached_split(spec, "test", prof, seed, spec_kwargs[key])
        tests[key] = (test_ds, n_test_images(spec, test_ds, prof))
        timings["stages"][f"{key}/data"] = round(time.time() - t0, 2)
        _log(f"{key}: {len(train_ds)} training and {tests[key][1]} test images ({data_label(spec)})", quiet)

    tasks = [
        _Task(
            spec,
            key,
            name,
            prof,
            str(out),
            s,
            n,
            spec_kwargs[key],
            bool(retrain),
            device,
            bool(progress) and jobs == 1,
            bool(quiet),
            1 if jobs > 1 else None,
            None if s == int(seed) else int(seed),
            f"seed{s}" if multi else "",
        )
        for spec, key in zip(specs, keys, strict=True)
        for name in models
        for s in seeds
    ]
    t0 = time.time()
    for task, result in zip(tasks, _run_tasks(tasks, int(jobs)), strict=True):
        timings["stages"][task.label] = result
    timings["train_and_sample_s"] = round(time.time() - t0, 2)

    summary: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    per_image: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    per_seed: dict[str, dict[str, dict[int, dict[str, np.ndarray]]]] = {}
    all_ids: dict[str, list[str]] = {}
    for key in keys:
        test_ds, limit = tests[key]
        data_dir = out / key
        # the annotations are written only now, after every checkpoint was accepted
        ids = write_gts(test_ds, data_dir / "gts", limit)
        all_ids[key] = ids
        modes = [known_modes(test_ds, i) for i in range(limit)]
        modes = None if any(m is None for m in modes) else modes
        summary[key], per_image[key], per_seed[key] = {}, {}, {}
        for name in models:
            t0 = time.time()
            runs = {
                s: evaluate_model_samples(
                    data_dir / name / (f"seed{s}" if multi else "") / "samples", data_dir / "gts", ids, modes
                )
                for s in seeds
            }
            metrics = [m for m in runs[seeds[0]] if all(m in r for r in runs.values())]
            per_seed[key][name] = runs
            per_image[key][name] = {m: np.mean([runs[s][m] for s in seeds], axis=0) for m in metrics}
            summary[key][name] = {
                m: summarize_over_seeds([runs[s][m] for s in seeds], seed=seed, n_boot=n_boot)
                for m in metrics
            }
            stage = timings["stages"].get(f"{key}/{name}")
            if stage is not None:  # one seed: beside its train / sample times, as before
                stage["eval_s"] = round(time.time() - t0, 2)
            else:
                timings["stages"][f"{key}/{name}/eval_s"] = round(time.time() - t0, 2)
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
        "seeds": seeds,
        "protocol": protocol,
        "budget": dict(prof.budget),
        "n_boot": int(n_boot),
        "command": command
        or f"cimd-table1 --data {','.join(specs)} --config {prof.name} --n-samples {n} --out {out}",
    }
    paths = {"md": out / "table1.md", "csv": out / "table1.csv", "per_image": out / "per_image.csv"}
    write_text(paths["md"], table_markdown(summary, specs, models, meta))
    write_text(paths["csv"], table_csv(summary, specs, models))
    write_text(paths["per_image"], per_image_csv(per_image, all_ids, per_seed if multi else None))
    if figures:
        t0 = time.time()
        figure_inputs = {key: (spec, *tests[key]) for spec, key in zip(specs, keys, strict=True)}
        paths["figures"] = draw_figures(
            out, figure_inputs, per_image, models, n_show=min(n, 8), subdir=f"seed{seeds[0]}" if multi else ""
        )
        timings["stages"]["figures_s"] = round(time.time() - t0, 2)
    timings["total_s"] = round(time.time() - t_start, 2)
    write_json(out / "timings.json", timings)
    _log(f"wrote {paths['md']} and {paths['csv']} in {timings['total_s']:.1f} s", quiet)
    return {
        "summary": summary,
        "per_image": per_image,
        "per_seed": per_seed,
        "ids": all_ids,
        "seeds": seeds,
        "timings": timings,
        "paths": paths,
    }
