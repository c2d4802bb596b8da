"""The variational bound with the optimal critic recovers closed-form divergences; a trained critic approaches it."""

from __future__ import annotations

import math

import pytest
import torch

from omasgan import divergences

MU_P, MU_Q = 0.0, 0.6  # P = N(0, 1), Q = N(0.6, 1)
DELTA = MU_P - MU_Q


def _log_ratio(x: torch.Tensor) -> torch.Tensor:
    """log p(x)/q(x) for unit-variance Gaussians."""
    return -0.5 * (x - MU_P) ** 2 + 0.5 * (x - MU_Q) ** 2


# Closed forms for unit variances, and the raw critic output v with g_f(v) = T*(x) = f'(p/q).
CASES = {
    "kl": (DELTA**2 / 2, lambda log_r: 1 + log_r),  # f'(u) = 1 + log u, g_f = identity
    "pearson": (math.exp(DELTA**2) - 1, lambda log_r: 2 * (torch.exp(log_r) - 1)),  # f'(u) = 2(u - 1)
    # f'(u) = 1 - u^(-1/2) = 1 - exp(-v)  =>  v = log(u) / 2
    "squared_hellinger": (2 * (1 - math.exp(-(DELTA**2) / 8)), lambda log_r: log_r / 2),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_optimal_critic_recovers_closed_form_between_gaussians(name):
    if name not in divergences.available():
        pytest.skip(f"{name} needs the omasgan-fdivergences plugin")
    truth, optimal_v = CASES[name]
    div = divergences.get(name)
    g = torch.Generator().manual_seed(0)
    n = 400_000
    x_p = MU_P + torch.randn(n, generator=g, dtype=torch.float64)
    x_q = MU_Q + torch.randn(n, generator=g, dtype=torch.float64)
    v_p, v_q = optimal_v(_log_ratio(x_p)), optimal_v(_log_ratio(x_q))
    estimate = float(div.estimate(v_p, v_q))
    # Monte-Carlo standard error of E_P[g(v)] - E_Q[f*(g(v))]
    se = math.sqrt(float(div.critic_real_term(v_p).var()) / n + float(div.critic_fake_term(v_q).var()) / n)
    assert abs(estimate - truth) <= 5 * se + 1e-4, (estimate, truth, se)


def test_trained_critic_approaches_kl_from_below():
    torch.manual_seed(0)
    div = divergences.get("kl")
    critic = torch.nn.Sequential(torch.nn.Linear(1, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    optimizer = torch.optim.Adam(critic.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    for _ in range(600):
        x_p = (MU_P + torch.randn(512, 1, generator=g))
        x_q = (MU_Q + torch.randn(512, 1, generator=g))
        loss = div.critic_loss(critic(x_p).squeeze(1), critic(x_q).squeeze(1))  # = -bound
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        x_p = MU_P + torch.randn(200_000, 1, generator=g)
        x_q = MU_Q + torch.randn(200_000, 1, generator=g)
        estimate = float(div.estimate(critic(x_p).squeeze(1), critic(x_q).squeeze(1)))
    truth = DELTA**2 / 2  # 0.18
    assert truth - 0.03 <= estimate <= truth + 0.01, estimate
