"""Model names -> builders, their named configs, and ``--set key=value`` parsing.

Builders are imported lazily so that ``cimd-train --help`` stays fast. Every builder is
``build(config: dict, in_channels: int) -> AmbiguousSegModel`` (see :mod:`cimd_model.base`) and its module
holds ``CONFIGS = {"cpu-small": {...}, "paper": {...}, ...}``.

This module is the one place both command lines (:mod:`cimd_model.cli`, :mod:`cimd_model.table1`) take
model configs and ``key=value`` options from, so neither imports the other.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

__all__ = ["MODELS", "build_model", "model_configs", "parse_assignments", "resolve_config"]

#: model name -> "module:function" of its builder
MODELS: dict[str, str] = {
    "prob_unet": "cimd_model.baselines.prob_unet:build",
    "phiseg": "cimd_model.baselines.phiseg:build",
    "gen_prob_unet": "cimd_model.baselines.gen_prob_unet:build",
    "cimd": "cimd_model.diffusion.cimd:build",
    "cimd-official": "cimd_model.diffusion.cimd:build_official",
    "cimd-paper": "cimd_model.diffusion.cimd:build_paper",
    "cimd-latent": "cimd_model.diffusion.cimd:build_latent",
    "cond-ddpm": "cimd_model.diffusion.cimd:build_cond_ddpm",
}


def _module_of(name: str):
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return importlib.import_module(MODELS[name].split(":")[0])


def build_model(name: str, config: dict[str, Any], in_channels: int):
    """Build the model registered under ``name`` from its config dict."""
    builder = getattr(_module_of(name), MODELS[name].split(":")[1])
    return builder(config, in_channels)


def model_configs(name: str) -> dict[str, dict[str, Any]]:
    """The ``CONFIGS`` dict (config name -> config) of a registered model."""
    return _module_of(name).CONFIGS


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_assignments(items: list[str] | None, what: str) -> dict[str, Any]:
    """``["a=1", "b=[1,2]", "c=x"]`` -> ``{"a": 1, "b": [1, 2], "c": "x"}`` (JSON values, else strings).

    ``what`` names the option in the error message (``"--set"``, ``"--data-arg"``).
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} expects key=value, got {item!r}")
        out[key.strip()] = _parse_value(value)
    return out


def resolve_config(
    name: str, config_name: str, overrides: dict[str, Any], steps: int | None, batch_size: int | None
) -> dict[str, Any]:
    """Named config of a model + ``--set`` overrides (keys must exist) + ``--steps`` / ``--batch-size``."""
    configs = model_configs(name)
    if config_name not in configs:
        raise ValueError(f"model {name!r} has no config {config_name!r}; choose one of {sorted(configs)}")
    config = json.loads(json.dumps(configs[config_name]))
    unknown = sorted(set(overrides) - set(config))
    if unknown:
        raise ValueError(
            f"--set: unknown config key(s) {unknown} for {name}/{config_name}; known: {sorted(config)}"
        )
    config.update(overrides)
    if steps is not None:
        config["steps"] = int(steps)
    if batch_size is not None:
        config["batch_size"] = int(batch_size)
    return config
