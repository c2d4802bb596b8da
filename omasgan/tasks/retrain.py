"""Task 3: retrain G' against a critic C that is told B's samples are negatives (eq. 5, Rumi-GAN style).

C's positives are x (weight alpha) and G(z) (weight delta); its negatives are G'(z) (weight beta) and
B(z) (weight gamma). G' starts as a copy of G and minimises the generator loss against C.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from omasgan.config import Task3Config
from omasgan.divergences import Divergence
from omasgan.runtime import Engine
from omasgan.tasks.base import AdversarialTrainer, adam, sample_batch

__all__ = ["RetrainTrainer", "active_share", "retrain_critic_loss"]


def retrain_critic_loss(
    divergence: Divergence,
    v_x: torch.Tensor,
    v_g: torch.Tensor,
    v_gp: torch.Tensor,
    v_b: torch.Tensor,
    *,
    alpha: float,
    delta: float,
    beta: float,
    gamma: float,
) -> dict[str, torch.Tensor]:
    """C's loss: alpha real(x) + delta real(G) + beta fake(G') + gamma fake(B), each term a batch mean."""
    terms = {
        "data": divergence.critic_real_term(v_x).mean(),
        "generator": divergence.critic_real_term(v_g).mean(),
        "retrained": divergence.critic_fake_term(v_gp).mean(),
        "boundary": divergence.critic_fake_term(v_b).mean(),
    }
    terms["total"] = (
        alpha * terms["data"] + delta * terms["generator"] + beta * terms["retrained"] + gamma * terms["boundary"]
    )
    return terms


def active_share(term: Callable[[torch.Tensor], torch.Tensor], v: torch.Tensor) -> torch.Tensor:
    """Share of samples whose own loss term ``term(v)[i]`` has a non-zero derivative in its own critic
    output ``v[i]``: for a hinge critic, the share inside the margin; 0 means the term no longer trains C
    (DESIGN §8: "log whether each loss term is active").

    The diagonal of the Jacobian, not the gradient of the sum: a term that couples the batch (KL-WGAN's
    self-normalised weights) gives every sample a gradient through the others' terms, inside or outside
    its own margin.
    """
    jacobian = torch.autograd.functional.jacobian(term, v.detach().float(), vectorize=True)
    return (jacobian.diagonal() != 0).float().mean()


class RetrainTrainer(AdversarialTrainer):
    name = "task3"

    def __init__(
        self,
        generator: nn.Module,
        critic: nn.Module,
        boundary: nn.Module,
        divergence: Divergence,
        config: Task3Config,
        *,
        fresh_critic: nn.Module | None,
        engine: Engine,
        latent_dim: int,
        streams: dict[str, torch.Generator],
    ) -> None:
        super().__init__(engine=engine, latent_dim=latent_dim, streams=streams)
        self.generator = generator.requires_grad_(False).eval()
        self.boundary = boundary.requires_grad_(False).eval()
        self.retrained = copy.deepcopy(generator).requires_grad_(True).train()
        base = fresh_critic if config.critic_init == "fresh" and fresh_critic is not None else copy.deepcopy(critic)
        self.critic = base.requires_grad_(True).train()
        self.G, self.B = engine.prepare(self.generator, trained=False), engine.prepare(self.boundary, trained=False)
        self.G_prime, self.C = engine.prepare(self.retrained, trained=True), engine.prepare(self.critic, trained=True)
        self.divergence, self.config = divergence, config
        self.models = {"retrained_generator": self.retrained, "retrain_critic": self.critic}
        self.optimizers = {
            "retrained_generator": adam(self.retrained, config.lr_generator),
            "retrain_critic": adam(self.critic, config.lr_critic),
        }

    def critic_step(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        # (1) Update C: positives x (alpha) and G(z) (delta); negatives G'(z) (beta) and B(z) (gamma).
        cfg, n = self.config, self.config.batch_size
        real = sample_batch(x, n, self.streams["batch"])
        with torch.no_grad():
            g, b = self.G(self.latent(n)), self.B(self.latent(n))
            gp = self.G_prime(self.latent(n))
        v_b = self.C(b)
        terms = retrain_critic_loss(
            self.divergence,
            self.C(real),
            self.C(g),
            self.C(gp),
            v_b,
            alpha=cfg.alpha,
            delta=cfg.delta,
            beta=cfg.beta,
            gamma=cfg.gamma,
        )
        metrics = {f"retrain_critic_{k}": v.detach() for k, v in terms.items()}
        self._last_v_b = v_b.detach()  # for the active share, measured only at logged steps (diagnostics)
        self.critic_descend("retrain_critic", self.divergence, self.C, terms["total"], real, gp)
        return metrics

    def diagnostics(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The share of the last critic batch's B samples whose C term is active (a Jacobian: logged steps only)."""
        return {"boundary_term_active": active_share(self.divergence.critic_fake_term, self._last_v_b)}

    def generator_step(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        # (2) Update G': minimise the generator loss against C.
        loss = self.divergence.generator_loss(self.C(self.G_prime(self.latent(self.config.batch_size))))
        self.descend("retrained_generator", loss)
        return {"retrained_generator_loss": loss.detach()}
