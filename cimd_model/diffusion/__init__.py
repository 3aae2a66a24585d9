"""The CIMD diffusion model: noise schedule, samplers, denoiser network and the model class.

* :mod:`.schedule` -- closed forms of the forward process, posterior, learned variance, VLB terms;
* :mod:`.sampler` -- DDPM and DDIM reverse processes on any number of steps;
* :mod:`.denoiser` -- the time-conditioned U-Net;
* :mod:`.cimd` -- :class:`~cimd_model.diffusion.cimd.CIMD` (registry name ``"cimd"``), its losses and configs.
"""

from .sampler import SAMPLERS, DiffusionSampler, timestep_sequence
from .schedule import DiffusionSchedule

__all__ = ["DiffusionSchedule", "DiffusionSampler", "SAMPLERS", "timestep_sequence"]
