"""Shared network building blocks: U-Net pieces (:mod:`.unet`) and
Gaussian latent encoders (:mod:`.encoders`)."""
