"""Extra f-divergences for omasgan, registered through the ``omasgan.divergences`` entry point."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

import omasgan
from omasgan.divergences import FDivergence, exp_linear, lambertw_exp, log_softplus

__all__ = ["alpha", "jeffrey", "neyman", "reverse_kl", "squared_hellinger", "total_variation"]


def reverse_kl(*, generator_mode: str = "nonsaturating") -> FDivergence:
    """Reverse KL: f(u) = -log u, f*(t) = -1 - log(-t), g_f(v) = -exp(-v)."""
    return FDivergence(
        "reverse_kl",
        f=lambda u: -torch.log(u),
        conjugate=lambda t: -1 - torch.log(-t),
        activation=lambda v: -torch.exp(-v),
        f_prime_at_1=-1.0,
        conjugate_domain=(-math.inf, 0.0),
        real_term=lambda v: exp_linear(-v),
        fake_term=lambda v: v - 1,
        generator_mode=generator_mode,
    )


def neyman(*, generator_mode: str = "nonsaturating") -> FDivergence:
    """Neyman chi^2: f(u) = (1 - u)^2 / u, f*(t) = 2 - 2 sqrt(1 - t), g_f(v) = 1 - exp(-v)."""
    return FDivergence(
        "neyman",
        f=lambda u: (1 - u) ** 2 / u,
        conjugate=lambda t: 2 - 2 * torch.sqrt(1 - t),
        activation=lambda v: 1 - torch.exp(-v),
        f_prime_at_1=0.0,
        conjugate_domain=(-math.inf, 1.0),
        real_term=lambda v: exp_linear(-v) - 1,
        fake_term=lambda v: 2 - 2 * exp_linear(-v / 2),
        generator_mode=generator_mode,
    )


def squared_hellinger(*, generator_mode: str = "nonsaturating") -> FDivergence:
    """Squared Hellinger: f(u) = (sqrt(u) - 1)^2, f*(t) = t / (1 - t), g_f(v) = 1 - exp(-v)."""
    return FDivergence(
        "squared_hellinger",
        f=lambda u: (torch.sqrt(u) - 1) ** 2,
        conjugate=lambda t: t / (1 - t),
        activation=lambda v: 1 - torch.exp(-v),
        f_prime_at_1=0.0,
        conjugate_domain=(-math.inf, 1.0),
        real_term=lambda v: exp_linear(-v) - 1,
        fake_term=lambda v: exp_linear(v) - 1,
        generator_mode=generator_mode,
    )


_JEFFREY_CAP = 50.0


def _reciprocal_w(t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    # 1/W(e^(1-t)) written as exp(t - 1 + W): W e^W = e^(1-t). Its autograd derivative stays finite where
    # W underflows (t >~ 40 in float32), while that of 1/w overflows as 1/w^2.
    return torch.exp(t - 1 + w)


def _jeffrey_conjugate(t: torch.Tensor) -> torch.Tensor:
    w = lambertw_exp(1 - t)
    return w + _reciprocal_w(t, w) + t - 2


def _jeffrey_fake_term(t: torch.Tensor) -> torch.Tensor:
    # f*(t) grows like e^(t-1); past the cap continue it by its tangent (slope f*'(t) = 1/W(e^(1-t))).
    capped = t.clamp(max=_JEFFREY_CAP)
    w = lambertw_exp(1 - capped)
    slope = _reciprocal_w(capped, w)
    return w + slope + capped - 2 + (t - capped) * slope


def jeffrey(*, generator_mode: str = "nonsaturating") -> FDivergence:
    """Jeffrey: f(u) = (u - 1) log u, f*(t) = W(e^(1-t)) + 1/W(e^(1-t)) + t - 2 (Lambert W), g_f(v) = v."""
    return FDivergence(
        "jeffrey",
        f=lambda u: (u - 1) * torch.log(u),
        conjugate=_jeffrey_conjugate,
        activation=lambda v: v,
        f_prime_at_1=0.0,
        fake_term=_jeffrey_fake_term,
        generator_mode=generator_mode,
    )


def total_variation(*, generator_mode: str = "nonsaturating") -> FDivergence:
    """Total variation: f(u) = |u - 1| / 2, f*(t) = t on [-1/2, 1/2], g_f(v) = tanh(v) / 2."""
    return FDivergence(
        "total_variation",
        f=lambda u: 0.5 * torch.abs(u - 1),
        conjugate=lambda t: t,
        activation=lambda v: 0.5 * torch.tanh(v),
        f_prime_at_1=0.0,
        conjugate_domain=(-0.5, 0.5),
        generator_mode=generator_mode,
    )


def alpha(*, alpha: float = 0.5, generator_mode: str = "nonsaturating") -> FDivergence:
    """Amari alpha-divergence: f(u) = (u^a - 1 - a(u - 1)) / (a(a - 1)), f*(t) = ((1 + t(a-1))^(a/(a-1)) - 1) / a.

    g_f(v) = 1/(1-a) - softplus(-v) for a < 1 and softplus(v) - 1/(a-1) for a > 1, so that every output
    lands in dom f* = {t : 1 + t(a-1) > 0}. alpha = 0.5 is twice the squared Hellinger distance.
    """
    a = float(alpha)
    if a in (0.0, 1.0) or not math.isfinite(a):
        raise ValueError(f"alpha: alpha must be finite and not 0 or 1 (those are the KL limits), got {alpha}.")
    power = a / (a - 1)

    def f(u):
        return (u**a - 1 - a * (u - 1)) / (a * (a - 1))

    def conjugate(t):
        return ((1 + t * (a - 1)) ** power - 1) / a

    if a < 1:
        domain = (-math.inf, 1 / (1 - a))

        def activation(v):
            return 1 / (1 - a) - F.softplus(-v)

        def real_term(v):
            return F.softplus(-v) - 1 / (1 - a)

        def log_base(v):  # log(1 + g_f(v)(a - 1)) = log((1 - a) softplus(-v))
            return math.log(1 - a) + log_softplus(-v)
    else:
        domain = (-1 / (a - 1), math.inf)

        def activation(v):
            return F.softplus(v) - 1 / (a - 1)

        def real_term(v):
            return 1 / (a - 1) - F.softplus(v)

        def log_base(v):  # log((a - 1) softplus(v))
            return math.log(a - 1) + log_softplus(v)

    return FDivergence(
        "alpha",
        f=f,
        conjugate=conjugate,
        activation=activation,
        f_prime_at_1=0.0,
        conjugate_domain=domain,
        real_term=real_term,
        fake_term=lambda v: (exp_linear(power * log_base(v)) - 1) / a,
        generator_mode=generator_mode,
        params={"alpha": a},
    )


@omasgan.hookimpl
def omasgan_register_divergences(register) -> None:
    register("reverse_kl", reverse_kl, description="reverse Kullback-Leibler")
    register("neyman", neyman, description="Neyman chi-squared")
    register("squared_hellinger", squared_hellinger, description="squared Hellinger distance")
    register("jeffrey", jeffrey, description="Jeffrey (symmetrised KL), conjugate via Lambert W")
    register("total_variation", total_variation, description="total variation distance")
    register("alpha", alpha, description="Amari alpha-divergence, parameter alpha")
