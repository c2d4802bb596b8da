"""J's distance-aware heads, on the Task-1 critic's features (detector.input_space="critic_features") or
on the samples themselves (a table's scaled rows), and J's standardised-input wrapper
(detector.input_norm="per_sample")."""

from __future__ import annotations

import math

import torch
from torch import nn

from omasgan import ops
from omasgan.errors import InvalidInputError
from omasgan.nets.features import unit_features

__all__ = ["CriticFeatureDetector", "NeighbourHead", "PrototypeHead", "SampleHeadDetector", "StandardisedInput"]


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


@torch.no_grad()
def _calibrate(head: nn.Module, score: torch.Tensor) -> None:
    """offset and log_scale so that ``score`` (normal samples the head did not see) starts at logit ~N(0, 1);
    with fewer than two such samples, or no spread among them, the scale stays 1."""
    head.offset.copy_(score.median())
    spread = score.std() if score.numel() > 1 else score.new_tensor(0.0)
    head.log_scale.copy_(-spread.log() if spread > 1e-6 else spread.new_tensor(0.0))


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
        _calibrate(self, self.distance(calibration))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.log_scale.exp() * (self.distance(features) - self.offset)


class NeighbourHead(nn.Module):
    """A distance-aware logit against a memory of normal samples, in a learnt metric.

    Up to ``size`` training samples' features are stored in their top ``rank`` principal components (a
    fixed basis, found once at initialisation); d_w(f, m) = sqrt(sum_i w_i (f_i - m_i)^2) over those
    components, w = exp(log_weight). The score is

    - ``local_k = 0``: the soft minimum of d_w^2 over the stored samples (temperature learnt): the distance
      to the nearest normal sample;
    - ``local_k = K``: log of the mean d_w to the K nearest stored samples minus log of *their* mean d_w to
      their own K nearest stored neighbours (found once, at initialisation): the distance relative to the
      local spacing of the data (Breunig et al. 2000's local outlier factor, simplified), so sparse normal
      regions (thick strokes, rare styles) are not anomalous merely for being sparse.

    The logit is exp(log_scale) * (score - offset). The stored samples stay fixed, so J's training against
    B's samples (the metric weights and calibration) cannot move normal regions away from the data, which a
    prototype head's training does; many stored samples cover the data finely where 256 prototypes cover
    it coarsely (measured in benchmarks/results/README.md).
    """

    search = 32  # stored samples the soft minimum runs over (local_k = 0; see _nearest())

    def __init__(self, feature_dim: int, size: int, rank: int = 128, local_k: int = 0) -> None:
        super().__init__()
        self.size, self.rank, self.local_k = size, min(rank, feature_dim), local_k
        self.register_buffer("mean", torch.zeros(feature_dim))
        self.register_buffer("basis", torch.zeros(feature_dim, self.rank))
        # Resized by initialise() and by loading: as many rows as the run stored.
        self.register_buffer("memory", torch.zeros(0, self.rank))
        self.register_buffer("memory_neighbours", torch.zeros(0, local_k, dtype=torch.long))
        self.log_weight = nn.Parameter(torch.zeros(self.rank))
        if not local_k:  # (a parameter without gradient would stop DDP)
            self.log_temperature = nn.Parameter(torch.tensor(math.log(1e-3)))
        self.log_scale = nn.Parameter(torch.tensor(0.0))
        self.offset = nn.Parameter(torch.tensor(0.0))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("memory", "memory_neighbours"):
            stored = state_dict.get(prefix + name)
            if stored is not None:
                setattr(self, name, torch.zeros_like(stored, device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _project(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.mean) @ self.basis

    @torch.no_grad()
    def _nearest(self, query: torch.Tensor, k: int, exclude: torch.Tensor | None = None) -> torch.Tensor:
        """Indices of the k stored samples nearest to each projected query in the current metric (exact:
        ops.knn, no (queries, stored) matrix); ``exclude``: a memory index per query left out (the query
        itself). Fewer than k when fewer are stored."""
        root = (0.5 * self.log_weight).exp()
        scaled, memory = query * root, self.memory * root
        if exclude is None:
            return ops.knn(scaled, memory, min(k, memory.shape[0]))[1]
        count = min(k, memory.shape[0] - 1)
        index = ops.knn(scaled, memory, count + 1)[1]
        # Drop each query's own row; where exact ties with lower indices kept it out, drop the last instead.
        keep = index != exclude[:, None]
        keep[:, -1] &= ~keep.all(1)
        return index[keep].view(len(query), count)

    def _metric(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Squared d_w between a (..., rank) and b (..., rank), differentiable in the weights."""
        return ((a - b).square() * self.log_weight.exp()).sum(-1)

    def _score_projected(self, query: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
        """Scores of projected queries; ``exclude``: a memory index per query left out of its search."""
        if not self.local_k:
            near = self.memory[self._nearest(query, self.search, exclude)]
            temperature = self.log_temperature.exp()
            squared = self._metric(query.unsqueeze(1), near)
            return -temperature * torch.logsumexp(-squared / temperature, dim=1)
        index = self._nearest(query, self.memory_neighbours.shape[1], exclude)  # (c, K)
        near = self.memory[index]
        distance = (self._metric(query.unsqueeze(1), near) + 1e-12).sqrt().mean(1)
        # Their spacing: each neighbour's mean distance to its own K nearest stored samples.
        spacing = (self._metric(near.unsqueeze(2), self.memory[self.memory_neighbours[index]]) + 1e-12).sqrt()
        return distance.log() - spacing.mean((1, 2)).log()

    def score(self, features: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
        # Chunks bound the (chunk, stored) search matrix.
        return torch.cat(
            [self._score_projected(self._project(part)) for part in features.split(chunk)]
            or [features.new_zeros(0)]
        )

    @torch.no_grad()
    def stored_logits(self, chunk: int = 1024) -> torch.Tensor:
        """The logit of each stored sample scored without itself, as a new sample at its place would be
        (a stored sample's distance to itself is 0): the stored rows' share of a leave-self-out threshold."""
        rows = torch.arange(self.memory.shape[0], device=self.memory.device)
        if self.memory.shape[0] < 2:
            return self.memory.new_zeros(0)
        scores = torch.cat([self._score_projected(self.memory[part], exclude=part) for part in rows.split(chunk)])
        return self.log_scale.exp() * (scores - self.offset)

    @torch.no_grad()
    def initialise(self, stored: torch.Tensor, calibration: torch.Tensor) -> None:
        """Memory = ``stored`` features (at most ``size`` are used) in their principal components;
        calibrated so that ``calibration`` (normal features *not* stored) starts at logit ~N(0, 1)."""
        stored = stored[: self.size]
        self.mean.copy_(stored.mean(0))
        centred = stored - self.mean
        # pca_lowrank starts from a random matrix: a fixed seed makes the basis a function of the data only.
        devices = [stored.device] if stored.device.type == "cuda" else []
        components = min(self.rank, *centred.shape)
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(0)
            _, _, basis = torch.pca_lowrank(centred, q=components, center=False, niter=4)
        self.basis.zero_()
        self.basis[:, :components] = basis
        self.memory = centred @ self.basis
        self.log_weight.zero_()
        if self.local_k:
            k = min(self.local_k, self.memory.shape[0] - 1)  # small data: as many as there are
            rows = torch.arange(self.memory.shape[0], device=self.memory.device)
            if k < 1:  # one stored sample (two training rows): its own spacing, a constant; scores stay finite
                self.memory_neighbours = rows[:, None].clone()
            else:
                self.memory_neighbours = torch.cat(
                    [self._nearest(self.memory[part], k, exclude=part) for part in rows.split(2048)]
                )
        _calibrate(self, self.score(calibration))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # Float32 whatever the autocast: the metric's differences lose their digits in bfloat16.
        with torch.autocast(features.device.type, enabled=False):
            return self.log_scale.exp() * (self.score(features.float()) - self.offset)


def make_head(head: str, feature_dim: int, size: int, rank: int = 128, local_k: int = 0) -> nn.Module:
    """J's head on ``feature_dim`` features: "mlp" (``size`` hidden units), "prototypes" (``size``
    prototypes) or "neighbours" (up to ``size`` stored samples in ``rank`` principal components, scored
    against ``local_k`` neighbours' spacing if > 0)."""
    if head == "prototypes":
        return PrototypeHead(feature_dim, size)
    if head == "neighbours":
        return NeighbourHead(feature_dim, size, rank, local_k)
    return nn.Sequential(
        nn.Linear(feature_dim, size),
        nn.LeakyReLU(0.2),
        nn.Linear(size, size),
        nn.LeakyReLU(0.2),
        nn.Linear(size, 1),
    )


class SampleHeadDetector(nn.Module):
    """J as a distance-aware head (prototypes or neighbours) on the flattened samples themselves.

    For a table's scaled rows, where distances between rows mean something and there is no critic view
    worth more than the rows: the logit grows with the distance from the normal rows by construction, so
    anomalies beyond B's samples cannot land on the normal side, as they can with an MLP's logit.
    """

    def __init__(self, input_shape: tuple[int, ...], head: str, size: int, rank: int = 128, local_k: int = 0):
        super().__init__()
        if head not in ("prototypes", "neighbours"):
            raise InvalidInputError(f"a head on the samples is 'prototypes' or 'neighbours', got {head!r}.")
        self.head = make_head(head, math.prod(input_shape), size, rank, local_k)

    needs_initialisation = True

    @property
    def stores_samples(self) -> bool:
        return isinstance(self.head, NeighbourHead)

    def initialise(self, prototypes: torch.Tensor, calibration: torch.Tensor) -> None:
        self.head.initialise(prototypes.flatten(1), calibration.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.flatten(1)).reshape(-1)


class CriticFeatureDetector(nn.Module):
    """J as a head (MLP, prototypes or neighbours) on the Task-1 critic's unit-normalised features
    (``detector.input_space``).

    The critic is shared with Task 1 (trained there) and frozen here: J learns where B's samples lie in
    the critic's view of the data, where a kNN already separates unseen classes, instead of learning
    pixel statistics from scratch. The critic stays in eval mode and receives no gradient, so training J
    never changes D (its spectral-norm power iteration included).
    """

    def __init__(
        self,
        critic: nn.Module,
        feature_dim: int,
        head: str = "mlp",
        size: int = 256,
        rank: int = 128,
        local_k: int = 0,
    ) -> None:
        super().__init__()
        self.critic = critic
        self.head = make_head(head, feature_dim, size, rank, local_k)

    @classmethod
    def around(
        cls,
        critic: nn.Module,
        input_shape: tuple[int, ...],
        head: str = "mlp",
        size: int = 256,
        rank: int = 128,
        local_k: int = 0,
    ) -> CriticFeatureDetector:
        """The detector for ``critic`` and samples of shape ``input_shape`` (feature size found by a probe);
        ``head``: "mlp" (``size`` hidden units), "prototypes" (``size`` prototypes) or "neighbours" (up to
        ``size`` stored samples in ``rank`` principal components, scored against ``local_k`` neighbours'
        spacing if > 0)."""
        was_training = critic.training
        with torch.no_grad():
            feature_dim = critic.eval().features(torch.zeros(2, *input_shape)).flatten(1).shape[1]
        critic.train(was_training)
        return cls(critic, feature_dim, head, size, rank, local_k)

    @property
    def needs_initialisation(self) -> bool:
        return isinstance(self.head, (PrototypeHead, NeighbourHead))

    @property
    def stores_samples(self) -> bool:
        """Whether the head keeps normal samples (then J's training must use other normal samples)."""
        return isinstance(self.head, NeighbourHead)

    def initialise(self, prototypes: torch.Tensor, calibration: torch.Tensor) -> None:
        """Prototype and neighbour heads: start from the features of the normal samples ``prototypes``
        (prototypes, or the stored samples), calibrated on the normal samples ``calibration``."""
        with torch.no_grad():
            features = torch.cat([unit_features(self.critic, part) for part in prototypes.split(4096)])
            self.head.initialise(features, unit_features(self.critic, calibration))

    def train(self, mode: bool = True) -> CriticFeatureDetector:
        super().train(mode)
        self.critic.eval().requires_grad_(False)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            features = unit_features(self.critic, x)
        return self.head(features).reshape(-1)
