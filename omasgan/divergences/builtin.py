"""Built-in divergences: kl, pearson, js, gan (f-divergences), klwgan and wasserstein.

Registered through the same hook as third-party plugins (STYLE §2.3).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from omasgan.divergences.base import Divergence
from omasgan.divergences.fdivergence import FDivergence
from omasgan.divergences.functional import exp_linear, log_mean_exp
from omasgan.divergences.hookspecs import hookimpl

__all__ = ["KLWGAN", "Wasserstein", "gan", "js", "kl", "pearson"]

LOG2 = math.log(2.0)


def kl(*, generator_mode: str = "nonsaturating") -> FDivergence:
    """Kullback-Leibler: f(u) = u log u, f*(t) = exp(t - 1), g_f(v) = v."""
    return FDivergence(
        "kl",
        f=lambda u: torch.xlogy(u, u),
        conjugate=lambda t: torch.exp(t - 1),
        activation=lambda v: v,
        f_prime_at_1=1.0,
        fake_term=lambda v: exp_linear(v - 1),
        generator_mode=generator_mode,
    )


def _pearson_conjugate(t: torch.Tensor) -> torch.Tensor:
    # sup over u >= 0 of (u t - (u - 1)^2): t^2/4 + t while the maximiser 1 + t/2 is >= 0, else -1 (at u = 0).
    # Nowozin et al. list t^2/4 + t, the conjugate of f extended to u < 0: a looser bound below t = -2.
    return torch.where(t >= -2, t * t / 4 + t, torch.full_like(t, -1.0))


def pearson(*, generator_mode: str = "nonsaturating") -> FDivergence:
    """Pearson chi^2: f(u) = (u - 1)^2, f*(t) = t^2/4 + t for t >= -2 (-1 below), g_f(v) = v."""
    return FDivergence(
        "pearson",
        f=lambda u: (u - 1) ** 2,
        conjugate=_pearson_conjugate,
        activation=lambda v: v,
        f_prime_at_1=0.0,
        generator_mode=generator_mode,
    )


def js(*, generator_mode: str = "nonsaturating") -> FDivergence:
    """Jensen-Shannon: f(u) = u log u - (u + 1) log((u + 1)/2), f*(t) = -log(2 - e^t),
    g_f(v) = log 2 - softplus(-v)."""
    return FDivergence(
        "js",
        f=lambda u: torch.xlogy(u, u) - (u + 1) * torch.log((u + 1) / 2),
        conjugate=lambda t: -torch.log(2 - torch.exp(t)),
        activation=lambda v: LOG2 - F.softplus(-v),
        f_prime_at_1=0.0,
        conjugate_domain=(-math.inf, LOG2),
        real_term=lambda v: F.softplus(-v) - LOG2,
        fake_term=lambda v: F.softplus(v) - LOG2,
        generator_mode=generator_mode,
    )


def gan(*, generator_mode: str = "nonsaturating") -> FDivergence:
    """The original GAN objective as an f-divergence (Goodfellow et al. 2014; Nowozin et al. 2016).

    f(u) = u log u - (u + 1) log(u + 1) + log 4 (Nowozin's f plus the constant log 4, so that f(1) = 0),
    f*(t) = -log(1 - e^t) - log 4, g_f(v) = -softplus(-v). The critic loss is the usual binary cross-entropy
    minus log 4, and ``estimate`` at the optimal critic is 2 JS(P||Q).
    """
    return FDivergence(
        "gan",
        f=lambda u: torch.xlogy(u, u) - (u + 1) * torch.log(u + 1) + 2 * LOG2,
        conjugate=lambda t: -torch.log(-torch.expm1(t)) - 2 * LOG2,
        activation=lambda v: -F.softplus(-v),
        f_prime_at_1=-LOG2,
        conjugate_domain=(-math.inf, 0.0),
        real_term=lambda v: F.softplus(-v),
        fake_term=lambda v: F.softplus(v) - 2 * LOG2,
        generator_mode=generator_mode,
    )


class KLWGAN(Divergence):
    """KL-WGAN (Song & Ermon 2020): a hinge critic whose fake-side outputs carry self-normalised weights.

    The weights of a fake batch are ``r = exp(v / T) / mean(exp(v / T))`` (= ``N * softmax(v / T)``, mean 1).

    - ``form="reference"`` (default): Song & Ermon's published code, which the OMASGAN authors' code uses:
      critic fake term ``relu(1 + r * v)``, generator loss ``-mean(r * v)``, with gradients through ``r``.
    - ``form="detached"``: ``r`` treated as constant importance weights on the hinge: critic fake term
      ``r * relu(1 + v)``, generator loss ``-mean(r * v)`` with ``r`` detached (omasgan 0.1's form). Its hinge
      is active where ``v > -1``; the reference form's where ``r * v > -1``.

    Both share the real term ``relu(1 - v)`` and the estimate ``E_P[v] - T log E_Q[exp(v / T)]`` (the
    Donsker-Varadhan bound at T = 1, Wasserstein as T grows).

    Parameters
    ----------
    temperature : float, default 5.0
        T > 0; the OMASGAN experiments use 5.
    form : {"reference", "detached"}, default "reference"
        Which formulation (above).
    """

    name = "klwgan"
    needs_lipschitz = True
    FORMS = ("reference", "detached")

    def __init__(self, *, temperature: float = 5.0, form: str = "reference") -> None:
        if not temperature > 0:
            raise ValueError(f"klwgan: temperature must be > 0, got {temperature}.")
        if form not in self.FORMS:
            raise ValueError(f"klwgan: form must be one of {self.FORMS}, got {form!r}.")
        super().__init__(temperature=float(temperature), form=form)
        self.temperature = float(temperature)
        self.form = form

    def weights(self, v: torch.Tensor) -> torch.Tensor:
        """Self-normalised weights ``N * softmax(v / T)`` of a fake batch (mean 1); detached in the
        ``"detached"`` form. The softmax is the overflow-free form of ``exp(v/T) / mean(exp(v/T))``."""
        source = v.detach() if self.form == "detached" else v
        return (v.shape[0] * torch.softmax(source / self.temperature, dim=0)).to(v.dtype)

    def critic_real_term(self, v: torch.Tensor) -> torch.Tensor:
        return F.relu(1 - v)

    def critic_fake_term(self, v: torch.Tensor) -> torch.Tensor:
        if self.form == "detached":
            return self.weights(v) * F.relu(1 + v)
        return F.relu(1 + self.weights(v) * v)

    def generator_loss(self, v_fake: torch.Tensor) -> torch.Tensor:
        return -(self.weights(v_fake) * v_fake).mean()

    def estimate(self, v_real: torch.Tensor, v_fake: torch.Tensor) -> torch.Tensor:
        return v_real.mean() - self.temperature * log_mean_exp(v_fake / self.temperature)


class Wasserstein(Divergence):
    """Wasserstein-1 (WGAN-GP, Gulrajani et al. 2017): critic terms ``-v`` and ``v``, generator ``-mean(v)``.

    Parameters
    ----------
    gradient_penalty : float, default 10.0
        Weight of ``E[(||grad critic(x_hat)|| - 1)^2]`` on random interpolates; 0 disables it.
    """

    name = "wasserstein"
    needs_lipschitz = True

    def __init__(self, *, gradient_penalty: float = 10.0) -> None:
        if gradient_penalty < 0:
            raise ValueError(f"wasserstein: gradient_penalty must be >= 0, got {gradient_penalty}.")
        super().__init__(gradient_penalty=float(gradient_penalty))
        self.gradient_penalty = float(gradient_penalty)

    def critic_real_term(self, v: torch.Tensor) -> torch.Tensor:
        return -v

    def critic_fake_term(self, v: torch.Tensor) -> torch.Tensor:
        return v

    def generator_loss(self, v_fake: torch.Tensor) -> torch.Tensor:
        return -v_fake.mean()

    def estimate(self, v_real: torch.Tensor, v_fake: torch.Tensor) -> torch.Tensor:
        return v_real.mean() - v_fake.mean()

    def penalty(self, critic, real, fake, *, generator=None):
        if self.gradient_penalty == 0:
            return None
        shape = (real.shape[0],) + (1,) * (real.dim() - 1)
        device = generator.device if generator is not None else real.device
        mix = torch.rand(shape, generator=generator, device=device, dtype=real.dtype).to(real.device)
        interpolates = (mix * real.detach() + (1 - mix) * fake.detach()).requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(interpolates).sum(), interpolates, create_graph=True)
        return self.gradient_penalty * ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


@hookimpl
def omasgan_register_divergences(register) -> None:
    register("kl", kl, description="Kullback-Leibler f-divergence")
    register("pearson", pearson, description="Pearson chi-squared f-divergence")
    register("js", js, description="Jensen-Shannon f-divergence")
    register("gan", gan, description="original GAN objective (estimate: 2 JS)")
    register(
        "klwgan", KLWGAN, description="KL-WGAN: hinge critic, self-normalised fake weights (Song & Ermon 2020)"
    )
    register("wasserstein", Wasserstein, description="Wasserstein-1 with gradient penalty (WGAN-GP)")
