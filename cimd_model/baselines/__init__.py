"""The three baselines of the CIMD paper's Table 1, re-implemented from the papers.

* :mod:`.prob_unet` – Probabilistic U-Net (Kohl et al., NeurIPS 2018)
* :mod:`.phiseg` – PHiSeg (Baumgartner et al., MICCAI 2019)
* :mod:`.gen_prob_unet` – Generalized Probabilistic U-Net (Bhat et al., UNSURE 2022)

Each module exposes ``build(config, in_channels)`` and ``CONFIGS = {"cpu-small": …, "paper": …}``.
"""
