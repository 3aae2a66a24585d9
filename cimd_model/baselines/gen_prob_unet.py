"""Generalized Probabilistic U-Net (Bhat et al., "Generalized Probabilistic U-Net for Medical Image
Segmentation", UNSURE/MICCAI 2022).

The Probabilistic U-Net (:mod:`.prob_unet`) with a more expressive latent, selected by ``config["latent"]``:

* ``"mixture"`` (default here): prior and posterior are mixtures of ``n_components`` diagonal Gaussians.
  Training samples the posterior with a straight-through Gumbel-softmax component choice and estimates
  ``KL(q || p)`` by Monte-Carlo sampling (no closed form exists for mixtures; ``kl_samples`` samples: 1000
  in ``paper`` as in Bhat et al.'s ``train.py``, 100 in ``cpu-small``, 1 when the key is absent);
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

#: Bhat et al.'s training recipe, from the released code (ishaanb92/GeneralizedProbabilisticUNet, commit
#: 2d66dd9): ``scripts/train.py`` (LIDC branch, mixture model) and ``src/probabilistic_unet/model.py``
_RECIPE: dict[str, Any] = {
    # train.py: optim.Adam(model.parameters(), lr=config['lr'], weight_decay=1e-5): coupled L2 on every
    # parameter, plus loss += 1e-5 * (l2_regularisation(posterior) + l2_regularisation(prior)), a sum of the
    # (unsquared) L2 norms of those nets' parameter tensors (utils.py)
    "optimizer": "adam",
    "lr": 1e-4,  # train.py: --lr default 1e-4 (also the tuned search's config['lr'])
    "l2": 1e-5,
    "l2_on": "all",
    "l2_norm_penalty": 1e-5,
    "beta": 1.0,  # train.py: config['beta'] = 1.0 (model.py's constructor default was 10.0 before it was 1.0)
    "latent": "mixture",  # train.py --mixture_model: prior and posterior are mixtures of Gaussians
    # train.py tunes n_components ~ randint(2, 11) and temperature ~ U(0.1, 0.5) by random search; the values
    # chosen for LIDC are not released: 4 components and model.py's default temperature 0.1 here
    "n_components": 4,
    "temperature": 0.1,
    "kl_samples": 1000,  # train.py: model.elbo(analytic_kl=not mixture_model, mc_samples=1000)
    "n_comb": 4,  # train.py: ProbabilisticUnet(no_convs_fcomb=4)
    "annotation": "per-batch",  # train.py: one random_label_idx per batch, labels[:, [random_label_idx]]
    "augment": None,  # train.py builds LIDC(data_dir) without a transform: no augmentation
}

CONFIGS: dict[str, dict[str, Any]] = {
    # the cpu-small architecture of the Prob. U-Net with Bhat et al.'s recipe; CPU budget: 100 KL samples and
    # 10x the learning rate (constant, as Bhat et al.; the paper's 1e-4 for 400 steps does not learn
    # AmbiBlobs-CT: D_max 0.11, docs/baselines.md)
    "cpu-small": {**_PU_CONFIGS["cpu-small"], **_RECIPE, "kl_samples": 100, "lr": 1e-3, "lr_schedule": None},
    # Bhat et al. 2022 (LIDC): train.py unet_mode 'shallow' = num_filters [32, 64, 128, 256]; model.py: three
    # convs per block (no_convs_per_block = 3), norm=True (here GroupNorm), latent dim 6 (--zdim default);
    # train.py --batch_size default 6; early stopping (patience 100 epochs) replaced by a fixed step count
    "paper": {
        **_PU_CONFIGS["paper"],
        **_RECIPE,
        "mults": [1, 2, 4, 8],
        "encoder_mults": [1, 2, 4, 8],
        "norm": True,
        "batch_size": 6,
        "steps": 240000,
        "lr_schedule": None,  # train.py: constant learning rate
    },
    # before the paper's recipe (issue 18), for the fidelity check (profile table1-v0, docs/baselines.md)
    "cpu-small-v0": {**_PU_CONFIGS["cpu-small-v0"], "latent": "mixture", "n_components": 4},
}


class GeneralizedProbUNet(ProbUNet):
    """Generalized Probabilistic U-Net; see the module docstring."""

    name = "gen_prob_unet"


def build(config: dict[str, Any], in_channels: int) -> GeneralizedProbUNet:
    """Registry builder: ``GeneralizedProbUNet(config, in_channels)``."""
    return GeneralizedProbUNet(config, in_channels)
