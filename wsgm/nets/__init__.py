"""Score networks: the U-Net and exact Gaussian ε-models."""

from wsgm.nets.unet import UNet, count_parameters

__all__ = ["UNet", "count_parameters"]
