"""The model: U-Net and PatchGAN networks, losses, augmentation, DiffAugment, the image pool,
and the CycleGAN with its train step."""
