"""CIMD: Collectively Intelligent Medical Diffusion (Rahman et al., CVPR 2023), re-implemented.

A conditional DDPM (Wolleb et al. 2022) segments by denoising a mask :math:`x_t` concatenated with the
image; drawing ``n`` different starting noises gives ``n`` plausible masks. Two Gaussian latent encoders
model the ambiguity: the *ambiguity modelling network* :math:`q_\\phi(z | image, annotation)` and the
*ambiguity control network* :math:`p_\\psi(z | image, \\hat\\epsilon)` on the network's predicted noise;
:math:`KL(q_\\phi \\| p_\\psi)` is added to the loss with weight ``kl_weight`` (1/1000), which pushes the
spread of the denoiser's predictions towards the spread of the annotations.

Loss (the "hybrid" loss of Nichol & Dhariwal 2021)::

    loss = MSE(eps, eps_hat) + vlb_weight * L_vlb(variance only) + kl_weight * KL(q_phi || p_psi)

Unlike the released code, the encoders are trained jointly with the denoiser (one optimizer over all of
them), one optimizer step is taken per batch, and DDIM works (:mod:`cimd_model.diffusion.sampler`).

Masks are {0, 1} at the interface and live in [-1, 1] during diffusion; :meth:`CIMD.sample` maps the
final :math:`\\hat x_0` back to [0, 1]. Sampling uses the exponential moving average (EMA) of the
denoiser's weights, kept in buffers (saved in ``state_dict()``, not returned by ``parameters()``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from ..base import AmbiguousSegModel
from ..nets.encoders import GaussianEncoder, kl_divergence
from .denoiser import Denoiser
from .sampler import SAMPLERS, DiffusionSampler
from .schedule import DiffusionSchedule

__all__ = ["CIMD", "CONFIGS", "build"]

#: Named configs. ``cpu-small`` trains on 64x64 AmbiBlobs in minutes on 2 CPU cores; ``paper`` mirrors
#: the paper / its code base (128 base channels, multipliers (1,1,2,3,4), 2 residual blocks per level,
#: attention at 16x16, T=1000 linear betas, learned variance, EMA 0.9999, AdamW 1e-4, 1000 DDPM steps).
CONFIGS: dict[str, dict[str, Any]] = {
    "cpu-small": {
        "image_size": 64,
        "T": 1000,
        "beta_start": 1e-4,
        "beta_end": 0.02,
        "base_channels": 16,
        "channel_mult": [1, 2, 4],
        "num_res_blocks": 1,
        "attention_resolutions": [16],
        "num_heads": 1,
        "dropout": 0.0,
        "learn_sigma": True,
        "vlb_weight": 1.0,
        "latent_dim": 6,
        "kl_weight": 1e-3,
        "encoder_channels": 8,
        "encoder_mults": [1, 2, 4, 8],
        "encoder_convs": 1,
        "lr": 5e-4,
        "weight_decay": 0.0,
        "batch_size": 8,
        "steps": 1500,
        "ema_decay": 0.999,
        "sampler": "ddim",
        "sampling_steps": 25,
        "eta": 0.0,
        "clip_x0": True,
        "progress": True,
    },
    "paper": {
        "image_size": 128,
        "T": 1000,
        "beta_start": 1e-4,
        "beta_end": 0.02,
        "base_channels": 128,
        "channel_mult": [1, 1, 2, 3, 4],
        "num_res_blocks": 2,
        "attention_resolutions": [16],
        "num_heads": 1,
        "dropout": 0.0,
        "learn_sigma": True,
        "vlb_weight": 1.0,
        "latent_dim": 6,
        "kl_weight": 1e-3,
        "encoder_channels": 32,
        "encoder_mults": [1, 2, 4, 6, 6],
        "encoder_convs": 3,
        "lr": 1e-4,
        "weight_decay": 0.0,
        "batch_size": 8,
        "steps": 100000,
        "ema_decay": 0.9999,
        "sampler": "ddpm",
        "sampling_steps": 1000,
        "eta": 0.0,
        "clip_x0": True,
        "progress": True,
    },
}


def _check_config(cfg: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming the first bad config entry."""
    if int(cfg["T"]) < 1:
        raise ValueError(f"config['T'] must be >= 1, got {cfg['T']}")
    if cfg["sampler"] not in SAMPLERS:
        raise ValueError(f"config['sampler'] must be one of {SAMPLERS}, got {cfg['sampler']!r}")
    if not (1 <= int(cfg["sampling_steps"]) <= int(cfg["T"])):
        raise ValueError(
            f"config['sampling_steps'] must be in [1, T={cfg['T']}], got {cfg['sampling_steps']}"
        )
    for key in ("kl_weight", "vlb_weight", "eta", "dropout", "weight_decay"):
        if float(cfg[key]) < 0:
            raise ValueError(f"config[{key!r}] must be >= 0, got {cfg[key]}")
    if not (0.0 <= float(cfg["ema_decay"]) < 1.0):
        raise ValueError(f"config['ema_decay'] must be in [0, 1), got {cfg['ema_decay']}")
    if int(cfg["image_size"]) < 1:
        raise ValueError(f"config['image_size'] must be >= 1, got {cfg['image_size']}")


