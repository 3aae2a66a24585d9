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
        """The optimizer the training loop uses, described by the config.

        ``config["optimizer"]``:

        * ``"adamw"`` (the default when the key is absent, for configs written before it existed): AdamW with
          ``lr`` (default 1e-4) and torch's default decoupled weight decay 0.01 (``weight_decay`` overrides);
        * ``"adam"``: Adam with a *coupled* L2 penalty: ``l2`` (default 0) is added as ``l2 · w`` to the
          gradient of every parameter in ``l2_on`` -- ``"weights"`` (tensors with more than one dimension:
          convolution and linear kernels, not biases or norm scales) or ``"all"``. This equals adding
          ``l2/2 · Σ w²`` to the loss, which is what ``tf.nn.l2_loss``-based regularisers (Kohl et al.,
          Baumgartner et al.) and PyTorch's ``Adam(weight_decay=…)`` (Bhat et al.) do.

        The learning rate of each step comes from :meth:`learning_rate`.
        """
        kind = str(self.config.get("optimizer", "adamw")).lower()
        lr = float(self.config.get("lr", 1e-4))
        if kind == "adamw":
            return torch.optim.AdamW(
                self.parameters(), lr=lr, weight_decay=float(self.config.get("weight_decay", 0.01))
            )
        if kind != "adam":
            raise ValueError(f"config['optimizer'] must be 'adam' or 'adamw', got {kind!r}")
        l2, on = float(self.config.get("l2", 0.0)), str(self.config.get("l2_on", "weights"))
        if on not in ("weights", "all"):
            raise ValueError(f"config['l2_on'] must be 'weights' or 'all', got {on!r}")
        params = [p for p in self.parameters() if p.requires_grad]
        decayed = [p for p in params if on == "all" or p.dim() > 1]
        rest = [p for p in params if not (on == "all" or p.dim() > 1)]
        groups = [{"params": decayed, "weight_decay": l2}, {"params": rest, "weight_decay": 0.0}]
        return torch.optim.Adam([g for g in groups if g["params"]], lr=lr)

    def learning_rate(self, step: int) -> float:
        """Learning rate of optimizer step ``step`` (0-based).

        ``config["lr_schedule"] = {"boundaries": [b_1, …], "values": [v_0, v_1, …]}`` is piecewise constant
        as ``tf.train.piecewise_constant``: ``v_0`` while ``step <= b_1``, ``v_i`` while
        ``b_i < step <= b_{i+1}``. With ``"relative": true`` the boundaries are fractions of
        ``config["steps"]`` (so a shortened run keeps the schedule's shape). Without a schedule:
        ``config["lr"]`` (1e-4 when absent).
        """
        sched = self.config.get("lr_schedule")
        if not sched:
            return float(self.config.get("lr", 1e-4))
        bounds, values = list(sched["boundaries"]), list(sched["values"])
        if sched.get("relative"):
            bounds = [b * float(self.config["steps"]) for b in bounds]
        if len(values) != len(bounds) + 1 or sorted(bounds) != bounds:
            raise ValueError(
                "config['lr_schedule'] needs increasing 'boundaries' and one more 'values' entry, "
                f"got {sched!r}"
            )
        return float(values[sum(1 for b in bounds if step > b)])

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
