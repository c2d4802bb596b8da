"""Task 1: the base GAN. The critic D and generator G alternate under the chosen divergence."""

from __future__ import annotations

import torch
from torch import nn

from omasgan.config import Task1Config
from omasgan.divergences import Divergence
from omasgan.runtime import Engine
from omasgan.tasks.base import AdversarialTrainer, adam, sample_batch

__all__ = ["GANTrainer"]


class GANTrainer(AdversarialTrainer):
    """Trains G and D from scratch (or from the modules given)."""

    name = "task1"

    def __init__(
        self,
        generator: nn.Module,
        critic: nn.Module,
        divergence: Divergence,
        config: Task1Config,
        *,
        engine: Engine,
        latent_dim: int,
        streams: dict[str, torch.Generator],
    ) -> None:
        super().__init__(engine=engine, latent_dim=latent_dim, streams=streams)
        self.generator, self.critic = generator.train(), critic.train()
        self.G, self.D = engine.prepare(generator, trained=True), engine.prepare(critic, trained=True)
        self.divergence, self.config = divergence, config
        self.models = {"generator": self.generator, "critic": self.critic}
        self.optimizers = {"generator": adam(generator, config.lr_generator), "critic": adam(critic, config.lr_critic)}

    def critic_step(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        # (1) Update D: minimise the divergence's critic loss on (x real, G(z) fake), plus its penalty.
        real = sample_batch(x, self.config.batch_size, self.streams["batch"])
        with torch.no_grad():
            fake = self.G(self.latent(real.shape[0]))
        loss = self.divergence.critic_loss(self.D(real), self.D(fake))
        self.critic_descend("critic", self.divergence, self.D, loss, real, fake)
        return {"critic_loss": loss.detach()}

    def generator_step(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        # (2) Update G: minimise the divergence's generator loss on D(G(z)).
        loss = self.divergence.generator_loss(self.D(self.G(self.latent(self.config.batch_size))))
        self.descend("generator", loss)
        return {"generator_loss": loss.detach()}
