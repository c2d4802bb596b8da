"""scattering: compiled kernels against the float64 reference, gradients, registrations, errors."""

from __future__ import annotations

import importlib

import pytest
import torch
from torch.testing import assert_close

from omasgan import ops
from omasgan.errors import InvalidInputError
from tests.conftest import available_devices
from tests.ops.samples import NEAR_DUPLICATE_OFFSETS as OFFSETS
from tests.ops.samples import near_duplicate_points, scattering_samples

compiled_only = pytest.mark.skipif(ops.backend() != "compiled", reason="omasgan._C is not built")
SCATTERING = importlib.import_module("omasgan.ops.scattering")  # the module (ops.scattering is the function)


@pytest.fixture(params=["pairs", "one_kept", "recompute"])
def strategy(request, monkeypatch):
    """The CPU kernel's strategies: keep both (N, N) matrices for backward (every test size fits the
    budget), keep only the wider space's (a budget of one matrix), or recompute them (a zero budget)."""
    if request.param == "one_kept":
        monkeypatch.setattr(SCATTERING, "_kept_pairs", _keep_wider_space_only)
    if request.param == "recompute":
        monkeypatch.setattr(SCATTERING, "PAIR_MATRIX_BUDGET_BYTES", 0)
    return request.param


def _keep_wider_space_only(z, x, kept_pairs=SCATTERING._kept_pairs):
    """_kept_pairs under a budget of exactly one (N, N) matrix."""
    return kept_pairs(z, x, budget_bytes=x.shape[0] ** 2 * x.element_size())


def _oracle(z, x, eps=1e-8):
    return ops.scattering_reference(z.detach().flatten(1).double().cpu(), x.detach().flatten(1).double().cpu(), eps)


@pytest.mark.parametrize("device", available_devices())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scattering_forward_matches_float64_reference(device, dtype):
    for sample in scattering_samples(device, dtype):
        s = ops.scattering(*sample.args)
        tol = dict(rtol=1e-4, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-8, atol=1e-10)
        assert s.shape == (sample.args[0].shape[0],)
        assert_close(s.double().cpu(), _oracle(*sample.args), **tol, msg=sample.name)


def test_scattering_hand_computed_table():
    z = torch.tensor([[0.0], [1.0], [3.0]])
    x = torch.tensor([[0.0, 0.0], [0.0, 2.0], [3.0, 4.0]])
    s = ops.scattering(z, x, eps=0.0)
    # pair distances: a01=1 b01=2, a02=3 b02=5, a12=2 b12=sqrt(13)
    expected = torch.tensor([(1 / 2 + 3 / 5) / 2, (1 / 2 + 2 / 13**0.5) / 2, (3 / 5 + 2 / 13**0.5) / 2])
    assert_close(s, expected)


