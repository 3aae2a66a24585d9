"""cimd_model: the CIMD diffusion model and its baselines for ambiguous segmentation.

Optional companion of :mod:`ambiseg_metrics` (install with the ``[model]`` extra; needs torch).
Every model maps ``images -> (B, n, H, W)`` foreground probabilities; evaluation always goes through
:mod:`ambiseg_metrics`.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
