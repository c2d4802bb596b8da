"""Networks built around others: the latent-space boundary generator and the standardised-input detector."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LatentShiftGenerator", "StandardisedInput", "unit_features"]


def unit_features(critic: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The critic's view of x: its last hidden layer (``critic.features``), flattened and scaled to unit
    length, so distances between samples lie in [0, 2] whatever the network's scale."""
    return nn.functional.normalize(critic.features(x).flatten(1), dim=1)


class LatentShiftGenerator(nn.Module):
    """B(z) = G(z + h(z)) with G frozen: B moves only along G's manifold (DESIGN §8, "latent-space B").

    h is a small MLP whose last layer starts at zero, so B starts as G exactly.
    """

    def __init__(self, generator: nn.Module, latent_dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.generator = generator.requires_grad_(False).eval()
        self.shift = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden), nn.LeakyReLU(0.2)
        )
        self.out = nn.Linear(hidden, latent_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.latent_dim = latent_dim

    def train(self, mode: bool = True) -> LatentShiftGenerator:
        super().train(mode)
        self.generator.eval()  # G is frozen: its BatchNorm keeps G's running statistics
        return self

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z + self.out(self.shift(z)))


class StandardisedInput(nn.Module):
    """Runs ``network`` on each sample standardised to mean 0 and SD 1 over its features.

    The detector then cannot score by total intensity or contrast (DESIGN §8: J learnt "more/less ink").
    """

    def __init__(self, network: nn.Module, eps: float = 1e-3) -> None:
        super().__init__()
        self.network = network
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        mean, sd = flat.mean(1, keepdim=True), flat.std(1, keepdim=True)
        return self.network(((flat - mean) / (sd + self.eps)).view_as(x))
