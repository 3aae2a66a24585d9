"""The CIMD diffusion model: noise schedule, samplers, denoiser network, the variants and their diagnostics.

* :mod:`.schedule` -- closed forms of the forward process, posterior, learned variance, VLB terms;
* :mod:`.sampler` -- DDPM, DDIM and DPM-Solver++ reverse processes on any number of steps;
* :mod:`.dpm_solver` -- DPM-Solver++(2M) and its log-SNR-uniform steps;
* :mod:`.denoiser` -- the time-conditioned U-Net (optionally conditioned on a latent code);
* :mod:`.config` -- the named configs shared by the variants;
* :mod:`.ambiguity` -- what distinguishes the variants (encoders, their KL term);
* :mod:`.cimd` -- :class:`~cimd_model.diffusion.cimd.CIMD` (registry names ``cimd-official``, ``cimd-paper``
  (also ``cimd``), ``cimd-latent``, ``cond-ddpm``), its losses and sampling;
* :mod:`.diagnostics` -- is the latent used? (active units, shuffled-z loss, KL gradient share).
"""

from .dpm_solver import DPMSolverPP2M, logsnr_timesteps
from .sampler import SAMPLERS, DiffusionSampler, timestep_sequence
from .schedule import DiffusionSchedule

__all__ = [
    "DiffusionSchedule",
    "DiffusionSampler",
    "DPMSolverPP2M",
    "SAMPLERS",
    "logsnr_timesteps",
    "timestep_sequence",
]
