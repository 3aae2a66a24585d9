"""Is the latent used? Diagnostics of a CIMD variant on a batch of (image, annotation) pairs.

:func:`latent_diagnostics` measures, for any variant:

* **active units** (Burda et al. 2016): latent dimension ``d`` is active when the variance over the batch
  of the posterior mean, :math:`\\mathrm{Var}_x\\, E_{q(z|x)}[z_d]`, exceeds ``threshold`` (0.01); a latent
  whose posterior ignores the annotation has none;
* **shuffled-z loss increase** (``cimd-latent`` only, the only variant whose denoiser reads ``z``): the
  per-sample diffusion MSE with ``z`` drawn from the posterior of *another* pair of the batch (rolled by
  one) minus the MSE with the pair's own ``z``, same timesteps and noise, averaged per timestep bin, with
  its standard error. Positive means the denoiser uses the information ``z`` carries about the mask;
* **KL gradient share**: :math:`\\|\\nabla_\\theta \\mathrm{KL}\\| / \\|\\nabla_\\theta \\mathrm{MSE}\\|`
  over the denoiser's parameters :math:`\\theta` (the KL term as it enters the loss, weight included);
  ``official``/``paper`` act on the denoiser only through it; ``latent``'s KL does not touch the denoiser
  (0 by construction: its encoders are reached through ``z`` instead, see ``mse_grad_posterior``);
* **z effect on masks** (``latent``): the fraction of pixels whose thresholded (0.5) mask changes
  between two codes drawn from the prior with the same :math:`x_T` (DDIM, ``z_effect_steps`` steps).

Run it on a checkpoint::

    python -m cimd_model.diffusion.diagnostics --checkpoint runs/cimd-latent --n 32 --json diag.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass

import torch

from .cimd import CIMD

__all__ = ["LatentDiagnostics", "latent_diagnostics", "main"]


@dataclass(frozen=True)
class LatentDiagnostics:
    """Result of :func:`latent_diagnostics` (``None`` where a quantity does not apply to the variant)."""

    model: str
    variant: str
    n_pairs: int
    latent_dim: int | None
    active_units: int | None
    unit_variances: tuple[float, ...] | None
    kl_nats: float | None
    t_bins: tuple[tuple[int, int], ...]
    shuffle_increase: tuple[float, ...] | None
    shuffle_se: tuple[float, ...] | None
    mse_own: tuple[float, ...] | None
    kl_grad_share: float
    mse_grad_posterior: float | None
    z_mask_change: float | None

    def to_dict(self) -> dict:
        """JSON-serialisable dict."""
        return asdict(self)


def _bins(T: int, n_bins: int) -> list[tuple[int, int]]:
    edges = [round(i * T / n_bins) for i in range(n_bins + 1)]
    return [(edges[i], edges[i + 1]) for i in range(n_bins) if edges[i + 1] > edges[i]]


def _grad_norm(loss: torch.Tensor, params: list[torch.Tensor]) -> float:
    if not loss.requires_grad:
        return 0.0
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads if g is not None))


def latent_diagnostics(
    model: CIMD,
    images: torch.Tensor,
    masks: torch.Tensor,
    n_bins: int = 5,
    repeats: int = 4,
    threshold: float = 0.01,
    z_effect_steps: int = 10,
    generator: torch.Generator | None = None,
) -> LatentDiagnostics:
    """Diagnostics of ``model`` on the pairs ``images`` (B, C, H, W) / ``masks`` (B, 1, H, W) in {0, 1}.

    Parameters
    ----------
    model : CIMD (any variant); its current (not EMA) weights are used for the loss quantities, as in
        training, and the EMA weights for the sampled masks
    n_bins : number of equal-width timestep bins of ``[0, T)``
    repeats : draws of (t, noise, z) per pair and bin for the shuffled-z increase
    threshold : active-unit threshold on the variance of the posterior mean
    z_effect_steps : DDIM steps for the z-effect measurement (0 skips it)
    generator : source of all randomness (default: a generator seeded with 0)

    Raises
    ------
    ValueError
        If fewer than two pairs are given or the shapes disagree.
    """
    model._check_inputs(images, masks)
    B = images.shape[0]
    if B < 2:
        raise ValueError(f"need at least 2 (image, mask) pairs to shuffle z, got {B}")
    if n_bins < 1 or repeats < 1:
        raise ValueError(f"n_bins and repeats must be >= 1, got {n_bins}, {repeats}")
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    dev = images.device

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=g).to(dev)

    T = model.schedule.T
    bins = _bins(T, n_bins)
    x0 = masks.to(images.dtype) * 2.0 - 1.0
    was_training = model.training
    model.train()  # the loss as in training (no dropout in the shipped configs)
    try:
        latent_dim = active = variances = kl_nats = None
        with torch.no_grad():
            if model.mask_encoder is not None:
                q = model.posterior(images, x0)
                mu = q.base_dist.loc
                latent_dim = int(mu.shape[1])
                var = mu.double().var(dim=0, unbiased=True)
                variances = tuple(float(v) for v in var)
                active = int((var > threshold).sum())
        # shuffled z
        inc = se = own_mean = None
        if model.uses_latent:
            inc, se, own_mean = [], [], []
            roll = torch.roll(torch.arange(B, device=dev), 1)
            with torch.no_grad():
                q = model.posterior(images, x0)
                for lo, hi in bins:
                    diffs, owns = [], []
                    for _ in range(repeats):
                        t = torch.randint(lo, hi, (B,), generator=g).to(dev)
                        noise = randn(*x0.shape)
                        z = q.base_dist.loc + q.base_dist.scale * randn(B, latent_dim)
                        x_t = model.schedule.q_sample(x0, t, noise)
                        own = ((noise - model.denoise(images, x_t, t, z)[0]) ** 2).mean(dim=(1, 2, 3))
                        shuf = ((noise - model.denoise(images, x_t, t, z[roll])[0]) ** 2).mean(dim=(1, 2, 3))
                        diffs.append(shuf - own)
                        owns.append(own)
                    d = torch.cat(diffs).double()
                    inc.append(float(d.mean()))
                    se.append(float(d.std(unbiased=True) / math.sqrt(d.numel())))
                    own_mean.append(float(torch.cat(owns).mean()))
        # gradient shares
        t = torch.randint(0, T, (B,), generator=g).to(dev)
        noise = randn(*x0.shape)
        z_noise = randn(B, model.denoiser.latent_dim) if model.uses_latent else None
        terms = model.loss_terms(images, x0, t, noise, z_noise=z_noise)
        theta = [p for p in model.denoiser.parameters() if p.requires_grad]
        g_mse = _grad_norm(terms["mse"], theta)
        g_kl = _grad_norm(terms["kl_term"], theta)
        share = g_kl / g_mse if g_mse > 0 else float("nan")
        mse_grad_posterior = None
        if model.uses_latent:
            phi = [p for p in model.mask_encoder.parameters() if p.requires_grad]
            mse_grad_posterior = _grad_norm(terms["mse"], phi)
        if model.mask_encoder is not None:
            kl_nats = float(terms["kl"].detach())
    finally:
        model.train(was_training)
    change = None
    if model.uses_latent and z_effect_steps > 0:
        saved, shown = dict(model.config), model.progress
        try:
            model.set_sampling("ddim", min(int(z_effect_steps), T), eta=0.0)
            model.set_progress(False)
            x_T = randn(B, 1, *images.shape[-2:])
            za, zb = model.prior_latents(images, 1, g), model.prior_latents(images, 1, g)
            a = model.sample(images, 1, x_T=x_T, z=za)
            b = model.sample(images, 1, x_T=x_T, z=zb)
            change = float(((a > 0.5) != (b > 0.5)).double().mean())
        finally:
            model.config = saved
            model.set_progress(shown)
    return LatentDiagnostics(
        model=model.name,
        variant=model.variant,
        n_pairs=B,
        latent_dim=latent_dim,
        active_units=active,
        unit_variances=variances,
        kl_nats=kl_nats,
        t_bins=tuple(bins),
        shuffle_increase=None if inc is None else tuple(inc),
        shuffle_se=None if se is None else tuple(se),
        mse_own=None if own_mean is None else tuple(own_mean),
        kl_grad_share=share,
        mse_grad_posterior=mse_grad_posterior,
        z_mask_change=change,
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m cimd_model.diffusion.diagnostics``: print (and optionally save) the diagnostics as JSON."""
    p = argparse.ArgumentParser(
        prog="python -m cimd_model.diffusion.diagnostics", description=__doc__.split("\n")[0]
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint file or training output folder")
    p.add_argument("--data", default=None, help="data spec (default: the training data set)")
    p.add_argument("--split", default="train", choices=["train", "val", "test"])
    p.add_argument(
        "--n", type=int, default=32, help="(image, annotation) pairs: image i with annotator i mod M"
    )
    p.add_argument("--bins", type=int, default=5)
    p.add_argument("--repeats", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the result here")
    args = p.parse_args(argv)
    from ..data import load_dataset
    from ..fileio import write_text
    from ..train import load_model

    try:
        model, ckpt = load_model(args.checkpoint)
        if not isinstance(model, CIMD):
            raise ValueError(f"{args.checkpoint} holds a {model.name!r} model, not a CIMD variant")
        run = ckpt.get("run", {})
        spec = args.data or run.get("data")
        if not spec:
            raise ValueError("the checkpoint names no data set; pass --data")
        kw = dict(run.get("data_kwargs", {})) if args.data is None else {}
        kw.pop("n", None)
        data = load_dataset(spec, args.split, seed=int(run.get("seed", 0)), **kw)
        items = [data[i] for i in range(min(args.n, len(data)))]
        images = torch.stack([it["image"] for it in items])
        masks = torch.stack([it["masks"][i % it["masks"].shape[0]] for i, it in enumerate(items)])[:, None]
        result = latent_diagnostics(
            model,
            images,
            masks.float(),
            args.bins,
            args.repeats,
            generator=torch.Generator().manual_seed(args.seed),
        )
    except (ValueError, FileNotFoundError) as exc:
        print(f"diagnostics: error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(result.to_dict(), indent=2)
    print(text)
    if args.json:
        write_text(args.json, text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
