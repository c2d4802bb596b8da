"""DCGAN-like convolutional nets for 28x28 and 32x32 images (pytorch/examples dcgan, resized)."""

from __future__ import annotations

import torch
from torch import nn

from omasgan.errors import InvalidInputError

__all__ = ["ConvCritic", "ConvGenerator"]


def _check_size(image_size: int) -> None:
    if image_size not in (28, 32):
        raise InvalidInputError(
            f"the built-in convolutional nets take 28x28 or 32x32 images, got {image_size}x{image_size}: "
            "resize the images, flatten them to vectors (rows of pixels), or pass your own networks "
            "(OMASGAN(modules=...))."
        )


class ConvGenerator(nn.Module):
    """z (N, latent_dim) -> images (N, channels, size, size) in [-1, 1] (tanh)."""

    def __init__(self, latent_dim: int, channels: int, image_size: int, width: int = 64) -> None:
        super().__init__()
        _check_size(image_size)
        start = image_size // 4  # 7 for 28x28, 8 for 32x32
        self.latent_dim = latent_dim
        self.project = nn.Sequential(
            nn.Linear(latent_dim, 2 * width * start * start), nn.BatchNorm1d(2 * width * start * start), nn.ReLU(True)
        )
        self.shape = (2 * width, start, start)
        self.body = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(True),
            nn.ConvTranspose2d(width, channels, 4, 2, 1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.project(z).view(-1, *self.shape))


class ConvCritic(nn.Module):
    """images (N, channels, size, size) -> raw output v (N,). ``spectral_norm=True`` wraps every layer."""

    def __init__(self, channels: int, image_size: int, width: int = 64, spectral_norm: bool = True) -> None:
        super().__init__()
        _check_size(image_size)
        wrap = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        final = image_size // 4
        self.features = nn.Sequential(
            wrap(nn.Conv2d(channels, width, 4, 2, 1)),
            nn.LeakyReLU(0.2, inplace=True),
            wrap(nn.Conv2d(width, 2 * width, 4, 2, 1)),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Flatten(),
        )
        self.head = wrap(nn.Linear(2 * width * final * final, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).squeeze(1)  # self.features(x): the critic's view of x (N, F)
