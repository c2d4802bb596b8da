"""Task 2: the boundary generator B (DESIGN §2).

B starts as a copy of G (G frozen) and minimises  L_B = -m(B, G) + mu mean_i d_i + nu mean_i s_i:
it *ascends* the usual generator objective against a critic D_B (copied from D, trained on reference
samples vs B's), while the nearness term d (exact distance to the nearest of Q reference points) keeps
it close to the data and the scattering term s spreads its samples.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from omasgan import ops
from omasgan.config import Task2Config
from omasgan.divergences import Divergence
from omasgan.runtime import Engine
from omasgan.tasks._common import AdversarialTrainer, adam, sample_batch

__all__ = ["BoundaryTrainer", "boundary_loss"]


def boundary_loss(
    divergence: Divergence,
    v_b: torch.Tensor,
    b: torch.Tensor,
    z: torch.Tensor,
    reference: torch.Tensor,
    *,
    mu: float,
    nu: float,
    eps: float = 1e-8,
) -> dict[str, torch.Tensor]:
    """The terms of L_B for one batch.

    Parameters
    ----------
    v_b : (N,) critic D_B's outputs on b.   b : (N, ...) boundary samples B(z).   z : (N, L) their latents.
    reference : (Q, ...) the reference pool (no gradient).

    Returns
    -------
    dict with ``total`` = -push + mu * nearness + nu * scattering, and each term: ``push`` = m(B, G), the
    generator loss B ascends; ``nearness`` = mean_i min_j ||b_i - r_j||; ``scattering`` = mean_i s_i.
    """
    push = divergence.generator_loss(v_b)
    nearness = ops.min_distance(b.flatten(1), reference.flatten(1))[0].mean()
    scattering = ops.scattering(z, b.flatten(1), eps).mean()
    total = -push + mu * nearness + nu * scattering
    return {"total": total, "push": push, "nearness": nearness, "scattering": scattering}


class BoundaryTrainer(AdversarialTrainer):
    name = "task2"

    def __init__(
        self,
        generator: nn.Module,
        critic: nn.Module,
        divergence: Divergence,
        config: Task2Config,
        *,
        engine: Engine,
        latent_dim: int,
        streams: dict[str, torch.Generator],
    ) -> None:
        super().__init__(engine=engine, latent_dim=latent_dim, streams=streams)
        self.generator = generator.requires_grad_(False).eval()
        self.boundary = copy.deepcopy(generator).requires_grad_(True).train()
        self.critic = copy.deepcopy(critic).requires_grad_(True).train()
        self.G = engine.prepare(self.generator, trained=False)
        self.B = engine.prepare(self.boundary, trained=True)
        self.D_B = engine.prepare(self.critic, trained=True)
        self.divergence, self.config = divergence, config
        self.models = {"boundary": self.boundary, "boundary_critic": self.critic}
        self.optimizers = {
            "boundary": adam(self.boundary, config.lr_boundary),
            "boundary_critic": adam(self.critic, config.lr_critic),
        }

    @torch.no_grad()
    def reference(self, n: int, x: torch.Tensor) -> torch.Tensor:
        """Reference samples: fresh G samples (the paper) or real data, per the configuration.

        In a multi-process run each rank draws its own pool (from its latent stream or its data shard), of
        the configured size: a pool is a Monte Carlo sample of the reference distribution, so a local pool
        gives each rank's nearness term the same distribution as a single process's, without moving
        Q x D values between ranks every step.
        """
        if self.config.reference == "data":
            return sample_batch(x, n, self.streams["batch"])
        return self.G(self.latent(n))

    def critic_step(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        # (1) Update D_B: reference samples on the real side, B(z) on the fake side.
        real = self.reference(self.config.batch_size, x)
        with torch.no_grad():
            fake = self.B(self.latent(self.config.batch_size))
        loss = self.divergence.critic_loss(self.D_B(real), self.D_B(fake))
        self.critic_descend("boundary_critic", self.divergence, self.D_B, loss, real, fake)
        return {"boundary_critic_loss": loss.detach()}

    def generator_step(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        # (2) Update B: minimise L_B = -m(B, G) + mu mean d + nu mean s (DESIGN §2). The scattering term
        # pairs the samples of this rank's batch only: s_i is a ratio over pairs of one batch, so a local
        # batch keeps its meaning and cost per rank, and DDP averages the gradients of the ranks' terms.
        z = self.latent(self.config.batch_size)
        b = self.B(z)
        pool = self.reference(self.config.pool_size, x)
        terms = boundary_loss(
            self.divergence, self.D_B(b), b, z, pool, mu=self.config.mu, nu=self.config.nu, eps=self.config.eps
        )
        self.descend("boundary", terms["total"])
        return {f"boundary_{k}": v.detach() for k, v in terms.items()}
