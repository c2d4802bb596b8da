"""J on features that B's samples shape (detector.input_space="tuned_features").

A neighbour head on the frozen Task-1 critic's features scores as well untrained as trained
(benchmarks/results/ablation_detector): B's samples only reach its metric. Here they reach the features:
a copy of the critic with a linear logit is first fine-tuned by eq. 6 (B's samples anomalous, data and G''s
samples normal), as outlier exposure fine-tunes a classifier on near-distribution negatives; then a
neighbour head stores normal samples in the tuned features. J's logit is the head's; the linear logit is a
second score (``classifier_logit``).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from omasgan.nets.features import unit_features
from omasgan.nets.heads import NeighbourHead

__all__ = ["FeatureClassifier", "TunedFeatureDetector"]


class FeatureClassifier(nn.Module):
    """A critic's feature layers with a linear logit on their unit-normalised output."""

    def __init__(self, critic: nn.Module, feature_dim: int) -> None:
        super().__init__()
        self.encoder = copy.deepcopy(critic)
        self.linear = nn.Linear(feature_dim, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return unit_features(self.encoder, x)

    def forward(self, x: torch.Tensor, with_features: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The logit of each sample; ``with_features`` also returns the unit features it was computed from
        (one forward, so a DDP-wrapped copy sees one call)."""
        features = self.features(x)
        logit = self.linear(features).reshape(-1)
        return (logit, features) if with_features else logit


class TunedFeatureDetector(nn.Module):
    """J = a neighbour head on the features of a critic copy fine-tuned against B's samples.

    Built around a critic of the right architecture; ``start_from(critic)`` copies the trained Task-1
    critic in when J's training begins (the networks are assembled before Task 1 trains). The detector
    trainer fine-tunes ``classifier`` first, then calls ``initialise`` and trains the head with the
    encoder frozen.
    """

    needs_initialisation = True
    stores_samples = True

    def __init__(self, critic: nn.Module, feature_dim: int, size: int, rank: int = 128, local_k: int = 0) -> None:
        super().__init__()
        self.classifier = FeatureClassifier(critic, feature_dim)
        self.head = NeighbourHead(feature_dim, size, rank, local_k)

    @classmethod
    def around(
        cls, critic: nn.Module, input_shape: tuple[int, ...], size: int, rank: int = 128, local_k: int = 0
    ) -> TunedFeatureDetector:
        was_training = critic.training
        with torch.no_grad():
            feature_dim = critic.eval().features(torch.zeros(2, *input_shape)).flatten(1).shape[1]
        critic.train(was_training)
        return cls(critic, feature_dim, size, rank, local_k)

    @torch.no_grad()
    def start_from(self, critic: nn.Module) -> None:
        """The encoder becomes a copy of ``critic``'s current weights (spectral-norm vectors included)."""
        self.classifier.encoder.load_state_dict(critic.state_dict())

    def freeze_encoder(self) -> None:
        self.classifier.requires_grad_(False).eval()

    @torch.no_grad()
    def features(self, x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        was_training = self.classifier.training
        self.classifier.eval()
        out = torch.cat([self.classifier.features(part) for part in x.split(chunk)])
        self.classifier.train(was_training)
        return out

    def initialise(self, stored: torch.Tensor, calibration: torch.Tensor) -> None:
        """The head's memory: ``stored`` samples in the tuned features, calibrated on ``calibration``."""
        self.head.initialise(self.features(stored), self.features(calibration))

    @torch.no_grad()
    def classifier_logit(self, x: torch.Tensor) -> torch.Tensor:
        """The fine-tuned linear logit (higher = more anomalous)."""
        was_training = self.classifier.training
        out = self.classifier.eval()(x)
        self.classifier.train(was_training)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).reshape(-1)
