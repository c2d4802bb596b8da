"""Task 1: the base GAN. The critic D and generator G alternate under the chosen divergence."""

from __future__ import annotations

import torch
from torch import nn

from omasgan.config import Task1Config
from omasgan.divergences import Divergence
from omasgan.tasks._common import TaskTrainer, adam, sample_batch, sample_latent

__all__ = ["Task1Trainer"]


class Task1Trainer(TaskTrainer):
    """Trains G and D from scratch (or from the modules given)."""

    name = "task1"

    def __init__(
        self,
        generator: nn.Module,
        critic: nn.Module,
        divergence: Divergence,
        config: Task1Config,
        *,
        latent_dim: int,
        streams: dict[str, torch.Generator],
        device: torch.device,
    ) -> None:
        super().__init__()
        self.generator, self.critic = generator.train(), critic.train()
        self.divergence, self.config, self.latent_dim, self.device = divergence, config, latent_dim, device
        self.models = {"generator": self.generator, "critic": self.critic}
        self.optimizers = {"generator": adam(generator, config.lr_generator), "critic": adam(critic, config.lr_critic)}
        self.streams = streams

    def critic_step(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        # (1) Update D: minimise the divergence's critic loss on (x real, G(z) fake), plus its penalty.
        real = sample_batch(x, self.config.batch_size, self.streams["batch"])
        fake = self.generator(sample_latent(real.shape[0], self.latent_dim, self.streams["latent"], self.device))
        fake = fake.detach()
        loss = self.divergence.critic_loss(self.critic(real), self.critic(fake))
        penalty = self.divergence.penalty(self.critic, real, fake, generator=self.streams["penalty"])
        total = loss if penalty is None else loss + penalty
        self.optimizers["critic"].zero_grad(set_to_none=True)
        total.backward()
        self.optimizers["critic"].step()
        return {"critic_loss": loss.detach()}

    def generator_step(self) -> dict[str, torch.Tensor]:
        # (2) Update G: minimise the divergence's generator loss on D(G(z)).
        z = sample_latent(self.config.batch_size, self.latent_dim, self.streams["latent"], self.device)
        loss = self.divergence.generator_loss(self.critic(self.generator(z)))
        self.optimizers["generator"].zero_grad(set_to_none=True)
        loss.backward()
        self.optimizers["generator"].step()
        return {"generator_loss": loss.detach()}

    def step(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        metrics = {}
        for _ in range(self.config.n_critic):
            metrics = self.critic_step(x)
        metrics.update(self.generator_step())
        self.step_count += 1
        return metrics
