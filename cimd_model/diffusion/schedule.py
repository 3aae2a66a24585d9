"""The Gaussian diffusion noise schedule: closed forms of the forward process and of its posterior.

Everything here is plain tensor math on the schedule of Ho et al. (2020) with the learned-variance
extension of Nichol & Dhariwal (2021); there is no network and no sampling loop (see
:mod:`cimd_model.diffusion.sampler`).

Notation (``t`` is 0-based, ``t = 0 .. T-1``):

* :math:`\\beta_t` linear from ``beta_start`` to ``beta_end``; :math:`\\alpha_t = 1 - \\beta_t`;
  :math:`\\bar\\alpha_t = \\prod_{s \\le t} \\alpha_s`, :math:`\\bar\\alpha_{-1} = 1`.
* forward: :math:`q(x_t | x_0) = N(\\sqrt{\\bar\\alpha_t} x_0, (1 - \\bar\\alpha_t) I)`.
* posterior: :math:`q(x_{t-1} | x_t, x_0) = N(\\tilde\\mu_t, \\tilde\\beta_t I)` with
  :math:`\\tilde\\beta_t = \\beta_t (1 - \\bar\\alpha_{t-1}) / (1 - \\bar\\alpha_t)`.

The same formulas hold between any two steps ``t > s`` of a sub-sequence (respaced sampling) with
:math:`\\beta_{t|s} = 1 - \\bar\\alpha_t / \\bar\\alpha_s`; :meth:`DiffusionSchedule.step_coefficients`
computes them, so the sampler needs no second schedule object for fewer steps.
"""

from __future__ import annotations

import math

import torch

__all__ = ["DiffusionSchedule", "normal_kl", "discretized_gaussian_log_likelihood", "linear_betas"]


def linear_betas(T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Linear :math:`\\beta` schedule of length ``T`` (float64).

    Raises
    ------
    ValueError
        If ``T < 1`` or the betas are not in (0, 1) or not increasing.
    """
    if int(T) < 1:
        raise ValueError(f"T must be >= 1, got {T}")
    if not (0.0 < beta_start <= beta_end < 1.0):
        raise ValueError(
            f"need 0 < beta_start <= beta_end < 1, got beta_start={beta_start}, beta_end={beta_end}"
        )
    return torch.linspace(beta_start, beta_end, int(T), dtype=torch.float64)


def _extract(values: torch.Tensor, t: torch.Tensor, ndim: int, dtype: torch.dtype) -> torch.Tensor:
    """``values[t]`` as a (B, 1, 1, ...) tensor with ``ndim`` dims, cast to ``dtype`` on ``t``'s device."""
    out = values.to(t.device)[t].to(dtype)
    return out.reshape(t.shape[0], *([1] * (ndim - 1)))


def normal_kl(
    mean1: torch.Tensor, logvar1: torch.Tensor, mean2: torch.Tensor, logvar2: torch.Tensor
) -> torch.Tensor:
    """Elementwise KL( N(mean1, exp(logvar1)) || N(mean2, exp(logvar2)) ) in nats."""
    return 0.5 * (
        -1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2)
    )


def _std_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def discretized_gaussian_log_likelihood(
    x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor, bin_width: float = 2.0 / 255.0
) -> torch.Tensor:
    """Elementwise log-likelihood of data ``x`` in [-1, 1] under a Gaussian discretised into bins.

    The bin of ``x`` is ``[x - w/2, x + w/2]``; the two edge bins extend to -inf / +inf (so the values
    -1 and 1 of a binary mask get all the mass beyond them).

    Parameters
    ----------
    x, mean, log_scale : tensors of the same shape (``log_scale`` is the log standard deviation)
    bin_width : float
        Width of a bin (2/255 for 8-bit data scaled to [-1, 1]).
    """
    if x.shape != mean.shape or x.shape != log_scale.shape:
        raise ValueError(
            f"shapes differ: x {tuple(x.shape)}, mean {tuple(mean.shape)}, log_scale {tuple(log_scale.shape)}"
        )
    centered = x - mean
    inv_std = torch.exp(-log_scale)
    cdf_plus = _std_normal_cdf(inv_std * (centered + bin_width / 2))
    cdf_min = _std_normal_cdf(inv_std * (centered - bin_width / 2))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    edge = 1.0 - bin_width / 2
    return torch.where(x < -edge, log_cdf_plus, torch.where(x > edge, log_one_minus_cdf_min, log_delta))


