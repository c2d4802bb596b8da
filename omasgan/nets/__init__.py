"""Networks: MLPs for vectors, DCGAN-like convolutional nets for 28x28 / 32x32 images."""

from __future__ import annotations

from torch import nn

from omasgan.nets.conv import ConvCritic, ConvGenerator
from omasgan.nets.mlp import MLPCritic, MLPGenerator

__all__ = ["ConvCritic", "ConvGenerator", "MLPCritic", "MLPGenerator", "build_nets"]


def build_nets(
    input_shape: tuple[int, ...], latent_dim: int, width: int, spectral_norm: bool
) -> tuple[nn.Module, nn.Module, nn.Module]:
    """Generator, critic and detector J for data of per-sample shape ``input_shape``.

    (d,) vectors get MLPs; (c, h, w) images with h = w in {28, 32} get the convolutional nets.
    J shares the critic's architecture (one logit), without spectral norm.
    """
    if len(input_shape) == 1:
        dim = input_shape[0]
        return (
            MLPGenerator(latent_dim, dim, hidden=width),
            MLPCritic(dim, hidden=width, spectral_norm=spectral_norm),
            MLPCritic(dim, hidden=width),
        )
    channels, height, width_px = input_shape
    if height != width_px:
        raise ValueError(f"convolutional nets need square images, got {height}x{width_px}")
    return (
        ConvGenerator(latent_dim, channels, height, width=width),
        ConvCritic(channels, height, width=width, spectral_norm=spectral_norm),
        ConvCritic(channels, height, width=width, spectral_norm=False),
    )
