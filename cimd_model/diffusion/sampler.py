"""Reverse-process samplers: ancestral DDPM, DDIM and DPM-Solver++(2M), on any sub-sequence of the T steps.

A sampler knows the schedule and the step sequence but nothing about the network: it calls a
``model_fn(x_t, t) -> (eps, v)`` where ``t`` holds the ORIGINAL training step indices (so a network
trained with T steps is queried exactly as in training) and ``v`` is the raw learned-variance output
(or ``None`` for a fixed variance). All randomness comes from the ``torch.Generator`` passed to
:meth:`DiffusionSampler.sample`, so a seeded generator gives bit-identical samples.

* **DDPM** (Ho et al. 2020; respacing of Nichol & Dhariwal 2021): ancestral sampling with the
  learned variance interpolated between :math:`\\tilde\\beta` and :math:`\\beta` of the *respaced*
  step :math:`\\beta_{t|s} = 1 - \\bar\\alpha_t / \\bar\\alpha_s`; with ``steps = T`` this is exactly the
  1000-step sampler of the paper.
* **DDIM** (Song et al. 2021): :math:`x_s = \\sqrt{\\bar\\alpha_s}\\hat x_0 +
  \\sqrt{1-\\bar\\alpha_s-\\sigma^2}\\,\\hat\\epsilon + \\sigma z` with
  :math:`\\sigma = \\eta\\sqrt{(1-\\bar\\alpha_s)/(1-\\bar\\alpha_t)}\\sqrt{1-\\bar\\alpha_t/\\bar\\alpha_s}`;
  ``eta = 0`` is deterministic given :math:`x_T`.
* **DPM-Solver++(2M)** (Lu et al. 2022; ``"dpm++"``): the second-order multistep ODE solver in data
  prediction, :class:`~cimd_model.diffusion.dpm_solver.DPMSolverPP2M`; deterministic given :math:`x_T`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from .dpm_solver import DPMSolverPP2M, logsnr_timesteps
from .schedule import DiffusionSchedule

__all__ = ["DiffusionSampler", "timestep_sequence", "SAMPLERS"]

#: the sampler names understood by :class:`DiffusionSampler`
SAMPLERS = ("ddpm", "ddim", "dpm++")

ModelFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, "torch.Tensor | None"]]


def timestep_sequence(T: int, steps: int) -> list[int]:
    """``steps`` training-step indices evenly spread over ``[0, T-1]``, descending, first ``T-1``, last 0.

    Raises
    ------
    ValueError
        If ``steps`` is not in ``[1, T]``.
    """
    if not (1 <= int(steps) <= int(T)):
        raise ValueError(f"steps must be in [1, T={T}], got {steps}")
    steps = int(steps)
    if steps == 1:
        return [int(T) - 1]
    seq = [round(i * (T - 1) / (steps - 1)) for i in range(steps)]
    # evenly spaced values of a range of length >= steps are distinct after rounding
    return sorted(set(seq), reverse=True)


def _randn(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """Standard normal noise drawn on the generator's device (so seeds agree across devices)."""
    gen_device = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=gen_device, dtype=dtype).to(device)


