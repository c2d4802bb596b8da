"""min_distance: compiled kernels against the float64 reference, gradients, registrations, errors."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from omasgan import ops
from omasgan.errors import InvalidInputError
from tests.conftest import available_devices
from tests.ops.samples import NEAR_DUPLICATE_OFFSETS as OFFSETS
from tests.ops.samples import min_distance_samples, near_duplicate_points

compiled_only = pytest.mark.skipif(ops.backend() != "compiled", reason="omasgan._C is not built")


def _oracle(x, ref):
    """Float64 reference on the same inputs."""
    return ops.min_distance_reference(x.detach().flatten(1).double().cpu(), ref.detach().flatten(1).double().cpu())


@pytest.mark.parametrize("device", available_devices())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_min_distance_forward_matches_float64_reference(device, dtype, candidate_precision):
    for sample in min_distance_samples(device, dtype):
        dist, index = ops.min_distance(*sample.args)
        expected_dist, expected_index = _oracle(*sample.args)
        tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
        assert_close(dist.double().cpu(), expected_dist, **tol, msg=sample.name)
        assert index.dtype == torch.int64
        if sample.unique_argmin:
            assert torch.equal(index.cpu(), expected_index), sample.name


def test_min_distance_hand_computed_table():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0], [-2.0, 0.0]])
    ref = torch.tensor([[0.0, 1.0], [3.0, 0.0], [1.0, 1.0], [-5.0, 4.0]])
    dist, index = ops.min_distance(x, ref)
    # nearest rows: (0,1) at 1; (3,0) at 4 [vs (1,1): sqrt(13)=3.6 -> (1,1)]; itself at 0; (0,1) at sqrt(5)
    assert_close(dist, torch.tensor([1.0, 13**0.5, 0.0, 5**0.5]))
    assert index.tolist() == [0, 2, 2, 0]


def test_min_distance_ties_resolve_to_lowest_index(candidate_precision):
    x = torch.zeros(3, 2)
    ref = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, 2.0]])
    dist, index = ops.min_distance(x, ref)
    assert index.tolist() == [0, 0, 0]
    assert_close(dist, torch.ones(3))


@pytest.mark.parametrize("device", available_devices())
@pytest.mark.parametrize("dim", [2, 784])
@pytest.mark.parametrize("offset", OFFSETS)
def test_min_distance_exact_for_near_duplicates(device, dim, offset, candidate_precision):
    x64, ref64 = near_duplicate_points(64, 256, dim, offset=offset, gap=1e-3, seed=dim)
    x, ref = x64.float().to(device), ref64.float().to(device)
    dist, index = ops.min_distance(x, ref)
    expected, expected_index = _oracle(x, ref)
    assert torch.equal(index.cpu(), expected_index)
    relative = ((dist.double().cpu() - expected) / expected).abs().max().item()
    assert relative <= 1e-5
    # The case is genuinely hard: the ||a||^2 + ||b||^2 - 2ab form gets these distances badly wrong.
    shortcut = torch.cdist(x.cpu(), ref.cpu(), compute_mode="use_mm_for_euclid_dist").min(1).values.double()
    assert ((shortcut - expected) / expected).abs().max().item() > 1e-2


@pytest.mark.parametrize("device", available_devices())
def test_min_distance_gradients_match_reference(device):
    for sample in min_distance_samples(device, torch.float64, requires_grad=True):
        x, ref = sample.args
        grad_out = torch.randn(x.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(0)).to(device)
        wanted = [t for t in (x, ref) if t.requires_grad]
        got = torch.autograd.grad(ops.min_distance(x, ref)[0], wanted, grad_out)
        expected = torch.autograd.grad(ops.min_distance_reference(x.flatten(1), ref.flatten(1))[0], wanted, grad_out)
        for g, e in zip(got, expected, strict=True):
            assert_close(g, e, rtol=1e-10, atol=1e-12, msg=sample.name)


def test_min_distance_gradient_at_zero_distance_is_zero():
    x = torch.tensor([[1.0, 2.0], [0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    ref = torch.tensor([[1.0, 2.0], [5.0, 5.0]], dtype=torch.float64, requires_grad=True)
    dist, _ = ops.min_distance(x, ref)
    gx, gref = torch.autograd.grad(dist.sum(), (x, ref))
    assert torch.isfinite(gx).all() and torch.isfinite(gref).all()
    assert_close(gx[0], torch.zeros(2, dtype=torch.float64))
    assert_close(gx[1], -torch.tensor([1.0, 2.0], dtype=torch.float64) / 5**0.5)


def test_min_distance_ref_gradient_sums_over_shared_neighbour():
    x = torch.tensor([[0.0, 1.0], [0.0, -1.0], [2.0, 0.0]], dtype=torch.float64)
    ref = torch.zeros(1, 2, dtype=torch.float64, requires_grad=True)
    (gref,) = torch.autograd.grad(ops.min_distance(x, ref)[0].sum(), ref)
    # d/d ref of sum_i ||x_i - ref|| = -sum_i (x_i - ref)/||x_i - ref|| = -[(0,1) + (0,-1) + (1,0)]
    assert_close(gref, torch.tensor([[-1.0, 0.0]], dtype=torch.float64))


@compiled_only
def test_min_distance_gradcheck_float64():
    for sample in min_distance_samples("cpu", torch.float64, requires_grad=True):
        if sample.name in ("exact_duplicates", "expanded", "near_duplicates", "D=3072", "wide_gemm_path"):
            continue  # argmin changes under finite differences / too slow; covered by the reference tests
        assert torch.autograd.gradcheck(lambda x, r: ops.min_distance(x, r)[0], sample.args), sample.name
    # The GEMM-candidate path (D > 16) at a size finite differences can afford (wide_gemm_path took 12 s).
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 20, generator=g, dtype=torch.float64, requires_grad=True)
    ref = torch.randn(40, 20, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, r: ops.min_distance(x, r)[0], (x, ref))


@compiled_only
def test_min_distance_opcheck():
    for sample in min_distance_samples("cpu", torch.float32, requires_grad=True):
        args = tuple(a.flatten(1) for a in sample.args)
        torch.library.opcheck(torch.ops.omasgan.min_distance.default, args)


@compiled_only
def test_min_distance_under_torch_compile_fullgraph():
    torch._dynamo.reset()

    def loss(x, ref):
        dist, _ = ops.min_distance(x * 2.0, ref)
        return dist.square().mean()

    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
    x = torch.randn(20, 6, requires_grad=True)
    ref = torch.randn(50, 6)
    got = compiled(x, ref)
    expected = loss(x, ref)
    assert_close(got, expected)
    (g1,) = torch.autograd.grad(got, x)
    (g2,) = torch.autograd.grad(expected, x)
    assert_close(g1, g2)


@pytest.mark.parametrize(
    ("x", "ref", "match"),
    [
        (torch.zeros(0, 3), torch.zeros(4, 3), "x is empty"),
        (torch.zeros(2, 3), torch.zeros(0, 3), "ref is empty"),
        (torch.zeros(3), torch.zeros(4, 3), "x must have shape"),
        (torch.zeros(2, 784), torch.zeros(4, 3072), "x has 784 columns but ref has 3072"),
        (torch.zeros(2, 3), torch.zeros(4, 3, dtype=torch.float64), "cast both to one floating dtype"),
        (torch.zeros(2, 3, dtype=torch.int64), torch.zeros(4, 3, dtype=torch.int64), "supported dtypes"),
        ([[0.0]], torch.zeros(4, 1), "must be a torch.Tensor"),
    ],
)
def test_min_distance_rejects_bad_input(x, ref, match):
    with pytest.raises(InvalidInputError, match=match):
        ops.min_distance(x, ref)


def test_min_distance_rejects_mixed_devices():
    meta = torch.zeros(4, 3, device="meta")
    with pytest.raises(InvalidInputError, match="move both to one device"):
        ops.min_distance(torch.zeros(2, 3), meta)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_min_distance_cuda_low_precision_accumulates_in_float32(dtype):
    x = torch.randn(300, 64, device="cuda").to(dtype)
    ref = torch.randn(1000, 64, device="cuda").to(dtype)
    dist, _ = ops.min_distance(x, ref)
    expected, _ = _oracle(x, ref)
    assert dist.dtype == dtype
    assert_close(dist.double().cpu(), expected, rtol=1e-2, atol=1e-2)
