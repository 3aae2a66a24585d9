"""Generalized Probabilistic U-Net (Bhat et al., "Generalized Probabilistic U-Net for Medical Image
Segmentation", UNSURE/MICCAI 2022).

The Probabilistic U-Net (:mod:`.prob_unet`) with a more expressive latent, selected by ``config["latent"]``:

* ``"mixture"`` (default here): prior and posterior are mixtures of ``n_components`` diagonal Gaussians.
  Training samples the posterior with a straight-through Gumbel-softmax component choice and estimates
  ``KL(q || p)`` by one Monte-Carlo sample (no closed form exists for mixtures);
* ``"full"``: full-covariance Gaussians (Cholesky factor), closed-form KL;
* ``"lowrank"``: low-rank-plus-diagonal covariance of rank ``rank``, closed-form KL;
* ``"diagonal"``: the original Probabilistic U-Net.

Everything else (U-Net, 1×1 combination layers, ELBO with ``beta``, sampling from the prior) is shared with
:class:`~.prob_unet.ProbUNet`.
"""

from __future__ import annotations

from typing import Any

from .prob_unet import CONFIGS as _PU_CONFIGS
from .prob_unet import ProbUNet

CONFIGS: dict[str, dict[str, Any]] = {
    "cpu-small": {**_PU_CONFIGS["cpu-small"], "latent": "mixture", "n_components": 4},
    # Bhat et al. 2022 (LIDC): Prob. U-Net backbone, latent dim 6, mixture of Gaussians prior/posterior
    "paper": {**_PU_CONFIGS["paper"], "latent": "mixture", "n_components": 4},
}


class GeneralizedProbUNet(ProbUNet):
    """Generalized Probabilistic U-Net; see the module docstring."""

    name = "gen_prob_unet"


def build(config: dict[str, Any], in_channels: int) -> GeneralizedProbUNet:
    """Registry builder: ``GeneralizedProbUNet(config, in_channels)``."""
    return GeneralizedProbUNet(config, in_channels)
