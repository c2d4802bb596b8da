"""Multilayer perceptrons for vector data: generator, and critic/detector (one raw output)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MLPCritic", "MLPGenerator"]


class MLPGenerator(nn.Module):
    """z (N, latent_dim) -> x (N, data_dim), unbounded outputs."""

    def __init__(self, latent_dim: int, data_dim: int, hidden: int = 128, depth: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = latent_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        layers.append(nn.Linear(width, data_dim))
        self.net = nn.Sequential(*layers)
        self.latent_dim = latent_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class MLPCritic(nn.Module):
    """x (N, data_dim) -> raw output v (N,). ``spectral_norm=True`` wraps every linear layer."""

    def __init__(self, data_dim: int, hidden: int = 128, depth: int = 3, spectral_norm: bool = False) -> None:
        super().__init__()
        wrap = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        layers: list[nn.Module] = []
        width = data_dim
        for _ in range(depth):
            layers += [wrap(nn.Linear(width, hidden)), nn.LeakyReLU(0.2)]
            width = hidden
        layers.append(wrap(nn.Linear(width, 1)))
        self.net = nn.Sequential(*layers)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's activations (N, hidden): the critic's view of x."""
        return self.net[:-1](x.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net[-1](self.features(x)).squeeze(1)