class DiffusionSchedule:
    """Precomputed schedule quantities (float64) and the closed forms built on them.

    Parameters
    ----------
    T : int
        Number of diffusion steps (1000 in the paper).
    beta_start, beta_end : float
        Ends of the linear :math:`\\beta` schedule (1e-4 and 0.02 in the paper).

    Attributes
    ----------
    betas, alphas_cumprod, alphas_cumprod_prev : (T,) float64 tensors
    posterior_variance : (T,) :math:`\\tilde\\beta_t` (0 at t = 0)
    posterior_log_variance_clipped : (T,) its log, with the t = 0 entry replaced by that of t = 1
    posterior_mean_coef1, posterior_mean_coef2 : (T,) so that
        :math:`\\tilde\\mu_t = c_1 x_0 + c_2 x_t`
    """

    def __init__(self, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> None:
        self.T = int(T)
        self.betas = linear_betas(self.T, beta_start, beta_end)
        alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(alphas, dim=0)
        self.alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]])
        self.posterior_variance = self.betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        if self.T > 1:
            clipped = torch.cat([self.posterior_variance[1:2], self.posterior_variance[1:]])
        else:
            clipped = self.betas.clone()
        self.posterior_log_variance_clipped = torch.log(clipped)
        self.posterior_mean_coef1 = (
            self.betas * torch.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        )
        self.posterior_mean_coef2 = (
            (1.0 - self.alphas_cumprod_prev) * torch.sqrt(alphas) / (1.0 - self.alphas_cumprod)
        )

    # ------------------------------------------------------------------ checks
    def _check_t(self, t: torch.Tensor, x: torch.Tensor) -> None:
        if t.ndim != 1 or t.shape[0] != x.shape[0]:
            raise ValueError(
                f"t must have shape ({x.shape[0]},) to match x {tuple(x.shape)}, got {tuple(t.shape)}"
            )
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= self.T):
            raise ValueError(f"t must lie in [0, {self.T - 1}], got range [{int(t.min())}, {int(t.max())}]")

    # ------------------------------------------------------------------ forward process
    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Draw :math:`x_t \\sim q(x_t | x_0)` given the standard-normal ``noise``."""
        self._check_t(t, x0)
        a = _extract(self.alphas_cumprod, t, x0.ndim, x0.dtype)
        return a.sqrt() * x0 + (1.0 - a).sqrt() * noise

    def q_mean_variance(self, x0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of :math:`q(x_t | x_0)`."""
        self._check_t(t, x0)
        a = _extract(self.alphas_cumprod, t, x0.ndim, x0.dtype)
        return a.sqrt() * x0, (1.0 - a).expand_as(x0)

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Invert :meth:`q_sample`.

        :math:`x_0 = (x_t - \\sqrt{1-\\bar\\alpha_t}\\,\\epsilon) / \\sqrt{\\bar\\alpha_t}`.
        """
        self._check_t(t, x_t)
        a = _extract(self.alphas_cumprod, t, x_t.ndim, x_t.dtype)
        return (x_t - (1.0 - a).sqrt() * eps) / a.sqrt()

    def predict_eps(self, x_t: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """The noise that maps ``x0`` to ``x_t`` at step ``t`` (inverse of :meth:`predict_x0` in ``eps``)."""
        self._check_t(t, x_t)
        a = _extract(self.alphas_cumprod, t, x_t.ndim, x_t.dtype)
        return (x_t - a.sqrt() * x0) / (1.0 - a).sqrt()

    # ------------------------------------------------------------------ posterior
    def q_posterior(
        self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean, variance and clipped log-variance of :math:`q(x_{t-1} | x_t, x_0)`."""
        self._check_t(t, x_t)
        c1 = _extract(self.posterior_mean_coef1, t, x_t.ndim, x_t.dtype)
        c2 = _extract(self.posterior_mean_coef2, t, x_t.ndim, x_t.dtype)
        var = _extract(self.posterior_variance, t, x_t.ndim, x_t.dtype).expand_as(x_t)
        logvar = _extract(self.posterior_log_variance_clipped, t, x_t.ndim, x_t.dtype).expand_as(x_t)
        return c1 * x0 + c2 * x_t, var, logvar

    def learned_log_variance(self, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Log-variance of :math:`p(x_{t-1}|x_t)` from the network's raw variance output ``v``.

        ``v`` in [-1, 1] interpolates (in log space) between :math:`\\tilde\\beta_t` (v = -1) and
        :math:`\\beta_t` (v = 1), as in Nichol & Dhariwal (2021); values outside are not clamped.
        """
        self._check_t(t, v)
        min_log = _extract(self.posterior_log_variance_clipped, t, v.ndim, v.dtype)
        max_log = _extract(torch.log(self.betas), t, v.ndim, v.dtype)
        frac = (v + 1.0) / 2.0
        return frac * max_log + (1.0 - frac) * min_log

    def p_mean_logvar(
        self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, v: torch.Tensor, clip: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean and log-variance of the model's reverse step, and its :math:`\\hat x_0`.

        Parameters
        ----------
        x_t, eps, v : (B, ...) tensors
            Noisy input, predicted noise, raw variance output.
        t : (B,) long tensor
        clip : bool
            Clip :math:`\\hat x_0` to [-1, 1] before forming the mean (used at sampling time).
        """
        x0 = self.predict_x0(x_t, t, eps)
        if clip:
            x0 = x0.clamp(-1.0, 1.0)
        mean, _, _ = self.q_posterior(x0, x_t, t)
        return mean, self.learned_log_variance(v, t), x0

    # ------------------------------------------------------------------ variational bound
    def vlb_terms(
        self,
        x0: torch.Tensor,
        x_t: torch.Tensor,
        t: torch.Tensor,
        eps: torch.Tensor,
        v: torch.Tensor,
        bin_width: float = 2.0 / 255.0,
    ) -> torch.Tensor:
        """Per-sample variational-bound term :math:`L_t` in bits per dimension, shape (B,).

        For ``t > 0`` it is :math:`KL(q(x_{t-1}|x_t,x_0) \\| p(x_{t-1}|x_t))`; for ``t = 0`` the
        decoder negative log-likelihood :math:`-\\log p(x_0|x_1)` with a discretised Gaussian.
        Pass ``eps.detach()`` to train only the variance through this term (the hybrid loss).
        """
        true_mean, _, true_logvar = self.q_posterior(x0, x_t, t)
        mean, logvar, _ = self.p_mean_logvar(x_t, t, eps, v, clip=False)
        dims = tuple(range(1, x0.ndim))
        kl = normal_kl(true_mean, true_logvar, mean, logvar).mean(dim=dims) / math.log(2.0)
        nll = -discretized_gaussian_log_likelihood(x0, mean, 0.5 * logvar, bin_width).mean(
            dim=dims
        ) / math.log(2.0)
        return torch.where(t == 0, nll, kl)

    # ------------------------------------------------------------------ respacing
    def step_coefficients(self, t: int, s: int) -> dict[str, float]:
        """Coefficients of one reverse step from ``t`` to an earlier step ``s`` (``s = -1``: to data).

        Returns
        -------
        dict with ``abar_t``, ``abar_s`` (:math:`\\bar\\alpha_s`, 1 for ``s = -1``), ``beta``
        (:math:`1 - \\bar\\alpha_t/\\bar\\alpha_s`), ``post_var`` (:math:`\\tilde\\beta`),
        ``post_logvar_clipped`` (log of ``post_var``, or of ``beta`` when ``post_var`` is 0),
        ``coef_x0`` and ``coef_xt`` of the posterior mean.
        """
        if not (0 <= t < self.T) or not (-1 <= s < t):
            raise ValueError(f"need 0 <= t < {self.T} and -1 <= s < t, got t={t}, s={s}")
        abar_t = float(self.alphas_cumprod[t])
        abar_s = 1.0 if s < 0 else float(self.alphas_cumprod[s])
        beta = 1.0 - abar_t / abar_s
        post_var = beta * (1.0 - abar_s) / (1.0 - abar_t)
        return {
            "abar_t": abar_t,
            "abar_s": abar_s,
            "beta": beta,
            "post_var": post_var,
            "post_logvar_clipped": math.log(post_var) if post_var > 0 else math.log(beta),
            "coef_x0": beta * math.sqrt(abar_s) / (1.0 - abar_t),
            "coef_xt": (1.0 - abar_s) * math.sqrt(1.0 - beta) / (1.0 - abar_t),
        }
