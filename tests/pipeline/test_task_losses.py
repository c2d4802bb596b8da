"""Each task's loss is the equation in DESIGN §2, checked on fixed tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.testing import assert_close

from omasgan import divergences
from omasgan.tasks import active_share, boundary_loss, detector_loss, retrain_critic_loss


def test_boundary_loss_matches_equation():
    div = divergences.get("klwgan", temperature=5.0)
    g = torch.Generator().manual_seed(0)
    b = torch.randn(6, 3, generator=g, dtype=torch.float64)
    z = torch.randn(6, 2, generator=g, dtype=torch.float64)
    ref = torch.randn(10, 3, generator=g, dtype=torch.float64)
    v_b = torch.randn(6, generator=g, dtype=torch.float64)
    terms = boundary_loss(div, v_b, b, z, ref, mu=0.2, nu=0.3, eps=1e-8)

    d = torch.cdist(b, ref).min(1).values  # d_i = min_j ||b_i - r_j||
    pair_z, pair_b = torch.cdist(z, z), torch.cdist(b, b)
    off = ~torch.eye(6, dtype=torch.bool)
    s = torch.stack([(pair_z[i][off[i]] / (pair_b[i][off[i]] + 1e-8)).sum() / 5 for i in range(6)])
    r = 6 * torch.softmax(v_b / 5.0, 0)
    push = -(r * v_b).mean()  # KL-WGAN generator loss, which B ascends
    assert_close(terms["push"], push)
    assert_close(terms["nearness"], d.mean())
    assert_close(terms["scattering"], s.mean())
    assert_close(terms["total"], -push + 0.2 * d.mean() + 0.3 * s.mean())


def test_retrain_critic_loss_weights_each_term():
    div = divergences.get("js")
    v = [torch.tensor([0.5, -1.0]), torch.tensor([2.0, 0.0]), torch.tensor([-0.3, 0.7]), torch.tensor([1.5, -2.0])]
    terms = retrain_critic_loss(div, *v, alpha=0.3, delta=0.4, beta=1.0, gamma=0.7)
    log2 = torch.log(torch.tensor(2.0))
    real = lambda t: (F.softplus(-t) - log2).mean()  # noqa: E731  -g_f(v) for JS
    fake = lambda t: (F.softplus(t) - log2).mean()  # noqa: E731  f*(g_f(v)) for JS
    expected = 0.3 * real(v[0]) + 0.4 * real(v[1]) + 1.0 * fake(v[2]) + 0.7 * fake(v[3])
    assert_close(terms["total"], expected)
    assert_close(terms["boundary"], fake(v[3]))


def test_detector_loss_is_weighted_binary_cross_entropy():
    j_b, j_x, j_gp = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0]), torch.tensor([1.0, 0.0])
    terms = detector_loss(j_b, j_x, j_gp, zeta=0.5)
    bce = F.binary_cross_entropy_with_logits
    expected = bce(j_b, torch.ones(2)) + 0.5 * bce(j_x, torch.zeros(2)) + 0.5 * bce(j_gp, torch.zeros(2))
    assert_close(terms["total"], expected)


def test_active_share_counts_samples_inside_the_hinge_margin():
    div = divergences.get("klwgan")
    v = torch.tensor([-3.0, -2.0, -0.5, 1.0], requires_grad=True)  # relu(1 + v) active for v > -1
    assert float(active_share(div.critic_fake_term, v)) == 0.5


def test_klwgan_reference_form_is_song_and_ermons_code():
    # Their losses: r = exp(v / T) / mean(exp(v / T)), gradients through r; critic relu(1 - v_real) and
    # relu(1 + r * v_fake); generator -mean(r * v_fake).
    v = torch.tensor([-3.0, -0.4, 0.2, 2.5], dtype=torch.float64, requires_grad=True)
    real = torch.tensor([0.3, 1.5], dtype=torch.float64)
    div = divergences.get("klwgan", temperature=5.0)
    assert div.form == "reference"
    r = torch.exp(v / 5.0) / torch.exp(v / 5.0).mean()
    assert_close(div.critic_loss(real, v), F.relu(1 - real).mean() + F.relu(1 + r * v).mean())
    assert_close(div.generator_loss(v), -(r * v).mean())
    (grad,) = torch.autograd.grad(div.generator_loss(v), v)
    (expected,) = torch.autograd.grad(-(r * v).mean(), v)
    assert_close(grad, expected)
    detached_grad = -torch.softmax(v.detach() / 5.0, 0)  # d/dv of -mean(r v) with r = 4 softmax held constant
    assert not torch.allclose(grad, detached_grad)


def test_klwgan_detached_form_weights_the_hinge_with_constant_weights():
    v = torch.tensor([-1.5, 3.0, 4.0, 5.0], dtype=torch.float64, requires_grad=True)
    div = divergences.get("klwgan", temperature=5.0, form="detached")
    r = (4 * torch.softmax(v / 5.0, 0)).detach()
    assert_close(div.critic_fake_term(v), r * F.relu(1 + v))
    (grad,) = torch.autograd.grad(div.generator_loss(v), v)
    assert_close(grad, -r / 4)
    # The two forms' hinges are active on different samples: v = -1.5 is outside the detached form's margin
    # (v > -1) but inside the reference form's (r * v > -1, with r ~ 0.4 there).
    ref = divergences.get("klwgan", temperature=5.0)
    assert float(active_share(div.critic_fake_term, v)) == 0.75
    assert float(active_share(ref.critic_fake_term, v)) == 1.0
