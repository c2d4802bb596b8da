"""Task 3-J: the detector J (eq. 6). B's samples are anomalies (label 1); real data (weight zeta) and
G''s samples (weight 1 - zeta) are normal (label 0). J's logit is the anomaly score."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from omasgan.config import DetectorConfig
from omasgan.nets.features import CriticFeatures
from omasgan.runtime import Engine
from omasgan.tasks.base import TaskTrainer, adam, sample_batch

__all__ = ["DetectorTrainer", "detector_loss", "stroke_augment"]


def stroke_augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image's strokes thickened or thinned by a random amount (detector.augment="strokes").

    A partial 3x3 grey-level dilation or erosion, x + t (op(x) - x) with t ~ U(0, 1) and the op drawn per
    sample (dilate, erode, or none), changes the total intensity while keeping the shape: J sees thick and
    thin versions of normal samples as normal, so stroke weight alone cannot make a sample anomalous.
    """
    if x.dim() != 4:
        return x  # vectors: no strokes
    n = x.shape[0]
    op = torch.randint(0, 3, (n,), generator=generator).to(x.device)
    amount = torch.rand(n, generator=generator).to(x.device, x.dtype).view(n, 1, 1, 1)
    dilated = F.max_pool2d(x, 3, stride=1, padding=1)
    eroded = -F.max_pool2d(-x, 3, stride=1, padding=1)
    target = torch.where((op == 1).view(n, 1, 1, 1), dilated, torch.where((op == 2).view(n, 1, 1, 1), eroded, x))
    return x + amount * (target - x)


def detector_loss(
    j_b: torch.Tensor | None, j_x: torch.Tensor, j_gp: torch.Tensor, *, zeta: float
) -> dict[str, torch.Tensor]:
    """Binary cross-entropy on logits: -log sigma(J(b)) for anomalies, -log(1 - sigma(J(.))) for normals;
    ``j_b`` None: no anomalous term (detector.negatives="none")."""
    terms = {
        "boundary": F.softplus(-j_b).mean() if j_b is not None else j_x.new_zeros(()),  # label 1
        "data": F.softplus(j_x).mean(),  # label 0, weight zeta
        "retrained": F.softplus(j_gp).mean(),  # label 0, weight 1 - zeta
    }
    terms["total"] = terms["boundary"] + zeta * terms["data"] + (1 - zeta) * terms["retrained"]
    return terms