def _ema_key(name: str) -> str:
    """Buffer name for the EMA copy of parameter ``name`` (buffers may not contain dots)."""
    return name.replace(".", "__")


class CIMD(AmbiguousSegModel):
    """Conditional diffusion segmentation model with ambiguity encoders.

    Parameters
    ----------
    config : dict
        See :data:`CONFIGS`; missing keys are taken from ``CONFIGS["cpu-small"]``.
    in_channels : int
        Image channels.

    Attributes
    ----------
    schedule : DiffusionSchedule
    denoiser : Denoiser
        Input: image channels + 1 (the noisy mask); output: noise and variance interpolation.
    mask_encoder, eps_encoder : GaussianEncoder or None
        :math:`q_\\phi(z|image, annotation)` and :math:`p_\\psi(z|image, \\hat\\epsilon)`; ``None`` when
        ``kl_weight == 0``.
    ema : nn.Module
        Holds one buffer per denoiser parameter (the EMA weights) and ``num_updates``.
    """

    name = "cimd"

    def __init__(self, config: dict[str, Any], in_channels: int) -> None:
        cfg = {**CONFIGS["cpu-small"], **dict(config)}
        _check_config(cfg)
        super().__init__(cfg, in_channels)
        self.schedule = DiffusionSchedule(int(cfg["T"]), float(cfg["beta_start"]), float(cfg["beta_end"]))
        image_size = int(cfg["image_size"])
        attention_ds = [image_size // int(r) for r in cfg["attention_resolutions"] if int(r) > 0]
        self.denoiser = Denoiser(
            in_channels=self.in_channels + 1,
            out_channels=1,
            base_channels=int(cfg["base_channels"]),
            channel_mult=tuple(int(m) for m in cfg["channel_mult"]),
            num_res_blocks=int(cfg["num_res_blocks"]),
            attention_ds=attention_ds,
            num_heads=int(cfg["num_heads"]),
            dropout=float(cfg["dropout"]),
            learn_sigma=bool(cfg["learn_sigma"]),
        )
        self.kl_weight = float(cfg["kl_weight"])
        if self.kl_weight > 0:
            enc_kw = dict(
                latent_dim=int(cfg["latent_dim"]),
                base_channels=int(cfg["encoder_channels"]),
                mults=tuple(cfg["encoder_mults"]),
                n_convs=int(cfg["encoder_convs"]),
            )
            self.mask_encoder: GaussianEncoder | None = GaussianEncoder(self.in_channels + 1, **enc_kw)
            self.eps_encoder: GaussianEncoder | None = GaussianEncoder(self.in_channels + 1, **enc_kw)
        else:
            self.mask_encoder = None
            self.eps_encoder = None
        self.ema = nn.Module()
        for pname, p in self.denoiser.named_parameters():
            self.ema.register_buffer(_ema_key(pname), p.detach().clone())
        self.ema.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    # ------------------------------------------------------------------ training
    def _check_inputs(self, images: torch.Tensor, masks: torch.Tensor | None = None) -> None:
        if images.ndim != 4 or images.shape[1] != self.in_channels:
            raise ValueError(f"images must be (B, {self.in_channels}, H, W), got shape {tuple(images.shape)}")
        if masks is not None:
            expected = (images.shape[0], 1, *images.shape[-2:])
            if tuple(masks.shape) != expected:
                raise ValueError(
                    f"masks must have shape {expected} to match images, got {tuple(masks.shape)}"
                )

    def loss_terms(
        self, images: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The loss terms for given timesteps and noise (deterministic; used by :meth:`training_loss`).

        Parameters
        ----------
        images : (B, C, H, W)
        x0 : (B, 1, H, W) masks scaled to [-1, 1]
        t : (B,) long timesteps in [0, T)
        noise : (B, 1, H, W) standard normal noise

        Returns
        -------
        dict with scalar tensors ``loss``, ``mse``, ``vlb`` and ``kl`` (``kl`` is 0 when disabled).
        """
        x_t = self.schedule.q_sample(x0, t, noise)
        eps, v = self.denoiser(torch.cat([images, x_t], dim=1), t)
        mse = ((noise - eps) ** 2).mean()
        zero = mse.new_zeros(())
        vlb = self.schedule.vlb_terms(x0, x_t, t, eps.detach(), v).mean() if v is not None else zero
        kl = zero
        if self.mask_encoder is not None and self.eps_encoder is not None:
            q_mask = self.mask_encoder(images, x0)
            p_eps = self.eps_encoder(images, eps)
            kl = kl_divergence(q_mask, p_eps).mean()
        loss = mse + float(self.config["vlb_weight"]) * vlb + self.kl_weight * kl
        return {"loss": loss, "mse": mse, "vlb": vlb, "kl": kl}

    def training_loss(
        self, images: torch.Tensor, masks: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Hybrid diffusion loss + weighted ambiguity KL at uniformly drawn timesteps (global torch RNG)."""
        self._check_inputs(images, masks)
        x0 = masks.to(images.dtype) * 2.0 - 1.0
        t = torch.randint(0, self.schedule.T, (images.shape[0],), device=images.device)
        noise = torch.randn_like(x0)
        terms = self.loss_terms(images, x0, t, noise)
        return terms["loss"], {k: float(v.detach()) for k, v in terms.items()}

    def make_optimizer(self) -> torch.optim.Optimizer:
        """AdamW over the denoiser AND both ambiguity encoders (the EMA buffers are not parameters)."""
        groups = [{"params": list(self.denoiser.parameters()), "name": "denoiser"}]
        for name in ("mask_encoder", "eps_encoder"):
            enc = getattr(self, name)
            if enc is not None:
                groups.append({"params": list(enc.parameters()), "name": name})
        return torch.optim.AdamW(
            groups, lr=float(self.config["lr"]), weight_decay=float(self.config["weight_decay"])
        )

    @torch.no_grad()
    def on_train_step_end(self) -> None:
        """EMA update of the denoiser weights, decay ``min(ema_decay, (1 + k) / (10 + k))`` at update k.

        The warm-up keeps short (CPU-small) runs from sampling with weights dominated by the random init.
        """
        k = int(self.ema.num_updates)
        decay = min(float(self.config["ema_decay"]), (1.0 + k) / (10.0 + k))
        for pname, p in self.denoiser.named_parameters():
            getattr(self.ema, _ema_key(pname)).lerp_(p.detach(), 1.0 - decay)
        self.ema.num_updates += 1

    def ema_parameters(self) -> dict[str, torch.Tensor]:
        """The EMA weights keyed like ``self.denoiser.named_parameters()``."""
        return {pname: getattr(self.ema, _ema_key(pname)) for pname, _ in self.denoiser.named_parameters()}

    # ------------------------------------------------------------------ sampling
    def set_sampling(self, sampler: str, steps: int, eta: float | None = None) -> None:
        """Choose the sampler (``"ddpm"`` or ``"ddim"``) and its number of steps for :meth:`sample`."""
        cfg = {**self.config, "sampler": sampler, "sampling_steps": int(steps)}
        if eta is not None:
            cfg["eta"] = float(eta)
        _check_config(cfg)
        self.config = cfg

    def make_sampler(self) -> DiffusionSampler:
        """The :class:`DiffusionSampler` described by the current config."""
        return DiffusionSampler(
            self.schedule,
            method=self.config["sampler"],
            steps=int(self.config["sampling_steps"]),
            eta=float(self.config["eta"]),
            clip_x0=bool(self.config["clip_x0"]),
            progress=bool(self.config["progress"]),
        )

    @torch.no_grad()
    def sample(
        self, images: torch.Tensor, n: int, generator: torch.Generator | None = None, use_ema: bool = True
    ) -> torch.Tensor:
        """Draw ``n`` masks per image in one batch of ``B * n``: (B, n, H, W) probabilities in [0, 1].

        Uses the EMA weights (``use_ema``), ``config["sampler"]`` with ``config["sampling_steps"]`` steps
        (see :meth:`set_sampling`); all noise comes from ``generator``.
        """
        self._check_inputs(images)
        if int(n) < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        B, _, H, W = images.shape
        cond = images.repeat_interleave(int(n), dim=0)
        params = self.ema_parameters() if use_ema else None

        def model_fn(x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
            inp = torch.cat([cond, x], dim=1)
            if params is None:
                return self.denoiser(inp, t)
            return functional_call(self.denoiser, params, (inp, t))

        was_training = self.training
        self.eval()
        try:
            x0 = self.make_sampler().sample(
                model_fn, (B * int(n), 1, H, W), generator=generator, device=images.device, dtype=images.dtype
            )
        finally:
            self.train(was_training)
        return ((x0 + 1.0) / 2.0).clamp(0.0, 1.0).reshape(B, int(n), H, W)


def build(config: dict[str, Any], in_channels: int) -> CIMD:
    """Registry builder: ``CIMD(config, in_channels)``."""
    return CIMD(config, in_channels)
