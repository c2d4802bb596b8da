"""What every task trainer shares: its models, optimisers and random streams, as one resumable state."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from omasgan.runtime import Engine

__all__ = ["AdversarialTrainer", "TaskTrainer", "adam", "sample_batch", "sample_latent"]


def adam(module: nn.Module, lr: float) -> torch.optim.Adam:
    """Adam with the DCGAN betas (0.5, 0.999), as the OMASGAN experiments use."""
    return torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=lr, betas=(0.5, 0.999))


def sample_latent(n: int, latent_dim: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """z ~ N(0, I), drawn from the task's own stream (generators live on the CPU: same draws on any device)."""
    return torch.randn(n, latent_dim, generator=generator).to(device)


def sample_batch(x: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """n rows of x drawn uniformly with replacement from the task's batch stream."""
    index = torch.randint(0, x.shape[0], (n,), generator=generator)
    return x[index.to(x.device)]


class TaskTrainer:
    """Base of the per-task trainers: ``step(x)`` does one update and returns its metrics as tensors.

    Subclasses list their modules and optimisers in ``models`` and ``optimizers``;
    ``state_dict``/``load_state_dict`` then cover everything a resumed run needs, random streams included.
    Networks are called through ``engine.prepare`` (short names as in the paper: ``self.G(z)``), which
    applies DDP, autocast and compile; ``models`` holds the plain modules whose state is saved.
    """

    name = "task"
    models: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]

    def __init__(self, *, engine: Engine, latent_dim: int, streams: dict[str, torch.Generator]) -> None:
        self.step_count = 0
        self.engine, self.device = engine, engine.device
        self.latent_dim, self.streams = latent_dim, streams
        self.buffers: dict[str, torch.Tensor] = {}  # other state that evolves in training (e.g. adaptive weights)

    def step(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def diagnostics(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Extra measurements logged with the metrics (only at logged steps); must not change training."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step_count,
            "models": {k: m.state_dict() for k, m in self.models.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "streams": {k: g.get_state() for k, g in self.streams.items()},
            "buffers": dict(self.buffers),
        }

    def latent(self, n: int) -> torch.Tensor:
        """n latents z ~ N(0, I) from this task's latent stream."""
        return sample_latent(n, self.latent_dim, self.streams["latent"], self.device)

    def descend(self, optimizer: str, loss: torch.Tensor) -> None:
        """One step of ``self.optimizers[optimizer]`` on ``loss`` (gradients reset to None first)."""
        opt = self.optimizers[optimizer]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step_count = int(state["step"])
        for key, module in self.models.items():
            module.load_state_dict(state["models"][key])
        for key, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][key])
        for key, stream in self.streams.items():
            stream.set_state(state["streams"][key])
        self.buffers.update({k: v.to(self.device) for k, v in state.get("buffers", {}).items()})


class AdversarialTrainer(TaskTrainer):
    """A critic/generator alternation: ``n_critic`` critic updates, then one generator update per step."""

    config: Any  # has n_critic

    def critic_step(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def generator_step(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def critic_descend(
        self, optimizer: str, divergence, critic: nn.Module, loss: torch.Tensor, real: torch.Tensor, fake: torch.Tensor
    ) -> None:
        """Critic update on ``loss`` plus the divergence's regulariser (if any) on (real, fake)."""
        penalty = divergence.penalty(critic, real, fake, generator=self.streams["penalty"])
        self.descend(optimizer, loss if penalty is None else loss + penalty)

    def step(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        metrics: dict[str, torch.Tensor] = {}
        for _ in range(self.config.n_critic):
            metrics = self.critic_step(x)
        metrics.update(self.generator_step(x))
        self.step_count += 1
        return metrics
