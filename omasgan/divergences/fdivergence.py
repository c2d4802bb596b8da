"""f-divergences defined by their generator f, conjugate f* and output activation g_f (Nowozin et al. 2016)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from omasgan.divergences.base import Divergence

__all__ = ["FDivergence"]

TensorFn = Callable[[torch.Tensor], torch.Tensor]


class FDivergence(Divergence):
    """An f-divergence ``D_f(P||Q) = E_Q[f(p/q)]`` in its variational (f-GAN) form.

    Everything follows from ``f``, ``f*`` and ``g_f``: with ``T = g_f(v)`` the critic maximises the lower
    bound ``E_P[T] - E_Q[f*(T)]``, so its per-sample loss terms are ``-g_f(v)`` (real) and
    ``f*(g_f(v))`` (fake).

    Parameters
    ----------
    name : str
        Registry name.
    f : callable
        The convex generator on ``u > 0`` with ``f(1) = 0``.
    conjugate : callable
        Its convex conjugate ``f*(t) = sup_u (u t - f(u))``, on ``conjugate_domain``.
    activation : callable
        ``g_f``: maps every real critic output into ``conjugate_domain``.
    f_prime_at_1 : float
        ``f'(1)``: the critic's optimal ``T`` where P = Q (a (sub)gradient where f is not differentiable).
    conjugate_domain : (float, float)
        Open interval where ``f*`` is finite (``-inf``/``inf`` for unbounded ends).
    real_term, fake_term : callable, optional
        Fused, numerically stable forms of ``-g_f(v)`` and ``f*(g_f(v))`` for large ``|v|``; they must agree
        with the composition where both are finite (``omasgan.testing.check_divergence`` verifies it).
    generator_mode : {"nonsaturating", "saturating"}
        Generator loss ``-E_Q[g_f(v)]`` (Nowozin et al.'s practical choice, strong gradients early on) or
        ``-E_Q[f*(g_f(v))]`` (the minimax objective).
    params : dict, optional
        Parameters recorded with the instance (e.g. ``{"alpha": 0.5}``).
    """

    GENERATOR_MODES = ("nonsaturating", "saturating")

    def __init__(
        self,
        name: str,
        f: TensorFn,
        conjugate: TensorFn,
        activation: TensorFn,
        f_prime_at_1: float,
        *,
        conjugate_domain: tuple[float, float] = (-math.inf, math.inf),
        real_term: TensorFn | None = None,
        fake_term: TensorFn | None = None,
        generator_mode: str = "nonsaturating",
        params: dict[str, Any] | None = None,
    ) -> None:
        if generator_mode not in self.GENERATOR_MODES:
            raise ValueError(f"generator_mode must be one of {self.GENERATOR_MODES}, got {generator_mode!r}.")
        super().__init__(**(params or {}), generator_mode=generator_mode)
        self.name = name
        self.f = f
        self.conjugate = conjugate
        self.activation = activation
        self.f_prime_at_1 = float(f_prime_at_1)
        self.conjugate_domain = (float(conjugate_domain[0]), float(conjugate_domain[1]))
        self._real_term = real_term
        self._fake_term = fake_term
        self.generator_mode = generator_mode

    def critic_real_term(self, v: torch.Tensor) -> torch.Tensor:
        return self._real_term(v) if self._real_term is not None else -self.activation(v)

    def critic_fake_term(self, v: torch.Tensor) -> torch.Tensor:
        return self._fake_term(v) if self._fake_term is not None else self.conjugate(self.activation(v))

    def generator_loss(self, v_fake: torch.Tensor) -> torch.Tensor:
        if self.generator_mode == "saturating":
            return -self.critic_fake_term(v_fake).mean()
        return self.critic_real_term(v_fake).mean()

    def estimate(self, v_real: torch.Tensor, v_fake: torch.Tensor) -> torch.Tensor:
        return -(self.critic_real_term(v_real).mean() + self.critic_fake_term(v_fake).mean())
