"""Task 2: the boundary generator B (DESIGN §2).

B starts as a copy of G (G frozen) and minimises  L_B = -m(B, G) + mu mean_i d_i + nu mean_i s_i:
it *ascends* the usual generator objective against a critic D_B (copied from D, trained on reference
samples vs B's), while the nearness term d (exact distance to the nearest of Q reference points) keeps
it close to the data and the scattering term s spreads its samples.

Options against degenerate samples (Task2Config; DESIGN §8 measured the collapse they address): B in
G's latent space, nearness in the frozen Task-1 critic's feature space, a mu that adapts to hold B at a
set multiple of G's own nearness, an RBF repulsion between B's samples, and matching of per-sample
intensity and contrast statistics to the reference.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import nn

from omasgan import ops
from omasgan.config import Task2Config
from omasgan.divergences import Divergence
from omasgan.nets.assembly import boundary_network
from omasgan.nets.features import CriticFeatures
from omasgan.runtime import Engine
from omasgan.tasks.base import AdversarialTrainer, adam, sample_batch

__all__ = ["BoundaryTrainer", "boundary_loss", "repulsion", "statistics_gap"]

Embedding = Callable[[torch.Tensor], torch.Tensor]


def boundary_loss(
    divergence: Divergence,
    v_b: torch.Tensor,
    b: torch.Tensor,
    z: torch.Tensor,
    reference: torch.Tensor,
    *,
    mu: float | torch.Tensor,
    nu: float,
    eps: float = 1e-8,
    embed: Embedding | None = None,
    push_limit: float = 0.0,
) -> dict[str, torch.Tensor]:
    """The terms of L_B for one batch.

    Parameters
    ----------
    v_b : (N,) critic D_B's outputs on b.   b : (N, ...) boundary samples B(z).   z : (N, L) their latents.
    reference : (Q, ...) the reference pool (no gradient).
    embed : the space of the nearness term (None: flattened samples, the paper's pixel L2).
    push_limit : > 0 bounds the push: D_B outputs below -push_limit are clamped there, so samples already
        judged far from the reference stop being pushed (0: unbounded, the paper's L_B).

    Returns
    -------
    dict with ``total`` = -push + mu * nearness + nu * scattering, and each term: ``push`` = m(B, G), the
    generator loss B ascends; ``nearness`` = mean_i min_j ||b_i - r_j||; ``scattering`` = mean_i s_i.
    """
    push = divergence.generator_loss(v_b.clamp(min=-push_limit) if push_limit > 0 else v_b)
    embed = embed or (lambda points: points.flatten(1))
    nearness = ops.min_distance(embed(b), embed(reference))[0].mean()
    scattering = ops.scattering(z, b.flatten(1), eps).mean()
    total = -push + mu * nearness + nu * scattering
    return {"total": total, "push": push, "nearness": nearness, "scattering": scattering}


def repulsion(points: torch.Tensor) -> torch.Tensor:
    """Mean RBF similarity exp(-|p_i - p_j|^2 / h) over pairs i != j, h = the median squared distance
    (detached): falls as the points spread, with gradients on every pair, unlike a ratio of distances."""
    n = points.shape[0]
    squared = torch.cdist(points, points).pow(2)
    off_diagonal = ~torch.eye(n, dtype=torch.bool, device=points.device)
    bandwidth = squared[off_diagonal].detach().median().clamp_min(1e-12)
    return torch.exp(-squared[off_diagonal] / bandwidth).mean()


def statistics_gap(b: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Squared gaps between B's and the reference's mean and SD of per-sample intensity and contrast,
    each in units of the reference's SD of that statistic: zero when a global statistic cannot tell
    B's batch from the reference's."""

    def stats(x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        return torch.stack([flat.mean(1), flat.std(1)], dim=1)  # (N, 2): intensity, contrast

    s_b, s_r = stats(b), stats(reference).detach()
    scale = s_r.std(0).clamp_min(1e-6)
    gap_mean = (s_b.mean(0) - s_r.mean(0)) / scale
    gap_sd = (s_b.std(0) - s_r.std(0)) / scale
    return (gap_mean.pow(2) + gap_sd.pow(2)).sum()


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
        # A latent shift's initial weights come from the run's seed (via the latent stream's), not global RNG state.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(streams["latent"].initial_seed())
            self.boundary = boundary_network(copy.deepcopy(generator), config.boundary_space, latent_dim)
        if config.boundary_space == "weights":
            self.boundary.requires_grad_(True)  # B is G's copy, trained whole (a latent shift trains h alone)
        self.boundary.train()
        self.critic = copy.deepcopy(critic).requires_grad_(True).train()
        self.G = engine.prepare(self.generator, trained=False)
        self.B = engine.prepare(self.boundary, trained=True)
        self.D_B = engine.prepare(self.critic, trained=True)
        self.embed: Embedding | None = None
        if config.nearness_space == "features":
            self.embed = engine.prepare(CriticFeatures(critic), trained=False)
        # log(mu), adapted when target_ratio > 0; saved with the trainer's state.
        # On the device, so adapting it needs no host synchronisation per step.
        log_mu = math.log(config.mu) if config.mu > 0 else -math.inf
        self.buffers = {"log_mu": torch.tensor(log_mu, device=self.device)}
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
        cfg = self.config
        z = self.latent(cfg.batch_size)
        b = self.B(z)
        pool = self.reference(cfg.pool_size, x)
        mu = self.buffers["log_mu"].exp()
        terms = boundary_loss(
            self.divergence,
            self.D_B(b),
            b,
            z,
            pool,
            mu=mu,
            nu=cfg.nu,
            eps=cfg.eps,
            embed=self.embed,
            push_limit=cfg.push_limit,
        )
        total = terms["total"]
        if cfg.repulsion > 0:
            terms["repulsion"] = repulsion(self.embed(b) if self.embed is not None else b.flatten(1))
            total = total + cfg.repulsion * terms["repulsion"]
        if cfg.match_statistics > 0:
            terms["statistics_gap"] = statistics_gap(b, pool)
            total = total + cfg.match_statistics * terms["statistics_gap"]
        self.descend("boundary", total)
        metrics = {f"boundary_{k}": v.detach() for k, v in terms.items()}
        metrics["boundary_mu"] = mu
        if cfg.target_ratio > 0:
            metrics["boundary_generator_nearness"] = self._adapt_mu(terms["nearness"].detach(), pool)
        return metrics

    @torch.no_grad()
    def _adapt_mu(self, nearness_b: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
        """Raise mu when B's mean nearness exceeds target_ratio x G's (measured on fresh G samples against
        the same pool, in the same space), lower it when B is closer: B settles at a set multiple of the
        distance G's own samples keep from the reference, whatever the space's scale."""
        g = self.G(self.latent(self.config.batch_size))
        embed = self.embed or (lambda points: points.flatten(1))
        nearness_g = ops.min_distance(embed(g), embed(pool))[0].mean()
        ratio = nearness_b / (self.config.target_ratio * nearness_g.clamp_min(1e-12))
        error = self.engine.context.mean(ratio.reshape(1))[0].double() - 1.0  # every rank adapts mu alike
        step = (self.config.mu_rate * error.clamp(-1.0, 1.0)).float()
        self.buffers["log_mu"] = (self.buffers["log_mu"] + step).clamp(math.log(1e-4), math.log(1e4))
        return nearness_g

    @torch.no_grad()
    def diagnostics(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """B's and G's mean distance to their nearest training sample (pixel L2) and B's diversity (mean
        pairwise distance of B's samples over that of the data's), on samples drawn from a stream seeded by
        the step, so that measuring leaves training unchanged."""
        stream = torch.Generator().manual_seed(1_000_003 + self.step_count)
        n = min(512, x.shape[0])
        z = torch.randn(n, self.latent_dim, generator=stream).to(self.device)
        data = x[torch.randint(0, x.shape[0], (4 * n,), generator=stream).to(x.device)].flatten(1)
        was_training = self.boundary.training
        self.boundary.eval()
        b = self.B(z).flatten(1)
        self.boundary.train(was_training)
        g = self.G(z).flatten(1)
        real = data[:n]

        def spread(points: torch.Tensor) -> torch.Tensor:
            return torch.pdist(points).mean()

        # Data drawn with replacement from few (or identical) rows can have no spread: a ratio, not inf.

        return {
            "boundary_nn_data": ops.min_distance(b, data)[0].mean(),
            "generator_nn_data": ops.min_distance(g, data)[0].mean(),
            "boundary_diversity": spread(b) / spread(real).clamp_min(1e-12),
        }
