"""Task 3-J: the detector J (eq. 6). B's samples are anomalies (label 1); real data (weight zeta) and
G''s samples (weight 1 - zeta) are normal (label 0). J's logit is the anomaly score."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from omasgan.config import DetectorConfig
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


def detector_loss(j_b: torch.Tensor, j_x: torch.Tensor, j_gp: torch.Tensor, *, zeta: float) -> dict[str, torch.Tensor]:
    """Binary cross-entropy on logits: -log sigma(J(b)) for anomalies, -log(1 - sigma(J(.))) for normals."""
    terms = {
        "boundary": F.softplus(-j_b).mean(),  # label 1
        "data": F.softplus(j_x).mean(),  # label 0, weight zeta
        "retrained": F.softplus(j_gp).mean(),  # label 0, weight 1 - zeta
    }
    terms["total"] = terms["boundary"] + zeta * terms["data"] + (1 - zeta) * terms["retrained"]
    return terms


class DetectorTrainer(TaskTrainer):
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
    ) -> None:
        super().__init__(engine=engine, latent_dim=latent_dim, streams=streams)
        self.detector = detector.train()
        self.boundary = boundary.requires_grad_(False).eval()
        self.retrained = retrained.requires_grad_(False).eval()
        self.J = engine.prepare(self.detector, trained=True)
        self.B = engine.prepare(self.boundary, trained=False)
        self.G_prime = engine.prepare(self.retrained, trained=False)
        self.config = config
        self.models = {"detector": self.detector}
        self.optimizers = {"detector": adam(self.detector, config.lr)}

    def _initialise(self, x: torch.Tensor) -> None:
        """A prototype head starts at the features of real samples; a neighbour head stores real samples
        and J's real batches come from the others (a stored sample's own distance is zero). Rank 0's
        start is shared with every rank."""
        count = self.config.head_size
        if getattr(self.detector, "stores_samples", False):
            order = torch.randperm(x.shape[0], generator=self.streams["batch"]).to(x.device)
            # At least a tenth (and one row) left for training and calibration; at least one row stored.
            stored = max(1, min(count, x.shape[0] - max(1, x.shape[0] // 10)))
            self.buffers["real_index"] = order[stored:]
            self.buffers["stored_index"] = order[:stored]  # row of x behind each memory entry
            self.detector.initialise(x[order[:stored]], x[order[stored:][:2048]])
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

    def step(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        # Update J: B(z) anomalous, x and G'(z) normal (eq. 6).
        if self.step_count == 0 and getattr(self.detector, "needs_initialisation", False):
            self._initialise(x)
        n = self.config.batch_size
        real = self._real_batch(x, n)
        if self.config.augment == "strokes":
            real = stroke_augment(real, self.streams["batch"])
        with torch.no_grad():
            b, gp = self.B(self.latent(n)), self.G_prime(self.latent(n))
        j_b = self.J(b)
        terms = detector_loss(j_b, self.J(real), self.J(gp), zeta=self.config.zeta)
        self.descend("detector", terms["total"])
        self.step_count += 1
        metrics = {f"detector_{k}": v.detach() for k, v in terms.items()}
        # How active the B term still is: the share of B's samples J does not yet call anomalous.
        metrics["detector_boundary_missed"] = (j_b.detach() < 0).float().mean()
        return metrics