class DiffusionSampler:
    """Draw :math:`x_0` from a trained noise-prediction network.

    Parameters
    ----------
    schedule : DiffusionSchedule
    method : {"ddpm", "ddim", "dpm++"}
    steps : int
        Number of network evaluations (1 .. T). DDPM and DDIM place them uniformly in ``t``
        (:func:`timestep_sequence`), DPM-Solver++ uniformly in log-SNR
        (:func:`~cimd_model.diffusion.dpm_solver.logsnr_timesteps`).
    eta : float
        DDIM stochasticity (0 = deterministic DDIM, 1 = DDPM-like variance); ignored by DDPM and DPM++.
    clip_x0 : bool
        Clip the predicted :math:`\\hat x_0` to [-1, 1] at every step.
    progress : bool
        Show a tqdm bar over the steps.
    """

    def __init__(
        self,
        schedule: DiffusionSchedule,
        method: str = "ddim",
        steps: int = 50,
        eta: float = 0.0,
        clip_x0: bool = True,
        progress: bool = False,
    ) -> None:
        if method not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {method!r}")
        if eta < 0:
            raise ValueError(f"eta must be >= 0, got {eta}")
        self.schedule = schedule
        self.method = method
        if method == "dpm++":
            self.timesteps = logsnr_timesteps(schedule, steps)
        else:
            self.timesteps = timestep_sequence(schedule.T, steps)
        self.eta = float(eta)
        self.clip_x0 = bool(clip_x0)
        self.progress = bool(progress)

    def _x0_eps(self, x: torch.Tensor, eps: torch.Tensor, abar_t: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted (optionally clipped) :math:`\\hat x_0`, and the noise consistent with it."""
        x0 = (x - math.sqrt(1.0 - abar_t) * eps) / math.sqrt(abar_t)
        if self.clip_x0:
            x0 = x0.clamp(-1.0, 1.0)
            eps = (x - math.sqrt(abar_t) * x0) / math.sqrt(1.0 - abar_t)
        return x0, eps

    def _ddpm_step(
        self,
        x: torch.Tensor,
        eps: torch.Tensor,
        v: torch.Tensor | None,
        c: dict[str, float],
        last: bool,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        x0, _ = self._x0_eps(x, eps, c["abar_t"])
        mean = c["coef_x0"] * x0 + c["coef_xt"] * x
        if last:
            return mean
        if v is None:
            logvar = torch.full_like(x, c["post_logvar_clipped"])
        else:
            frac = (v + 1.0) / 2.0
            logvar = frac * math.log(c["beta"]) + (1.0 - frac) * c["post_logvar_clipped"]
        return mean + torch.exp(0.5 * logvar) * _randn(tuple(x.shape), generator, x.device, x.dtype)

    def _ddim_step(
        self,
        x: torch.Tensor,
        eps: torch.Tensor,
        c: dict[str, float],
        last: bool,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        x0, eps = self._x0_eps(x, eps, c["abar_t"])
        if last:
            return x0
        abar_t, abar_s = c["abar_t"], c["abar_s"]
        sigma = self.eta * math.sqrt((1.0 - abar_s) / (1.0 - abar_t)) * math.sqrt(1.0 - abar_t / abar_s)
        out = math.sqrt(abar_s) * x0 + math.sqrt(max(1.0 - abar_s - sigma**2, 0.0)) * eps
        if sigma > 0:
            out = out + sigma * _randn(tuple(x.shape), generator, x.device, x.dtype)
        return out

    @torch.no_grad()
    def sample(
        self,
        model_fn: ModelFn,
        shape: tuple[int, ...],
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        x_T: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run the reverse process from :math:`x_T \\sim N(0, I)` (or the given ``x_T``) to :math:`x_0`.

        Parameters
        ----------
        model_fn : callable ``(x_t, t) -> (eps, v or None)``
        shape : tuple
            Shape of the sample batch, e.g. (B*n, 1, H, W).
        generator : torch.Generator, optional
            Source of all noise (initial and per step).
        device, dtype
            Where and in which dtype to sample.
        x_T : tensor, optional
            Starting noise of shape ``shape`` (drawn from ``generator`` when omitted).

        Returns
        -------
        tensor of ``shape``: the final :math:`\\hat x_0` (in [-1, 1] when ``clip_x0``).
        """
        device = torch.device(device)
        if x_T is None:
            x = _randn(tuple(shape), generator, device, dtype)
        else:
            if tuple(x_T.shape) != tuple(shape):
                raise ValueError(f"x_T has shape {tuple(x_T.shape)}, expected {tuple(shape)}")
            x = x_T.to(device=device, dtype=dtype)
        seq = self.timesteps
        if self.method == "dpm++":
            solver = DPMSolverPP2M(self.schedule, seq, clip_x0=self.clip_x0)
            desc, off = f"dpm++ {len(seq)} steps", not self.progress
            return solver.run(model_fn, x, progress=lambda r: tqdm(r, desc=desc, leave=False, disable=off))
        bar = tqdm(
            range(len(seq)), desc=f"{self.method} {len(seq)} steps", leave=False, disable=not self.progress
        )
        for i in bar:
            t, s = seq[i], (seq[i + 1] if i + 1 < len(seq) else -1)
            c = self.schedule.step_coefficients(t, s)
            t_batch = torch.full((shape[0],), t, device=device, dtype=torch.long)
            eps, v = model_fn(x, t_batch)
            last = s < 0
            if self.method == "ddpm":
                x = self._ddpm_step(x, eps, v, c, last, generator)
            else:
                x = self._ddim_step(x, eps, c, last, generator)
        return x