@pytest.mark.parametrize("device", available_devices())
@pytest.mark.parametrize("dim", [2, 784])
@pytest.mark.parametrize("offset", OFFSETS)
def test_scattering_exact_for_near_duplicates(device, dim, offset, strategy):
    x64, _ = near_duplicate_points(64, 64, dim, offset=offset, gap=1e-3, seed=dim)
    x64[1::2] = x64[0::2] + 1e-3 * torch.randn(32, dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    z = torch.randn(64, 16, generator=torch.Generator().manual_seed(2)).to(device)
    x = x64.float().to(device).requires_grad_(True)  # a gradient to come: the pairs strategy forward
    s = ops.scattering(z, x)
    expected = _oracle(z, x)
    assert ((s.double().cpu() - expected) / expected).abs().max().item() <= 1e-5
    (grad,) = torch.autograd.grad(s.sum(), x)
    x64 = x.detach().double().cpu().requires_grad_(True)
    (expected_grad,) = torch.autograd.grad(ops.scattering_reference(z.double().cpu(), x64).sum(), x64)
    scale = expected_grad.abs().max().item()
    assert (grad.double().cpu() - expected_grad).abs().max().item() <= 1e-4 * scale


@pytest.mark.parametrize("device", available_devices())
def test_scattering_gradients_match_reference(device, strategy):
    for sample in scattering_samples(device, torch.float64, requires_grad=True):
        z, x = sample.args
        grad_out = torch.randn(z.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(0)).to(device)
        wanted = [t for t in (z, x) if t.requires_grad]
        got = torch.autograd.grad(ops.scattering(z, x), wanted, grad_out)
        expected = torch.autograd.grad(ops.scattering_reference(z.flatten(1), x.flatten(1)), wanted, grad_out)
        for g, e in zip(got, expected, strict=True):
            assert_close(g, e, rtol=1e-8, atol=1e-10, msg=sample.name)


def test_scattering_gradient_of_coincident_samples_is_finite():
    z = torch.tensor([[0.0], [1.0], [2.0]], dtype=torch.float64, requires_grad=True)
    x = torch.tensor([[1.0, 1.0], [1.0, 1.0], [0.0, 3.0]], dtype=torch.float64, requires_grad=True)
    s = ops.scattering(z, x, eps=1e-3)
    gz, gx = torch.autograd.grad(s.sum(), (z, x))
    assert torch.isfinite(gz).all() and torch.isfinite(gx).all()
    ez, ex = torch.autograd.grad(ops.scattering_reference(z, x, 1e-3).sum(), (z, x))
    assert_close(gz, ez)
    assert_close(gx, ex)


@compiled_only
def test_scattering_gradcheck_float64(strategy):
    for sample in scattering_samples("cpu", torch.float64, requires_grad=True):
        if sample.name in ("D=3072", "near_duplicates"):
            continue  # too slow / ill-conditioned for finite differences; covered against the reference
        assert torch.autograd.gradcheck(lambda z, x: ops.scattering(z, x, 1e-3), sample.args), sample.name


@compiled_only
@pytest.mark.parametrize("op", ["scattering", "scattering_with_pairs"])
def test_scattering_opcheck(op):
    keeps = [()] if op == "scattering" else [(True, True), (False, True), (True, False)]
    for sample in scattering_samples("cpu", torch.float32, requires_grad=True):
        z, x = (a.flatten(1) for a in sample.args)
        for keep in keeps:
            torch.library.opcheck(getattr(torch.ops.omasgan, op).default, (z, x, 1e-8, *keep))


def test_scattering_keeps_pairs_only_within_budget_and_when_a_gradient_is_needed():
    z, x = torch.randn(10, 2, requires_grad=True), torch.randn(10, 3)
    assert SCATTERING._kept_pairs(z, x) == (True, True)
    assert SCATTERING._kept_pairs(z.detach(), x) is None
    with torch.no_grad():
        assert SCATTERING._kept_pairs(z, x) is None

    # 2 * N^2 * 4 bytes against 64 MiB: both fit up to N = 2896 in float32; one alone up to N = 4096
    # (the wider space's), then none; float64 halves it.
    def kept(n, latent_dim, dim, dtype=torch.float32):
        return SCATTERING._kept_pairs(
            torch.empty(n, latent_dim, dtype=dtype, requires_grad=True), torch.empty(n, dim, dtype=dtype)
        )

    assert kept(2896, 1, 2) == (True, True)
    assert kept(2897, 1, 2) == (False, True)
    assert kept(2897, 3, 2) == (True, False)
    assert kept(4096, 128, 784) == (False, True)
    assert kept(4097, 128, 784) is None
    assert kept(2896, 1, 2, torch.float64) == (False, True)
    assert kept(2897, 1, 2, torch.float64) is None


@compiled_only
@pytest.mark.parametrize("dim", [3, 200])  # direct differences / GEMM candidates
def test_scattering_strategies_agree(dim):
    # N = 1500 in float64 is three row blocks of the pairs strategy (699, 699, 102 rows).
    g = torch.Generator().manual_seed(dim)
    z = torch.randn(1500, 8, generator=g, dtype=torch.float64)
    x = torch.randn(1500, dim, generator=g, dtype=torch.float64)
    x[1::2] = x[0::2] + 1e-6 * torch.randn(750, dim, generator=g, dtype=torch.float64)  # near pairs too
    grad_out = torch.randn(1500, generator=g, dtype=torch.float64)
    s = torch.ops.omasgan.scattering.default(z, x, 1e-8)
    recomputed = (s, *torch.ops.omasgan.scattering_backward.default(grad_out, z, x, 1e-8))
    for keep in [(True, True), (False, True), (True, False), (False, False)]:
        s, latent_pairs, data_pairs = torch.ops.omasgan.scattering_with_pairs.default(z, x, 1e-8, *keep)
        assert latent_pairs.shape == ((1500, 1500) if keep[0] else (0,))
        assert data_pairs.shape == ((1500, 1500) if keep[1] else (0,))
        grads = torch.ops.omasgan.scattering_backward_from_pairs.default(grad_out, z, x, latent_pairs, data_pairs, 1e-8)
        for expected, got in zip(recomputed, (s, *grads), strict=True):
            assert_close(got, expected, rtol=1e-9, atol=1e-12, msg=f"keep={keep}")


@compiled_only
def test_scattering_under_torch_compile_fullgraph(strategy):
    torch._dynamo.reset()

    def loss(z, x):
        return ops.scattering(z, torch.tanh(x)).mean()

    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
    z = torch.randn(16, 4)
    x = torch.randn(16, 10, requires_grad=True)
    got, expected = compiled(z, x), loss(z, x)
    assert_close(got, expected)
    assert_close(torch.autograd.grad(got, x)[0], torch.autograd.grad(expected, x)[0])


@pytest.mark.parametrize(
    ("z", "x", "eps", "match"),
    [
        (torch.zeros(1, 2), torch.zeros(1, 3), 1e-8, "at least 2 samples"),
        (torch.zeros(3, 2), torch.zeros(4, 3), 1e-8, "z has 3 rows but x has 4"),
        (torch.zeros(0, 2), torch.zeros(0, 3), 1e-8, "z is empty"),
        (torch.zeros(3), torch.zeros(3, 3), 1e-8, "z must have shape"),
        (torch.zeros(3, 2), torch.zeros(3, 3, dtype=torch.float64), 1e-8, "cast both"),
        (torch.zeros(3, 2), torch.zeros(3, 3), -1.0, "eps must be >= 0"),
    ],
)
def test_scattering_rejects_bad_input(z, x, eps, match):
    with pytest.raises(InvalidInputError, match=match):
        ops.scattering(z, x, eps)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_scattering_cuda_low_precision(dtype):
    z = torch.randn(200, 16, device="cuda").to(dtype)
    x = torch.randn(200, 64, device="cuda").to(dtype)
    s = ops.scattering(z, x)
    assert s.dtype == dtype
    assert_close(s.double().cpu(), _oracle(z, x), rtol=2e-2, atol=1e-3)
