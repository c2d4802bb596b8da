"""Networks built around others: the latent-space boundary generator and the standardised-input detector."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["CriticFeatureDetector", "LatentShiftGenerator", "PrototypeHead", "StandardisedInput", "unit_features"]


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


class PrototypeHead(nn.Module):
    """A distance-aware logit: how far a feature vector lies from the nearest of K learnt prototypes.

    logit(f) = exp(log_scale) * (softmin_k ||f - c_k||^2 - offset), softmin at a learnt temperature. An MLP
    head's logit is arbitrary away from its training samples, so an unseen class can land on the "normal"
    side; this logit grows with the distance from every prototype by construction, and J's training
    (data near, B's samples far) places the prototypes and the threshold (van Amersfoort et al. 2020's
    distance-aware output, here against B's samples).
    """

    def __init__(self, feature_dim: int, count: int) -> None:
        super().__init__()
        self.prototypes = nn.Parameter(torch.zeros(count, feature_dim))
        self.log_temperature = nn.Parameter(torch.tensor(math.log(0.05)))
        self.log_scale = nn.Parameter(torch.tensor(0.0))
        self.offset = nn.Parameter(torch.tensor(0.0))

    def distance(self, features: torch.Tensor) -> torch.Tensor:
        squared = torch.cdist(features, self.prototypes).square()
        temperature = self.log_temperature.exp()
        return -temperature * torch.logsumexp(-squared / temperature, dim=1)

    @torch.no_grad()
    def initialise(self, prototypes: torch.Tensor, calibration: torch.Tensor) -> None:
        """Prototypes at the given features; offset and scale so that ``calibration`` (other normal
        features) starts at logit ~N(0, 1): J starts as a calibrated nearest-prototype distance."""
        self.prototypes.copy_(prototypes)
        distance = self.distance(calibration)
        self.offset.copy_(distance.median())
        self.log_scale.copy_(-distance.std().clamp_min(1e-6).log())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.log_scale.exp() * (self.distance(features) - self.offset)


class CriticFeatureDetector(nn.Module):
    """J as a small MLP on the Task-1 critic's unit-normalised features (``detector.input_space``).

    The critic is shared with Task 1 (trained there) and frozen here: J learns where B's samples lie in
    the critic's view of the data, where a kNN already separates unseen classes, instead of learning
    pixel statistics from scratch. The critic stays in eval mode and receives no gradient, so training J
    never changes D (its spectral-norm power iteration included).
    """

    def __init__(self, critic: nn.Module, feature_dim: int, head: str = "mlp", size: int = 256) -> None:
        super().__init__()
        self.critic = critic
        if head == "prototypes":
            self.head = PrototypeHead(feature_dim, size)
        else:
            self.head = nn.Sequential(
                nn.Linear(feature_dim, size),
                nn.LeakyReLU(0.2),
                nn.Linear(size, size),
                nn.LeakyReLU(0.2),
                nn.Linear(size, 1),
            )

    @classmethod
    def around(
        cls, critic: nn.Module, input_shape: tuple[int, ...], head: str = "mlp", size: int = 256
    ) -> CriticFeatureDetector:
        """The detector for ``critic`` and samples of shape ``input_shape`` (feature size found by a probe);
        ``head``: "mlp" (``size`` hidden units) or "prototypes" (``size`` prototypes)."""
        was_training = critic.training
        with torch.no_grad():
            feature_dim = critic.eval().features(torch.zeros(2, *input_shape)).flatten(1).shape[1]
        critic.train(was_training)
        return cls(critic, feature_dim, head, size)

    @property
    def needs_initialisation(self) -> bool:
        return isinstance(self.head, PrototypeHead)

    def initialise(self, prototypes: torch.Tensor, calibration: torch.Tensor) -> None:
        """Prototype head only: prototypes at the features of the samples ``prototypes``, calibrated on
        the samples ``calibration`` (both normal data)."""
        with torch.no_grad():
            self.head.initialise(unit_features(self.critic, prototypes), unit_features(self.critic, calibration))

    def train(self, mode: bool = True) -> CriticFeatureDetector:
        super().train(mode)
        self.critic.eval().requires_grad_(False)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            features = unit_features(self.critic, x)
        return self.head(features).reshape(-1)
