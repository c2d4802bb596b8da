"""The critic's view of the data: its last hidden layer, as unit vectors. Task 2's feature nearness, J's
feature heads and the feature-kNN score all measure distances here."""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["CriticFeatures", "unit_features"]


def unit_features(critic: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The critic's view of x: its last hidden layer (``critic.features``), flattened and scaled to unit
    length, so distances between samples lie in [0, 2] whatever the network's scale."""
    return nn.functional.normalize(critic.features(x).flatten(1), dim=1)


class CriticFeatures(nn.Module):
    """A frozen copy of a critic as a feature map: ``unit_features`` of its input, distances in [0, 2]."""

    def __init__(self, critic: nn.Module) -> None:
        super().__init__()
        self.critic = copy.deepcopy(critic).requires_grad_(False).eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return unit_features(self.critic, x)
