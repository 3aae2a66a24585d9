"""Gaussian latent encoders (Kohl et al. 2018 style prior / posterior nets) and their mixture variants.

:class:`GaussianEncoder` maps an input (the image for a prior net, the image concatenated with a mask for a
posterior net) through a convolutional encoder, averages globally over space, and reads a latent
distribution off a 1×1 convolution:

* ``covariance="diagonal"`` (default, Prob. U-Net): ``Independent(Normal(mu, sigma), 1)``;
* ``covariance="full"``: ``MultivariateNormal(mu, scale_tril=L)`` with a positive diagonal;
* ``covariance="lowrank"``: ``LowRankMultivariateNormal(mu, cov_factor, cov_diag)`` of rank ``rank``.

:class:`MixtureGaussianEncoder` (Generalized Prob. U-Net, Bhat et al. 2022) returns a
``MixtureSameFamily`` of ``n_components`` diagonal Gaussians; :func:`rsample_mixture` draws a differentiable
sample from it (straight-through Gumbel-softmax component choice) and :func:`kl_divergence` falls back to a
Monte-Carlo estimate when no closed form exists.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import distributions as D
from torch import nn

from .unet import Encoder, channel_list

COVARIANCES = ("diagonal", "full", "lowrank")
INITS = ("small", "default", "released")


def _truncated_normal_(tensor: torch.Tensor, std: float) -> torch.Tensor:
    """In-place N(0, std^2) truncated at +-2 std."""
    return nn.init.trunc_normal_(tensor, mean=0.0, std=std, a=-2.0 * std, b=2.0 * std)


def released_init_(trunk: nn.Module, head: nn.Linear) -> None:
    """Initialise an encoder as the released CIMD / Prob. U-Net (PyTorch port) code does.

    Every convolution of the trunk: Kaiming-normal weights (fan-in, ReLU gain) and biases from a
    normal of std 1e-3 truncated at 2 std; the output head (a 1x1 convolution there, a linear layer on
    the pooled features here -- the same map): Kaiming-normal weights and **N(0, 1) biases**, so the two
    encoders start as different random Gaussians (a KL between them of the order of 100 nats).
    """
    for m in trunk.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                _truncated_normal_(m.bias, 1e-3)
    nn.init.kaiming_normal_(head.weight, mode="fan_in", nonlinearity="relu")
    nn.init.normal_(head.bias, mean=0.0, std=1.0)


class _PooledEncoder(nn.Module):
    """Conv encoder + global average pool -> (B, features)."""

    def __init__(
        self, in_channels: int, base_channels: int, mults: Sequence[float], n_convs: int, norm: bool
    ) -> None:
        super().__init__()
        self.encoder = Encoder(in_channels, channel_list(base_channels, mults), n_convs, norm)
        self.in_channels = in_channels
        self.out_features = self.encoder.channels[-1]

    def forward(self, x: torch.Tensor, seg: torch.Tensor | None = None) -> torch.Tensor:
        if seg is not None:
            if seg.dim() == 3:
                seg = seg.unsqueeze(1)
            x = torch.cat([x, seg.to(x.dtype)], dim=1)
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"encoder expects (B, {self.in_channels}, H, W) input (image channels + mask channels), "
                f"got {tuple(x.shape)}"
            )
        return self.encoder(x)[-1].mean(dim=(2, 3))


class GaussianEncoder(nn.Module):
    """Convolutional encoder to a Gaussian over a ``latent_dim``-dimensional latent.

    Parameters
    ----------
    in_channels : int
        Input channels, including the mask channel(s) for a posterior net.
    latent_dim : int
        Dimension of the latent (6 in Kohl et al. 2018).
    base_channels : int
        Width of the first level.
    mults : sequence of float
        Width multipliers per level (one average-pool downsampling between levels).
    covariance : {"diagonal", "full", "lowrank"}
    rank : int
        Rank of the low-rank factor (``covariance="lowrank"`` only).
    n_convs, norm :
        Per-level convolutions and GroupNorm switch.
    init : {"small", "released"}
        ``"small"``: PyTorch default trunk, head weights N(0, 1e-3^2) and zero bias, so the encoder starts
        at (nearly) N(0, I) for every input; ``"default"``: PyTorch's default initialisation everywhere
        (the code depends on the input from the first step); ``"released"``: :func:`released_init_`.

    ``forward(x, seg=None)`` concatenates ``seg`` (B, 1, H, W) to ``x`` along channels when given, and returns
    a ``torch.distributions`` object with batch shape ``(B,)`` and event shape ``(latent_dim,)``.
    """

    def __init__(
        self,
        in_channels: int,
        latent_dim: int,
        base_channels: int = 32,
        mults: Sequence[float] = (1, 2, 4, 8),
        covariance: str = "diagonal",
        rank: int = 1,
        n_convs: int = 2,
        norm: bool = True,
        init: str = "small",
    ) -> None:
        super().__init__()
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        if covariance not in COVARIANCES:
            raise ValueError(f"covariance must be one of {COVARIANCES}, got {covariance!r}")
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
        if covariance == "lowrank" and rank < 1:
            raise ValueError(f"rank must be >= 1 for a low-rank covariance, got {rank}")
        self.latent_dim = int(latent_dim)
        self.covariance = covariance
        self.rank = int(rank)
        self.trunk = _PooledEncoder(in_channels, base_channels, mults, n_convs, norm)
        n_out = 2 * latent_dim
        if covariance == "full":
            n_out = latent_dim + latent_dim * (latent_dim + 1) // 2
        elif covariance == "lowrank":
            n_out = 2 * latent_dim + latent_dim * rank
        self.head = nn.Linear(self.trunk.out_features, n_out)
        if init == "released":
            released_init_(self.trunk, self.head)
        elif init == "small":
            # start near N(0, I): small weights on the head (as the 1x1 conv init in Kohl et al.)
            nn.init.normal_(self.head.weight, std=1e-3)
            nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor, seg: torch.Tensor | None = None) -> D.Distribution:
        h = self.head(self.trunk(x, seg))
        d = self.latent_dim
        mu = h[:, :d]
        if self.covariance == "diagonal":
            return D.Independent(D.Normal(mu, torch.exp(h[:, d:])), 1)
        if self.covariance == "lowrank":
            cov_diag = torch.exp(h[:, d : 2 * d])
            factor = h[:, 2 * d :].reshape(-1, d, self.rank)
            return D.LowRankMultivariateNormal(mu, factor, cov_diag)
        rows, cols = torch.tril_indices(d, d, device=h.device)
        tril = h.new_zeros(h.shape[0], d, d)
        tril[:, rows, cols] = h[:, d:]
        diag = torch.exp(torch.diagonal(tril, dim1=-2, dim2=-1))
        tril = torch.tril(tril, diagonal=-1) + torch.diag_embed(diag)
        return D.MultivariateNormal(mu, scale_tril=tril)


class MixtureGaussianEncoder(nn.Module):
    """Encoder to a mixture of ``n_components`` diagonal Gaussians (Bhat et al. 2022).

    Same parameters as :class:`GaussianEncoder` plus ``n_components``; returns ``MixtureSameFamily`` with
    batch shape ``(B,)`` and event shape ``(latent_dim,)``. Draw training samples with
    :func:`rsample_mixture`.
    """

    def __init__(
        self,
        in_channels: int,
        latent_dim: int,
        n_components: int = 4,
        base_channels: int = 32,
        mults: Sequence[float] = (1, 2, 4, 8),
        n_convs: int = 2,
        norm: bool = True,
    ) -> None:
        super().__init__()
        if n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        self.latent_dim = int(latent_dim)
        self.n_components = int(n_components)
        self.trunk = _PooledEncoder(in_channels, base_channels, mults, n_convs, norm)
        self.head = nn.Linear(self.trunk.out_features, n_components * (2 * latent_dim + 1))
        nn.init.normal_(self.head.weight, std=1e-3)
        with torch.no_grad():
            # spread the component means so the mixture does not start collapsed
            bias = torch.zeros(n_components, 2 * latent_dim + 1)
            bias[:, :latent_dim] = torch.randn(
                n_components, latent_dim, generator=torch.Generator().manual_seed(0)
            )
            self.head.bias.copy_(bias.reshape(-1))

    def forward(self, x: torch.Tensor, seg: torch.Tensor | None = None) -> D.MixtureSameFamily:
        k, d = self.n_components, self.latent_dim
        h = self.head(self.trunk(x, seg)).reshape(-1, k, 2 * d + 1)
        comp = D.Independent(D.Normal(h[..., :d], torch.exp(h[..., d : 2 * d])), 1)
        return D.MixtureSameFamily(D.Categorical(logits=h[..., -1]), comp)


def rsample_mixture(dist: D.MixtureSameFamily, tau: float = 0.5) -> torch.Tensor:
    """Reparameterised sample of a Gaussian mixture: straight-through Gumbel-softmax over components.

    The forward value is an exact sample (one-hot component choice); gradients flow to the mixture weights
    through the relaxed softmax and to the component means/scales through the Gaussian reparameterisation.
    """
    logits = dist.mixture_distribution.logits  # (B, K)
    weights = F.gumbel_softmax(logits, tau=tau, hard=True)  # (B, K), one-hot forward
    comps = dist.component_distribution.rsample()  # (B, K, D)
    return (weights.unsqueeze(-1) * comps).sum(dim=1)


def sample_latent(dist: D.Distribution, tau: float = 0.5) -> torch.Tensor:
    """Differentiable sample of any encoder output (mixture or Gaussian)."""
    if isinstance(dist, D.MixtureSameFamily):
        return rsample_mixture(dist, tau)
    return dist.rsample()


def kl_divergence(q: D.Distribution, p: D.Distribution, z: torch.Tensor | None = None) -> torch.Tensor:
    """KL(q || p) per batch element: closed form where torch has one, else the one-sample estimate
    ``log q(z) - log p(z)`` at ``z`` (a sample of ``q``; drawn here if not given)."""
    try:
        return D.kl_divergence(q, p)
    except NotImplementedError:
        if z is None:
            z = sample_latent(q)
        return q.log_prob(z) - p.log_prob(z)


def sample_with_generator(
    dist: D.Distribution, n: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``n`` samples (n, B, latent_dim) of an encoder output, reproducible under ``generator``.

    ``torch.distributions`` samplers use the global RNG; this draws the standard-normal / categorical noise
    from ``generator`` and transforms it, for every distribution the encoders here return.
    """
    if isinstance(dist, D.MixtureSameFamily):
        logits = dist.mixture_distribution.logits  # (B, K)
        comp = dist.component_distribution.base_dist  # Normal (B, K, D)
        b, k = logits.shape
        idx = torch.multinomial(logits.softmax(-1), n, replacement=True, generator=generator).T  # (n, B)
        eps = torch.randn(
            (n, *comp.loc.shape), generator=generator, device=logits.device, dtype=comp.loc.dtype
        )
        z = comp.loc + comp.scale * eps  # (n, B, K, D)
        return torch.gather(z, 2, idx[..., None, None].expand(n, b, 1, z.shape[-1])).squeeze(2)
    if isinstance(dist, D.Independent) and isinstance(dist.base_dist, D.Normal):
        loc, scale = dist.base_dist.loc, dist.base_dist.scale
        eps = torch.randn((n, *loc.shape), generator=generator, device=loc.device, dtype=loc.dtype)
        return loc + scale * eps
    if isinstance(dist, D.LowRankMultivariateNormal):
        loc, w = dist.loc, dist.cov_factor
        e1 = torch.randn((n, *loc.shape), generator=generator, device=loc.device, dtype=loc.dtype)
        e2 = torch.randn(
            (n, *w.shape[:-2], w.shape[-1]), generator=generator, device=loc.device, dtype=loc.dtype
        )
        return loc + (w @ e2.unsqueeze(-1)).squeeze(-1) + dist.cov_diag.sqrt() * e1
    if isinstance(dist, D.MultivariateNormal):
        loc = dist.loc
        eps = torch.randn((n, *loc.shape), generator=generator, device=loc.device, dtype=loc.dtype)
        return loc + (dist.scale_tril @ eps.unsqueeze(-1)).squeeze(-1)
    raise TypeError(f"cannot sample {type(dist).__name__} with a generator")
