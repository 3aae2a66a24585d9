"""Name -> model builder registry, imported lazily so that ``cimd-train --help`` stays fast.

Every builder is ``build(config: dict, in_channels: int) -> AmbiguousSegModel`` (see :mod:`cimd_model.base`).
"""

from __future__ import annotations

import importlib
from typing import Any

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


def build_model(name: str, config: dict[str, Any], in_channels: int):
    """Build the model registered under ``name`` from its config dict."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    module_name, func_name = MODELS[name].split(":")
    builder = getattr(importlib.import_module(module_name), func_name)
    return builder(config, in_channels)
