"""CIMD: Collectively Intelligent Medical Diffusion (Rahman et al., CVPR 2023), in four variants.

A conditional DDPM (Wolleb et al. 2022) segments by denoising a mask :math:`x_t` concatenated with the
image; drawing ``n`` different starting noises gives ``n`` plausible masks. The paper adds two Gaussian
latent encoders, the *ambiguity modelling network* :math:`q_\\phi(z | image, annotation)` and the
*ambiguity control network* :math:`p_\\psi(z | image, \\hat\\epsilon)` on the network's predicted noise,
and adds :math:`KL(q_\\phi \\| p_\\psi)` with weight ``kl_weight`` (1/1000) to the loss. The released
code's training loss calls the denoiser on the image and :math:`x_t` only, never with a ``z``, so the
encoders can act on the denoiser only through the gradient of that KL with respect to
:math:`\\hat\\epsilon`. Which encoders exist, whether they are trained
and whether ``z`` is used is the *variant* (:mod:`cimd_model.diffusion.ambiguity`):

=================  ==============  ======================================================================
registry name      variant         ambiguity part
=================  ==============  ======================================================================
``cimd-official``  ``official``    released encoders (architecture and init), frozen, KL/1000 in the loss
``cimd-paper``     ``paper``       encoders trained jointly with the denoiser (the paper's text)
``cimd``           ``paper``       the same model under its historical name (old checkpoints load)
``cimd-latent``    ``latent``      our extension: z from q in training, from p(z|image) at test time
``cond-ddpm``      ``none``        no encoders (the ablation)
=================  ==============  ======================================================================

Loss (the "hybrid" loss of Nichol & Dhariwal 2021 plus the variant's KL term)::

    loss = MSE(eps, eps_hat) + vlb_weight * L_vlb(variance only) + KL term of the variant

The deviations from the released code (normalisation flag, batch size, mask range, threshold, encoder
shape) are listed in ``docs/cimd_ablation.md``.

Masks are {0, 1} at the interface and live in [-1, 1] during diffusion; :meth:`CIMD.sample` maps the
final :math:`\\hat x_0` back to [0, 1]. Sampling uses the exponential moving average (EMA) of the
denoiser's weights, kept in buffers (saved in ``state_dict()``, not returned by ``parameters()``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import distributions as D
from torch import nn
from torch.func import functional_call

from ..base import AmbiguousSegModel
from ..nets.encoders import kl_divergence, sample_with_generator
from .ambiguity import VARIANTS, anneal_factor, build_encoders, detached, free_bits_kl, uses_latent
from .config import CONFIGS, check_config
from .denoiser import Denoiser
from .sampler import DiffusionSampler
from .schedule import DiffusionSchedule

__all__ = ["CIMD", "CONFIGS", "build", "build_official", "build_paper", "build_latent", "build_cond_ddpm"]


def _ema_key(name: str) -> str:
    """Buffer name for the EMA copy of parameter ``name`` (buffers may not contain dots)."""
    return name.replace(".", "__")


class CIMD(AmbiguousSegModel):
    """Conditional diffusion segmentation model; the ambiguity part is chosen by ``variant``.

    Parameters
    ----------
    config : dict
        See :data:`CONFIGS`; missing keys are taken from ``CONFIGS["cpu-small"]``.
    in_channels : int
        Image channels.
    variant : {"official", "paper", "latent", "none"}
        See :mod:`cimd_model.diffusion.ambiguity`.
    name : str, optional
        Registry name stored in checkpoints (default: the variant's, e.g. ``"cimd-official"``).

    Attributes
    ----------
    schedule : DiffusionSchedule
    denoiser : Denoiser
        Input: image channels + 1 (the noisy mask) and, for ``latent``, the code ``z``; output: noise and
        variance interpolation.
    mask_encoder, eps_encoder, prior_encoder : GaussianEncoder, present per variant
    ema : nn.Module
        Holds one buffer per denoiser parameter (the EMA weights) and ``num_updates`` (= training steps).
    """

    name = "cimd"

    def __init__(
        self, config: dict[str, Any], in_channels: int, variant: str = "paper", name: str | None = None
    ) -> None:
        cfg = {**CONFIGS["cpu-small"], **dict(config)}
        check_config(cfg)
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
        super().__init__(cfg, in_channels)
        self.variant = variant
        self.name = name or VARIANTS[variant]
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
            latent_dim=int(cfg["latent_dim"]) if uses_latent(variant) else 0,
        )
        self.kl_weight = float(cfg["kl_weight"])
        self.mask_encoder = self.eps_encoder = self.prior_encoder = None
        for attr, module in build_encoders(variant, cfg, self.in_channels).items():
            setattr(self, attr, module)
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

    @property
    def uses_latent(self) -> bool:
        """Whether the denoiser takes a latent code ``z`` (only the ``latent`` variant)."""
        return uses_latent(self.variant)

    def denoise(
        self,
        images: torch.Tensor,
        x_t: torch.Tensor,
        t: torch.Tensor,
        z: torch.Tensor | None = None,
        params: dict[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The denoiser on ``cat[images, x_t]`` (and ``z``), with its own or the given (EMA) weights."""
        inp = torch.cat([images, x_t], dim=1)
        if params is None:
            return self.denoiser(inp, t, z)
        return functional_call(self.denoiser, params, (inp, t), {"z": z})

    def posterior(self, images: torch.Tensor, x0: torch.Tensor) -> D.Distribution:
        """:math:`q(z | image, mask)` for masks ``x0`` in [-1, 1] (``official`` passes {0, 1})."""
        if self.mask_encoder is None:
            raise ValueError(f"model {self.name!r} has no posterior encoder")
        return self.mask_encoder(images, (x0 + 1.0) / 2.0 if self.variant == "official" else x0)

    def loss_terms(
        self,
        images: torch.Tensor,
        x0: torch.Tensor,
        t: torch.Tensor,
        noise: torch.Tensor,
        z_noise: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """The loss terms for given timesteps and noise (deterministic given ``z_noise`` too).

        Parameters
        ----------
        images : (B, C, H, W)
        x0 : (B, 1, H, W) masks scaled to [-1, 1]
        t : (B,) long timesteps in [0, T)
        noise : (B, 1, H, W) standard normal noise
        z_noise : (B, latent_dim) standard normal, the reparameterisation noise of ``z`` (``latent`` only;
            drawn from the global RNG when omitted)

        Returns
        -------
        dict with scalar tensors ``loss``, ``mse``, ``vlb``, ``kl`` (the raw KL in nats per image, 0
        without encoders) and ``kl_term`` (what the KL adds to ``loss``, weights included); ``latent``
        adds ``kl_anneal`` (the current warm-up factor).
        """
        x_t = self.schedule.q_sample(x0, t, noise)
        zero = x0.new_zeros(())
        q = z = None
        if self.uses_latent:
            q = self.posterior(images, x0)
            if z_noise is None:
                z_noise = torch.randn_like(q.base_dist.loc)
            z = q.base_dist.loc + q.base_dist.scale * z_noise
        eps, v = self.denoise(images, x_t, t, z)
        mse = ((noise - eps) ** 2).mean()
        vlb = self.schedule.vlb_terms(x0, x_t, t, eps.detach(), v).mean() if v is not None else zero
        kl, kl_term, extra = zero, zero, {}
        if self.uses_latent:
            p = self.prior_encoder(images)
            penalised, kl = free_bits_kl(q, detached(p), float(self.config["free_bits"]))
            prior_fit = D.kl_divergence(detached(q), p).mean()
            w = float(self.config["latent_kl_weight"])
            anneal = anneal_factor(int(self.ema.num_updates), int(self.config["kl_anneal_steps"]))
            kl_term = w * anneal * penalised + w * prior_fit
            extra = {"kl_anneal": zero + anneal}
        elif self.mask_encoder is not None and self.eps_encoder is not None:
            kl = kl_divergence(self.posterior(images, x0), self.eps_encoder(images, eps)).mean()
            kl_term = self.kl_weight * kl
        loss = mse + float(self.config["vlb_weight"]) * vlb + kl_term
        return {"loss": loss, "mse": mse, "vlb": vlb, "kl": kl, "kl_term": kl_term, **extra}

    def training_loss(
        self, images: torch.Tensor, masks: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Hybrid diffusion loss + the variant's KL term at uniformly drawn timesteps (global torch RNG)."""
        self._check_inputs(images, masks)
        x0 = masks.to(images.dtype) * 2.0 - 1.0
        t = torch.randint(0, self.schedule.T, (images.shape[0],), device=images.device)
        noise = torch.randn_like(x0)
        terms = self.loss_terms(images, x0, t, noise)
        return terms["loss"], {k: float(v.detach()) for k, v in terms.items()}

    def make_optimizer(self) -> torch.optim.Optimizer:
        """AdamW over the denoiser and the *trainable* encoders (``official``'s are frozen; no EMA)."""
        groups = [{"params": list(self.denoiser.parameters()), "name": "denoiser"}]
        for name in ("mask_encoder", "eps_encoder", "prior_encoder"):
            enc = getattr(self, name)
            if enc is not None:
                params = [p for p in enc.parameters() if p.requires_grad]
                if params:
                    groups.append({"params": params, "name": name})
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
        """Choose the sampler (``"ddpm"``, ``"ddim"`` or ``"dpm++"``) and its number of steps."""
        cfg = {**self.config, "sampler": sampler, "sampling_steps": int(steps)}
        if eta is not None:
            cfg["eta"] = float(eta)
        check_config(cfg)
        self.config = cfg

    def make_sampler(self) -> DiffusionSampler:
        """The :class:`DiffusionSampler` described by the current config."""
        return DiffusionSampler(
            self.schedule,
            method=self.config["sampler"],
            steps=int(self.config["sampling_steps"]),
            eta=float(self.config["eta"]),
            clip_x0=bool(self.config["clip_x0"]),
            progress=self.progress,  # a UI setting of the model object (set_progress), not config
        )

    def prior_latents(
        self, images: torch.Tensor, n: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``n`` codes per image from :math:`p(z | image)`, (B * n, latent_dim), image-major (``latent``)."""
        if self.prior_encoder is None:
            raise ValueError(f"model {self.name!r} has no latent prior")
        z = sample_with_generator(self.prior_encoder(images), int(n), generator)  # (n, B, d)
        return z.transpose(0, 1).reshape(-1, z.shape[-1])

    def sample(
        self,
        images: torch.Tensor,
        n: int,
        generator: torch.Generator | None = None,
        use_ema: bool = True,
        x_T: torch.Tensor | None = None,
        z: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Draw ``n`` masks per image: (B, n, H, W) probabilities in [0, 1].

        All ``B * n`` samples go through the network in one batch per step, under
        ``torch.inference_mode``. Uses the EMA weights (``use_ema``), ``config["sampler"]`` with
        ``config["sampling_steps"]`` steps (see :meth:`set_sampling`); all noise comes from ``generator``
        (for ``latent``: first the codes ``z`` from the prior, then :math:`x_T`). ``x_T`` (B * n, 1, H, W)
        and ``z`` (B * n, latent_dim) may be given instead, image-major (sample ``j`` of image ``b`` is
        row ``b * n + j``).
        """
        self._check_inputs(images)
        if int(n) < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if z is not None and not self.uses_latent:
            raise ValueError(f"model {self.name!r} takes no latent code z")
        B, _, H, W = images.shape
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                cond = images.repeat_interleave(int(n), dim=0)
                params = self.ema_parameters() if use_ema else None
                if self.uses_latent and z is None:
                    z = self.prior_latents(images, int(n), generator)
                if z is not None and tuple(z.shape) != (B * int(n), self.denoiser.latent_dim):
                    raise ValueError(
                        f"z must have shape ({B * int(n)}, {self.denoiser.latent_dim}), got {tuple(z.shape)}"
                    )

                def model_fn(x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
                    return self.denoise(cond, x, t, z, params)

                x0 = self.make_sampler().sample(
                    model_fn,
                    (B * int(n), 1, H, W),
                    generator=generator,
                    device=images.device,
                    dtype=images.dtype,
                    x_T=x_T,
                )
                out = ((x0 + 1.0) / 2.0).clamp(0.0, 1.0).reshape(B, int(n), H, W)
        finally:
            self.train(was_training)
        return out.clone()  # a normal tensor: callers may modify it in place


def build(config: dict[str, Any], in_channels: int) -> CIMD:
    """Registry builder of ``cimd``: the ``paper`` variant under its historical name."""
    return CIMD(config, in_channels, variant="paper", name="cimd")


def build_official(config: dict[str, Any], in_channels: int) -> CIMD:
    """Registry builder of ``cimd-official`` (the released code's behaviour)."""
    return CIMD(config, in_channels, variant="official")


def build_paper(config: dict[str, Any], in_channels: int) -> CIMD:
    """Registry builder of ``cimd-paper`` (encoders trained jointly, as the paper's text describes)."""
    return CIMD(config, in_channels, variant="paper")


def build_latent(config: dict[str, Any], in_channels: int) -> CIMD:
    """Registry builder of ``cimd-latent`` (our extension: the denoiser is conditioned on z)."""
    return CIMD(config, in_channels, variant="latent")


def build_cond_ddpm(config: dict[str, Any], in_channels: int) -> CIMD:
    """Registry builder of ``cond-ddpm`` (no ambiguity encoders: the ablation)."""
    return CIMD(config, in_channels, variant="none")
