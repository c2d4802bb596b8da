"""B as G frozen behind a shift of its latents (task2.boundary_space="latent" / "latent_shell")."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LatentShiftGenerator"]


class LatentShiftGenerator(nn.Module):
    """B(z) = G(z + h(z)) with G frozen: B moves only along G's manifold (DESIGN §8, "latent-space B").

    h is a small MLP whose last layer starts at zero, so B starts as G exactly. ``keep_norm=True`` rescales
    z + h(z) to the length of z: B's latents stay on the shell where a Gaussian's draws lie (|z| ~ sqrt(L)),
    the only latents G was trained on, so B moves between G's outputs instead of off to latents whose
    images G never learnt to make realistic.
    """

    def __init__(self, generator: nn.Module, latent_dim: int, hidden: int = 128, keep_norm: bool = False) -> None:
        super().__init__()
        self.generator = generator.requires_grad_(False).eval()
        self.shift = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden), nn.LeakyReLU(0.2)
        )
        self.out = nn.Linear(hidden, latent_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.latent_dim = latent_dim
        self.keep_norm = keep_norm

    def train(self, mode: bool = True) -> LatentShiftGenerator:
        super().train(mode)
        self.generator.eval()  # G is frozen: its BatchNorm keeps G's running statistics
        return self

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        shifted = z + self.out(self.shift(z))
        if self.keep_norm:
            shifted = shifted * (z.norm(dim=1, keepdim=True) / shifted.norm(dim=1, keepdim=True).clamp_min(1e-12))
        return self.generator(shifted)
