"""The one interface every model of :mod:`cimd_model` implements.

The training loop (:mod:`cimd_model.train`) and the sampler CLI (:mod:`cimd_model.sample`) only use
these members, so a new model plugs in by subclassing :class:`AmbiguousSegModel` and registering a
builder in :mod:`cimd_model.registry`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class AmbiguousSegModel(nn.Module):
    """Base class: a conditional generative model of segmentation masks.

    Attributes
    ----------
    name : str
        Registry name (``"prob_unet"``, ``"phiseg"``, ``"gen_prob_unet"``, ``"cimd"``).
    config : dict
        The JSON-serialisable config the model was built from (stored in checkpoints).
    """

    name: str = "base"
    #: UI only: whether :meth:`sample` may show progress bars of its own (e.g. per diffusion step). Not part
    #: of ``config`` and never stored in checkpoints; set it with :meth:`set_progress`.
    progress: bool = False

    def __init__(self, config: dict[str, Any], in_channels: int) -> None:
        super().__init__()
        self.config = dict(config)
        self.in_channels = int(in_channels)

    def training_loss(
        self, images: torch.Tensor, masks: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss for one batch.

        Parameters
        ----------
        images : (B, C, H, W) float tensor
        masks : (B, 1, H, W) float tensor in {0, 1} -- one annotation per image (the loop picks it at random)

        Returns
        -------
        loss : scalar tensor to backpropagate
        logs : dict of floats for the progress bar / log file
        """
        raise NotImplementedError

    def make_optimizer(self) -> torch.optim.Optimizer:
        """The optimizer the training loop uses.

        Default: AdamW over all parameters with learning rate ``config["lr"]`` (1e-4 when absent).
        """
        return torch.optim.AdamW(self.parameters(), lr=float(self.config.get("lr", 1e-4)))

    def set_progress(self, show: bool) -> None:
        """Show (or hide) the model's own progress bars while sampling; a UI setting, not model config."""
        self.progress = bool(show)
        # transitional: configs written before the flag moved out of them (and CIMD's configs until its
        # sampler reads ``self.progress``) still carry a "progress" key; keep it in step
        if "progress" in self.config:
            self.config["progress"] = self.progress

    def on_train_step_end(self) -> None:
        """Hook called after every optimizer step (e.g. EMA update). Default: nothing."""

    @torch.no_grad()
    def sample(
        self, images: torch.Tensor, n: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw ``n`` masks per image: returns (B, n, H, W) foreground probabilities in [0, 1]."""
        raise NotImplementedError