class DetectorTrainer(TaskTrainer):
    """Trains J by eq. 6. With detector.input_space="tuned_features" the first ``tuning_steps`` updates
    fine-tune J's critic copy with its linear logit (same loss, same samples), then the encoder is frozen,
    the neighbour head stores normal samples in the tuned features, and the remaining updates train the
    head. ``detector.negatives`` picks the anomalous side: B's samples, G's (a control) or none."""

    name = "detector"

    def __init__(
        self,
        detector: nn.Module,
        boundary: nn.Module,
        retrained: nn.Module,
        config: DetectorConfig,
        *,
        engine: Engine,
        latent_dim: int,
        streams: dict[str, torch.Generator],
        generator: nn.Module | None = None,
        critic: nn.Module | None = None,
    ) -> None:
        super().__init__(engine=engine, latent_dim=latent_dim, streams=streams)
        if config.negatives == "generator" and generator is None:
            raise ValueError("detector.negatives='generator' needs the Task-1 generator")
        self.detector = detector.train()
        self.config = config
        self.tuning = hasattr(detector, "classifier")  # a TunedFeatureDetector
        if self.tuning and critic is None:
            raise ValueError("detector.input_space='tuned_features' needs the Task-1 critic to start from")
        self.critic = critic
        self._anchor: CriticFeatures | None = None  # detector.tuning_anchor's frozen copy of the critic
        negatives = {"boundary": boundary, "generator": generator, "none": None}[config.negatives]
        self.negatives = None
        if negatives is not None:
            negatives.requires_grad_(False).eval()
            self.negatives = engine.prepare(negatives, trained=False)
        self.retrained = retrained.requires_grad_(False).eval()
        self.G_prime = engine.prepare(self.retrained, trained=False)
        self.models = {"detector": self.detector}
        if self.tuning:
            self.optimizers = {
                "tuning": adam(detector.classifier, config.tuning_lr),
                "detector": adam(detector.head, config.lr),
            }
            self.tuned = engine.prepare(detector.classifier, trained=True)
            self._head_runner: nn.Module | None = None
        else:
            self.optimizers = {"detector": adam(self.detector, config.lr)}
            self._head_runner = engine.prepare(self.detector, trained=True)

    @property
    def J(self) -> nn.Module:
        """J's trained part as called in the head's updates. A tuned detector's is prepared once its
        encoder is frozen (DDP must not register the encoder's parameters, which get no gradient then)."""
        if self._head_runner is None:
            self.detector.freeze_encoder()
            self._head_runner = self.engine.prepare(self.detector, trained=True)
        return self._head_runner

    def _split_rows(self, x: torch.Tensor) -> None:
        """A neighbour head's stored rows and the rows J's real batches come from (a stored sample's own
        distance is zero). At least a tenth (and one row) left for training and calibration; at least one
        row stored."""
        order = torch.randperm(x.shape[0], generator=self.streams["batch"]).to(x.device)
        stored = max(1, min(self.config.head_size, x.shape[0] - max(1, x.shape[0] // 10)))
        self.buffers["real_index"] = order[stored:]
        self.buffers["stored_index"] = order[:stored]  # row of x behind each memory entry

    def _initialise(self, x: torch.Tensor) -> None:
        """A prototype head starts at the features of real samples; a neighbour head stores real samples.
        Rank 0's start is shared with every rank."""
        count = self.config.head_size
        if getattr(self.detector, "stores_samples", False):
            if "stored_index" not in self.buffers:
                self._split_rows(x)
            stored, real = self.buffers["stored_index"], self.buffers["real_index"]
            self.detector.initialise(x[stored], x[real[:2048]])
        else:
            self.detector.initialise(
                sample_batch(x, count, self.streams["batch"]), sample_batch(x, max(count, 512), self.streams["batch"])
            )
        for tensor in [*self.detector.head.parameters(), *self.detector.head.buffers()]:
            self.engine.context.broadcast_(tensor.data)

    def _real_batch(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """n real samples: from all of x, or from those a neighbour head does not store."""
        pool = self.buffers.get("real_index")
        if pool is None:
            return sample_batch(x, n, self.streams["batch"])
        pick = torch.randint(0, pool.shape[0], (n,), generator=self.streams["batch"])
        return x[pool[pick.to(pool.device)]]

    def _batches(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """(anomalous, real, retrained) samples of one update; anomalous is None without negatives."""
        n = self.config.batch_size
        real = self._real_batch(x, n)
        if self.config.augment == "strokes":
            real = stroke_augment(real, self.streams["batch"])
        with torch.no_grad():
            # Latents drawn for the anomalous side in every mode, so the controls see the same G' latents.
            z = self.latent(n)
            b = self.negatives(z) if self.negatives is not None else None
            gp = self.G_prime(self.latent(n))
        return b, real, gp

    def _anchor_features(self, real: torch.Tensor) -> torch.Tensor:
        """The trained Task-1 critic's unit features of ``real``, from a frozen eval-mode copy (made at the
        first anchored update, so after a resume too it copies the trained critic)."""
        if self._anchor is None:
            self._anchor = CriticFeatures(self.critic)
        with torch.no_grad():
            return self._anchor(real)

    def _update(self, network: nn.Module, optimizer: str, x: torch.Tensor, prefix: str) -> dict[str, torch.Tensor]:
        b, real, gp = self._batches(x)
        j_b = network(b) if b is not None else None
        anchored = prefix == "tuning" and self.config.tuning_anchor > 0
        if anchored:
            j_x, features = network(real, with_features=True)
        else:
            j_x = network(real)
        terms = detector_loss(j_b, j_x, network(gp), zeta=self.config.zeta)
        if anchored:  # normal samples' tuned features held near D's (feature preservation)
            terms["anchor"] = (features - self._anchor_features(real)).square().sum(1).mean()
            terms["total"] = terms["total"] + self.config.tuning_anchor * terms["anchor"]
        self.descend(optimizer, terms["total"])
        metrics = {f"{prefix}_{k}": v.detach() for k, v in terms.items()}
        if j_b is not None:  # how active the B term still is: the share of B's samples J does not yet call anomalous
            metrics[f"{prefix}_boundary_missed"] = (j_b.detach() < 0).float().mean()
        return metrics

    def step(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        # Update J: B(z) anomalous, x and G'(z) normal (eq. 6).
        if self.tuning and self.step_count < self.config.tuning_steps:
            if self.step_count == 0:
                self.detector.start_from(self.critic)
                self._split_rows(x)  # the stored rows stay out of the tuning too
            metrics = self._update(self.tuned, "tuning", x, "tuning")
        else:
            first = self.step_count == (self.config.tuning_steps if self.tuning else 0)
            if first and getattr(self.detector, "needs_initialisation", False):
                if self.tuning:
                    self.detector.freeze_encoder()
                self._initialise(x)
            metrics = self._update(self.J, "detector", x, "detector")
        self.step_count += 1
        return metrics
