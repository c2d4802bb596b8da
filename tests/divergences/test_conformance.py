"""Every registered divergence passes the conformance suite; a wrong one fails it, naming the property."""

from __future__ import annotations

import pytest
import torch

from omasgan import divergences
from omasgan.testing import ConformanceError, check_divergence

PLUGIN_NAMES = ["reverse_kl", "neyman", "squared_hellinger", "jeffrey", "total_variation", "alpha"]


@pytest.mark.parametrize("name", sorted(divergences.available()))
def test_registered_divergence_passes_conformance(name):
    report = check_divergence(divergences.get(name), max_examples=60)
    assert report.passed
    assert all(r.status in ("passed", "skipped") for r in report.results)


@pytest.mark.parametrize("alpha", [-1.0, 0.3, 2.0, 4.0])
def test_alpha_divergence_passes_for_several_alphas(alpha):
    if "alpha" not in divergences.available():
        pytest.skip("omasgan-fdivergences is not installed")
    assert check_divergence(divergences.get("alpha", alpha=alpha), max_examples=40).passed


def test_plugin_divergences_are_installed_for_the_suite():
    # CI installs plugins/omasgan-fdivergences; without it the conformance run above would be thin.
    missing = [name for name in PLUGIN_NAMES if name not in divergences.available()]
    assert not missing, f"plugin divergences missing: {missing}; run bash .ci/setup"


def test_wrong_conjugate_fails_and_names_the_property():
    wrong = divergences.FDivergence(
        "kl_with_wrong_conjugate",
        f=lambda u: torch.xlogy(u, u),
        conjugate=lambda t: torch.exp(t),  # the KL conjugate is exp(t - 1)
        activation=lambda v: v,
        f_prime_at_1=1.0,
        fake_term=lambda v: divergences.exp_linear(v),
    )
    with pytest.raises(ConformanceError) as failure:
        check_divergence(wrong, max_examples=30)
    message = str(failure.value)
    assert "FAILED  Fenchel-Young equality at t = f'(u)" in message
    assert "FAILED  f* = sup_u (u t - f(u)) numerically" in message
    assert "Falsifying" in message or "Failing test case" in message


def test_overflowing_loss_fails_the_extreme_output_property():
    textbook_kl = divergences.FDivergence(
        "textbook_kl", f=lambda u: torch.xlogy(u, u), conjugate=lambda t: torch.exp(t - 1),
        activation=lambda v: v, f_prime_at_1=1.0,
    )
    report = check_divergence(textbook_kl, max_examples=30, raise_on_failure=False)
    failed = {r.name for r in report.failures}
    assert failed == {
        "losses finite, with finite gradients, for outputs in [-1e4, 1e4]",
        "losses finite, with finite gradients, on the grid of extreme outputs",
    }


def test_activation_outside_domain_fails():
    bad_js = divergences.FDivergence(
        "js_identity_activation", f=lambda u: torch.xlogy(u, u) - (u + 1) * torch.log((u + 1) / 2),
        conjugate=lambda t: -torch.log(2 - torch.exp(t)), activation=lambda v: v, f_prime_at_1=0.0,
        conjugate_domain=(-float("inf"), 0.6931471805599453),
    )
    report = check_divergence(bad_js, max_examples=30, raise_on_failure=False)
    assert "g_f maps every real into dom f*" in {r.name for r in report.failures}


def test_wrong_f_prime_at_1_fails():
    wrong = divergences.FDivergence(
        "kl_with_wrong_derivative", f=lambda u: torch.xlogy(u, u), conjugate=lambda t: torch.exp(t - 1),
        activation=lambda v: v, f_prime_at_1=0.0, fake_term=lambda v: divergences.exp_linear(v - 1),
    )
    report = check_divergence(wrong, max_examples=10, raise_on_failure=False)
    assert {r.name for r in report.failures} == {"f_prime_at_1 = f'(1) numerically"}
    # A kink at 1 (total variation, f = |u - 1| / 2): any subgradient in [-1/2, 1/2] passes, outside fails.
    def tv(f_prime):
        return divergences.FDivergence(
            "tv", f=lambda u: 0.5 * (u - 1).abs(), conjugate=lambda t: t, activation=lambda v: 0.5 * torch.tanh(v),
            f_prime_at_1=f_prime, conjugate_domain=(-0.5, 0.5),
        )
    assert "f_prime_at_1 = f'(1) numerically" not in {r.name for r in check_divergence(
        tv(0.25), max_examples=10, raise_on_failure=False).failures}
    assert "f_prime_at_1 = f'(1) numerically" in {r.name for r in check_divergence(
        tv(0.9), max_examples=10, raise_on_failure=False).failures}


def test_jeffrey_gradients_are_finite_where_lambert_w_underflows():
    # Before the fix the fake term's gradient overflowed as 1/W^2 once W(e^(1-t)) underflowed (t ~ 46).
    jeffrey = divergences.get("jeffrey") if "jeffrey" in divergences.available() else pytest.skip("no plugin")
    real = torch.zeros(2, requires_grad=True)
    fake = torch.tensor([0.0, 46.0], requires_grad=True)
    jeffrey.critic_loss(real, fake).backward()
    assert torch.isfinite(real.grad).all() and torch.isfinite(fake.grad).all()
    assert check_divergence(jeffrey).passed  # the defaults a plugin author runs


def test_the_extreme_grid_is_tried_whatever_hypothesis_draws():
    # The earlier Jeffrey fake term (1/W written as a division): one hypothesis example is enough to fail,
    # because the fixed grid of extreme outputs is always tried.
    def fake_term(t):
        capped = t.clamp(max=50.0)
        w = divergences.lambertw_exp(1 - capped)
        return w + 1 / w + capped - 2 + (t - capped) / w

    def conjugate(t):
        w = divergences.lambertw_exp(1 - t)
        return w + 1 / w + t - 2

    division_jeffrey = divergences.FDivergence(
        "division_jeffrey", f=lambda u: (u - 1) * torch.log(u), conjugate=conjugate,
        activation=lambda v: v, f_prime_at_1=0.0, fake_term=fake_term,
    )
    report = check_divergence(division_jeffrey, max_examples=1, raise_on_failure=False)
    assert "losses finite, with finite gradients, on the grid of extreme outputs" in {r.name for r in report.failures}
