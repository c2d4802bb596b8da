"""What every task trainer shares: its models, optimisers and random streams, as one resumable state."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["TaskTrainer", "adam", "sample_batch", "sample_latent"]


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

    Subclasses list their modules, optimisers and random streams in ``models``, ``optimizers`` and
    ``streams``; ``state_dict``/``load_state_dict`` then cover everything a resumed run needs.
    """

    name = "task"
    models: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    streams: dict[str, torch.Generator]

    def __init__(self) -> None:
        self.step_count = 0

    def step(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step_count,
            "models": {k: m.state_dict() for k, m in self.models.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "streams": {k: g.get_state() for k, g in self.streams.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step_count = int(state["step"])
        for key, module in self.models.items():
            module.load_state_dict(state["models"][key])
        for key, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][key])
        for key, stream in self.streams.items():
            stream.set_state(state["streams"][key])
