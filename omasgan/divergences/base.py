"""The ``Divergence`` contract: how raw critic outputs become losses (DESIGN §4)."""

from __future__ import annotations

import abc
from typing import Any

import torch

__all__ = ["Divergence"]


class Divergence(abc.ABC):
    """A distribution metric for adversarial training, acting on raw critic outputs ``v``.

    Loss convention: the critic *minimises* ``critic_loss`` and the generator *minimises*
    ``generator_loss``. The critic loss is the mean of per-sample real-side and fake-side terms, so
    weighted mixes (Task 3 of OMASGAN) are ``alpha * real_term(v_x).mean() + beta * fake_term(v_g).mean()``.

    Attributes
    ----------
    name : str
        Registry name.
    needs_lipschitz : bool
        Whether the critic must be Lipschitz (spectral norm and/or ``penalty``) for the loss to make sense.
    params : dict
        The parameters this instance was built with (JSON-serialisable).
    """

    name: str = ""
    needs_lipschitz: bool = False

    def __init__(self, **params: Any) -> None:
        self.params = dict(params)

    @abc.abstractmethod
    def critic_real_term(self, v: torch.Tensor) -> torch.Tensor:
        """Per-sample critic loss on real (P-side) outputs ``v`` (N,)."""

    @abc.abstractmethod
    def critic_fake_term(self, v: torch.Tensor) -> torch.Tensor:
        """Per-sample critic loss on fake (Q-side) outputs ``v`` (N,)."""

    @abc.abstractmethod
    def generator_loss(self, v_fake: torch.Tensor) -> torch.Tensor:
        """Scalar loss the generator minimises, from the critic's outputs on its samples."""

    @abc.abstractmethod
    def estimate(self, v_real: torch.Tensor, v_fake: torch.Tensor) -> torch.Tensor:
        """Scalar variational estimate of the divergence between P (real) and Q (fake)."""

    def critic_loss(self, v_real: torch.Tensor, v_fake: torch.Tensor) -> torch.Tensor:
        """Scalar loss the critic minimises: mean real term plus mean fake term."""
        return self.critic_real_term(v_real).mean() + self.critic_fake_term(v_fake).mean()

    def penalty(
        self,
        critic: torch.nn.Module,
        real: torch.Tensor,
        fake: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor | None:
        """Optional critic regulariser added to the critic loss (e.g. a gradient penalty); None if none."""
        return None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}(name={self.name!r}{', ' + args if args else ''})"
