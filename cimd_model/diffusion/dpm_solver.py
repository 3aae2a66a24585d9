"""DPM-Solver++(2M): the second-order multistep solver of the diffusion ODE in data prediction.

Lu, Zhou, Bao, Chen, Li & Zhu, *DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic
Models* (2022), Algorithm 2, written here for the discrete linear-beta schedule of
:class:`~cimd_model.diffusion.schedule.DiffusionSchedule`.

Notation: :math:`\\alpha_t = \\sqrt{\\bar\\alpha_t}`, :math:`\\sigma_t = \\sqrt{1 - \\bar\\alpha_t}`,
:math:`\\lambda_t = \\log(\\alpha_t / \\sigma_t)` (half the log-SNR) and the data prediction
:math:`x_\\theta(x_t, t) = (x_t - \\sigma_t \\hat\\epsilon) / \\alpha_t`. One step from :math:`t` to an
earlier :math:`s` with :math:`h = \\lambda_s - \\lambda_t > 0`:

.. math::

    x_s = \\frac{\\sigma_s}{\\sigma_t} x_t - \\alpha_s (e^{-h} - 1)\\, D,

where :math:`D = x_\\theta(x_t, t)` for the first step (first order: DDIM with :math:`\\eta = 0`) and
afterwards :math:`D = (1 + \\tfrac{1}{2r}) x_\\theta(x_t, t) - \\tfrac{1}{2r} x_\\theta(x_u, u)` with the
previous step's time :math:`u` and :math:`r = h_{u \\to t} / h`. The last step goes from the last network
evaluation (training step 0) to the data (:math:`\\sigma = 0`, :math:`h = \\infty`), where the formula reduces
to :math:`x_0 = D`; it is taken at first order (:math:`D = x_\\theta`), the "lower order final" of the paper.

The solver is deterministic given :math:`x_T`; one network evaluation per step, like DDIM.

**Step placement.** :func:`logsnr_timesteps` spaces the evaluations uniformly in :math:`\\lambda` (the
paper's recommendation for low-resolution images), not uniformly in ``t`` as DDIM does here. Measured on a
Gaussian toy (data N(0, 0.25), the exact optimal noise predictor, 20 000 samples, no clipping;
``python benchmarks/cimd_sampling.py --toy``, the 10 / 25 / 50-step values asserted in
``tests/model/test_dpm_solver.py``): sample variance 0.161 / 0.269 / 0.257 / 0.253 with 5 / 10 / 25 / 50
logSNR-uniform steps, but 0.484 with 10 time-uniform steps of DDIM -- the last
second-order step into ``t = 0`` spans a log-SNR jump several times the previous one, and the
extrapolation coefficient :math:`1/(2r)` then amplifies the change of :math:`x_\\theta`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from .schedule import DiffusionSchedule

__all__ = ["DPMSolverPP2M", "logsnr_timesteps"]

ModelFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, "torch.Tensor | None"]]


def logsnr_timesteps(schedule: DiffusionSchedule, steps: int) -> list[int]:
    """``steps`` distinct training steps, descending from ``T-1`` to 0, uniform in :math:`\\lambda`.

    Each target :math:`\\lambda` is mapped to the nearest training step; collisions (several targets near
    ``t = 0``, where :math:`\\lambda` changes fastest) are resolved by moving steps apart by one, so the
    result always has exactly ``steps`` entries.

    Raises
    ------
    ValueError
        If ``steps`` is not in ``[1, T]``.
    """
    T = schedule.T
    if not (1 <= int(steps) <= T):
        raise ValueError(f"steps must be in [1, T={T}], got {steps}")
    steps = int(steps)
    if steps == 1:
        return [T - 1]
    abar = schedule.alphas_cumprod
    lam = 0.5 * torch.log(abar / (1.0 - abar))  # decreasing in t
    targets = torch.linspace(float(lam[0]), float(lam[-1]), steps, dtype=torch.float64)
    ts = [int(torch.argmin((lam - v).abs())) for v in targets]  # ascending in t
    ts[0], ts[-1] = 0, T - 1
    for k in range(1, steps):
        ts[k] = max(ts[k], ts[k - 1] + 1)
    ts[-1] = T - 1
    for k in range(steps - 2, -1, -1):
        ts[k] = min(ts[k], ts[k + 1] - 1)
    return ts[::-1]


class DPMSolverPP2M:
    """DPM-Solver++(2M) over a given descending sequence of training steps.

    Parameters
    ----------
    schedule : DiffusionSchedule
    timesteps : sequence of int
        Descending training-step indices at which the network is evaluated (the last is usually 0).
    clip_x0 : bool
        Clip the data prediction :math:`x_\\theta` to [-1, 1] (the thresholding of the paper, static).
    """

    def __init__(self, schedule: DiffusionSchedule, timesteps: Sequence[int], clip_x0: bool = True) -> None:
        seq = [int(t) for t in timesteps]
        if not seq or any(a <= b for a, b in zip(seq, seq[1:], strict=False)):
            raise ValueError(f"timesteps must be a non-empty descending sequence, got {seq}")
        if seq[0] >= schedule.T or seq[-1] < 0:
            raise ValueError(f"timesteps must lie in [0, {schedule.T - 1}], got {seq}")
        self.schedule = schedule
        self.timesteps = seq
        self.clip_x0 = bool(clip_x0)

    def _alpha_sigma_lambda(self, t: int) -> tuple[float, float, float]:
        abar = float(self.schedule.alphas_cumprod[t])
        alpha, sigma = math.sqrt(abar), math.sqrt(1.0 - abar)
        return alpha, sigma, math.log(alpha / sigma)

    def data_prediction(self, x: torch.Tensor, eps: torch.Tensor, t: int) -> torch.Tensor:
        """:math:`x_\\theta = (x_t - \\sigma_t \\hat\\epsilon) / \\alpha_t`, clipped when ``clip_x0``."""
        alpha, sigma, _ = self._alpha_sigma_lambda(t)
        x0 = (x - sigma * eps) / alpha
        return x0.clamp(-1.0, 1.0) if self.clip_x0 else x0

    def step(
        self,
        x: torch.Tensor,
        x0: torch.Tensor,
        t: int,
        s: int,
        prev: tuple[torch.Tensor, int] | None,
    ) -> torch.Tensor:
        """One update from step ``t`` to the earlier step ``s`` (``s = -1``: to the data).

        ``x0`` is the data prediction at ``t``; ``prev`` the previous step's ``(x0, u)`` (``None`` for the
        first step, which is then first order).
        """
        if s < 0:
            return x0
        alpha_t, sigma_t, lam_t = self._alpha_sigma_lambda(t)
        alpha_s, sigma_s, lam_s = self._alpha_sigma_lambda(s)
        h = lam_s - lam_t
        d = x0
        if prev is not None:
            x0_prev, u = prev
            r = (lam_t - self._alpha_sigma_lambda(u)[2]) / h
            d = (1.0 + 0.5 / r) * x0 - (0.5 / r) * x0_prev
        return (sigma_s / sigma_t) * x - alpha_s * math.expm1(-h) * d

    @torch.no_grad()
    def run(self, model_fn: ModelFn, x: torch.Tensor, progress: Callable | None = None) -> torch.Tensor:
        """Integrate from ``x`` (the sample at ``timesteps[0]``) to the data; returns :math:`\\hat x_0`.

        ``progress`` optionally wraps the step range (e.g. a tqdm factory).
        """
        seq = self.timesteps
        prev: tuple[torch.Tensor, int] | None = None
        steps = range(len(seq)) if progress is None else progress(range(len(seq)))
        for i in steps:
            t, s = seq[i], (seq[i + 1] if i + 1 < len(seq) else -1)
            t_batch = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
            eps, _ = model_fn(x, t_batch)
            x0 = self.data_prediction(x, eps, t)
            x = self.step(x, x0, t, s, prev)
            prev = (x0, t)
        return x
