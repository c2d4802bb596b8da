"""knn: compiled kernels against the float64 reference, ties, exactness, gradients, registrations, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from torch.testing import assert_close

from omasgan import ops
from omasgan.errors import InvalidInputError
from tests.conftest import available_devices
from tests.ops.samples import NEAR_DUPLICATE_OFFSETS as OFFSETS
from tests.ops.samples import integer_point_cases, integer_points, min_distance_samples, near_duplicate_points

compiled_only = pytest.mark.skipif(ops.backend() != "compiled", reason="omasgan._C is not built")


def _oracle(x, ref, k):
    """Float64 reference on the same inputs."""
    return ops.knn_reference(x.detach().flatten(1).double().cpu(), ref.detach().flatten(1).double().cpu(), k)


def _ks(q: int) -> list[int]:
    return sorted({1, min(3, q), q})


@pytest.mark.parametrize("device", available_devices())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_knn_forward_matches_float64_reference(device, dtype, candidate_precision):
    for sample in min_distance_samples(device, dtype):
        for k in _ks(sample.args[1].flatten(1).shape[0]):
            dist, index = ops.knn(*sample.args, k)
            expected_dist, expected_index = _oracle(*sample.args, k)
            tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
            assert dist.shape == index.shape == (sample.args[0].shape[0], k)
            assert_close(dist.double().cpu(), expected_dist, **tol, msg=f"{sample.name}, k={k}")
            assert index.dtype == torch.int64
            if sample.unique_argmin:
                assert torch.equal(index.cpu(), expected_index), f"{sample.name}, k={k}"


@pytest.mark.parametrize("dim", [2, 40])  # direct differences / GEMM candidates in the CPU kernel
def test_knn_with_k_1_is_min_distance(dim, candidate_precision):
    g = torch.Generator().manual_seed(dim)
    x, ref = torch.randn(50, dim, generator=g), torch.randn(3000, dim, generator=g)
    dist, index = ops.knn(x, ref, 1)
    expected_dist, expected_index = ops.min_distance(x, ref)
    assert torch.equal(dist[:, 0], expected_dist) and torch.equal(index[:, 0], expected_index)


def test_knn_hand_computed_table():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    ref = torch.tensor([[0.0, 1.0], [3.0, 0.0], [1.0, 1.0], [-5.0, 4.0]])
    dist, index = ops.knn(x, ref, 3)
    # (0,0): (0,1) at 1, (1,1) at sqrt 2, (3,0) at 3; (3,4): (1,1) at sqrt 13, (0,1) at sqrt 18, (3,0) at 4
    assert index.tolist() == [[0, 2, 1], [2, 1, 0]]
    assert_close(dist, torch.tensor([[1.0, 2**0.5, 3.0], [13**0.5, 4.0, 18**0.5]]))


@pytest.mark.parametrize("dim", [2, 40])
@pytest.mark.parametrize("copies", [7, 5000])  # inside one column tile / across several
def test_knn_ties_resolve_to_lowest_indices(dim, copies, candidate_precision):
    point = torch.ones(1, dim)
    ref = torch.cat([point + 3, point.expand(copies, dim), point + 1])
    dist, index = ops.knn(point.expand(4, dim), ref, 5)
    assert index.tolist() == [[1, 2, 3, 4, 5]] * 4
    assert torch.equal(dist, torch.zeros(4, 5))


@pytest.mark.parametrize("device", available_devices())
@pytest.mark.parametrize("dim", [2, 784])
@pytest.mark.parametrize("offset", OFFSETS)
def test_knn_exact_for_near_duplicates(device, dim, offset, candidate_precision):
    x64, ref64 = near_duplicate_points(64, 512, dim, offset=offset, gap=1e-3, seed=dim)
    # A second near-duplicate for each query, 2e-3 away, so the first two neighbours are both hard.
    direction = torch.randn(x64.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ref64 = torch.cat([ref64, x64 + 2e-3 * direction / direction.norm(dim=1, keepdim=True)])
    x, ref = x64.float().to(device), ref64.float().to(device)
    dist, index = ops.knn(x, ref, 5)
    expected, expected_index = _oracle(x, ref, 5)
    assert torch.equal(index.cpu(), expected_index)
    relative = ((dist.double().cpu() - expected) / expected).abs().max().item()
    assert relative <= 1e-5
    # The case is genuinely hard: |a|^2 + |b|^2 - 2ab with topk loses these distances and neighbours.
    squared = x.cpu().square().sum(1, keepdim=True) + ref.cpu().square().sum(1) - 2 * x.cpu() @ ref.cpu().T
    shortcut = squared.clamp_min(0).topk(5, dim=1, largest=False)
    assert ((shortcut.values.sqrt().double() - expected) / expected).abs().max().item() > 1e-2


# The CPU's direct mode (D <= 16) computes 4 query rows at a time over column tiles of 2048 padded to
# whole 64-byte vectors, and bounds a row's first tile by the k-th smallest minimum of its column sets
# (lane w of 8 vectors): row counts around the group, column counts around the lanes, sets and tile.
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n", [1, 3, 4, 5, 9])
@pytest.mark.parametrize("q", [7, 8, 15, 16, 17, 2047, 2048, 2049, 2065])
def test_knn_direct_mode_row_groups_and_padded_tiles(dtype, n, q):
    g = torch.Generator().manual_seed(n * 10_000 + q)
    x, ref = torch.randn(n, 3, generator=g, dtype=dtype), torch.randn(q, 3, generator=g, dtype=dtype)
    bad = n // 2 if n > 1 else -1
    if n > 1:
        x[bad, 1] = float("inf")  # a non-finite query inside a row group: NaN for it, its group unharmed
    finite = torch.arange(n) != bad
    for k in sorted({1, min(4, q), min(32, q), q}):
        dist, index = ops.knn(x, ref, k)
        expected_dist, expected_index = _oracle(x[finite], ref, k)
        assert torch.equal(index[finite], expected_index), f"k={k}"
        assert_close(dist[finite].double(), expected_dist, rtol=1e-6 if dtype == torch.float32 else 1e-14, atol=0)
        assert n == 1 or dist[bad].isnan().all()


# Many exact ties across column sets and tiles: the set-minimum bound must keep every tied column that the
# lowest-index rule picks.
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", [2, 10, 32, 300])
def test_knn_direct_mode_ties_across_sets_and_tiles(dtype, k):
    for spread in (3, 20):  # ~100 copies of each grid point (many at distance 0), or ~3 (ties at every distance)
        x, ref = integer_points(9, 5000, 2, spread=spread, offset=0.0, seed=k, dtype=dtype)
        dist, index = ops.knn(x, ref, k)
        expected_dist, expected_index = ops.knn_reference(x.double(), ref.double(), k)
        assert torch.equal(index, expected_index), f"spread {spread}"
        assert_close(dist.double(), expected_dist, rtol=1e-7 if dtype == torch.float32 else 4e-16, atol=0)


# Integer coordinates make squared distances exact in float64 and ties common, so the lowest-index rule
# is checked exactly; the examples reach the edges (k = Q, Q = 1, D = 1, all points equal, the first
# GEMM width D = 17, large offsets).
@settings(max_examples=60, deadline=None, derandomize=True)
@given(**integer_point_cases(q_max=40, dims=[1, 2, 5, 16, 17, 33], spreads=[0, 1, 3]))
@example(n=1, q=1, dim=1, k_fraction=1.0, spread=0, offset=0.0, seed=0)
@example(n=4, q=40, dim=17, k_fraction=1.0, spread=0, offset=1e4, seed=1)
@example(n=9, q=33, dim=2, k_fraction=0.0, spread=1, offset=1e4, seed=2)
@example(n=3, q=25, dim=33, k_fraction=0.5, spread=1, offset=0.0, seed=3)
def test_knn_property_integer_points_match_reference_exactly(n, q, dim, k_fraction, spread, offset, seed):
    x, ref = integer_points(n, q, dim, spread=spread, offset=offset, seed=seed, dtype=torch.float64)
    k = 1 + round(k_fraction * (q - 1))
    dist, index = ops.knn(x, ref, k)
    expected_dist, expected_index = ops.knn_reference(x, ref, k)
    assert torch.equal(index, expected_index)
    assert_close(dist, expected_dist, rtol=4e-16, atol=0)  # torch's vectorised sqrt is not always correctly rounded
    assert (dist[:, 1:] >= dist[:, :-1]).all()


@pytest.mark.parametrize("device", available_devices())
def test_knn_gradients_match_reference(device):
    for sample in min_distance_samples(device, torch.float64, requires_grad=True):
        x, ref = sample.args
        k = min(3, ref.flatten(1).shape[0])
        grad_out = torch.randn(x.shape[0], k, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        wanted = [t for t in (x, ref) if t.requires_grad]
        grad_out = grad_out.to(device)
        got = torch.autograd.grad(ops.knn(x, ref, k)[0], wanted, grad_out)
        expected = torch.autograd.grad(ops.knn_reference(x.flatten(1), ref.flatten(1), k)[0], wanted, grad_out)
        for g, e in zip(got, expected, strict=True):
            assert_close(g, e, rtol=1e-10, atol=1e-12, msg=sample.name)


def test_knn_gradient_at_zero_distance_is_zero_and_shared_neighbours_sum():
    x = torch.tensor([[1.0, 2.0], [1.0, 0.0]], dtype=torch.float64, requires_grad=True)
    ref = torch.tensor([[1.0, 2.0], [1.0, 1.0], [9.0, 9.0]], dtype=torch.float64, requires_grad=True)
    dist, index = ops.knn(x, ref, 2)
    assert index.tolist() == [[0, 1], [1, 0]]
    gx, gref = torch.autograd.grad(dist.sum(), (x, ref))
    # x0: 0 (itself) + (x0 - r1)/1 = (0, 1); x1: (x1 - r1)/1 + (x1 - r0)/2 = (0, -1) + (0, -1)
    assert_close(gx, torch.tensor([[0.0, 1.0], [0.0, -2.0]], dtype=torch.float64))
    assert_close(gref, torch.tensor([[0.0, 1.0], [0.0, 0.0], [0.0, 0.0]], dtype=torch.float64))


@compiled_only
def test_knn_gradcheck_float64():
    for sample in min_distance_samples("cpu", torch.float64, requires_grad=True):
        if sample.name in ("exact_duplicates", "expanded", "near_duplicates", "D=3072", "wide_gemm_path"):
            continue  # neighbours change under finite differences / too slow; covered by the reference tests
        k = min(3, sample.args[1].flatten(1).shape[0])
        assert torch.autograd.gradcheck(lambda x, r, k=k: ops.knn(x, r, k)[0], sample.args), sample.name
    # The GEMM-candidate path (D > 16) at a size finite differences can afford.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 20, generator=g, dtype=torch.float64, requires_grad=True)
    ref = torch.randn(40, 20, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, r: ops.knn(x, r, 4)[0], (x, ref))


@compiled_only
def test_knn_opcheck():
    for sample in min_distance_samples("cpu", torch.float32, requires_grad=True)[:6]:
        args = tuple(a.flatten(1) for a in sample.args)
        torch.library.opcheck(torch.ops.omasgan.knn.default, (*args, min(2, args[1].shape[0])))


@compiled_only
def test_knn_under_torch_compile_fullgraph():
    torch._dynamo.reset()

    def loss(x, ref):
        dist, _ = ops.knn(x * 2.0, ref, 4)
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
    ("x", "ref", "k", "match"),
    [
        (torch.zeros(0, 3), torch.zeros(4, 3), 1, "x is empty"),
        (torch.zeros(2, 3), torch.zeros(0, 3), 1, "ref is empty"),
        (torch.zeros(3), torch.zeros(4, 3), 1, "x must have shape"),
        (torch.zeros(2, 784), torch.zeros(4, 3072), 1, "x has 784 columns but ref has 3072"),
        (torch.zeros(2, 3), torch.zeros(4, 3, dtype=torch.float64), 1, "cast both to one floating dtype"),
        (torch.zeros(2, 3), torch.zeros(4, 3), 0, r"k must be an int in \[1, 4\]"),
        (torch.zeros(2, 3), torch.zeros(4, 3), 5, r"k must be an int in \[1, 4\]"),
        (torch.zeros(2, 3), torch.zeros(4, 3), 2.0, "k must be an int"),
        (torch.zeros(2, 3), torch.zeros(4, 3), True, "k must be an int"),
    ],
)
def test_knn_rejects_bad_input(x, ref, k, match):
    with pytest.raises(InvalidInputError, match=match):
        ops.knn(x, ref, k)


def test_knn_accepts_numpy_integers_for_k():
    dist, _ = ops.knn(torch.zeros(2, 3), torch.ones(4, 3), np.int64(2))
    assert dist.shape == (2, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_knn_cuda_low_precision_accumulates_in_float32(dtype):
    x = torch.randn(300, 64, device="cuda").to(dtype)
    ref = torch.randn(1000, 64, device="cuda").to(dtype)
    dist, _ = ops.knn(x, ref, 5)
    expected, _ = _oracle(x, ref, 5)
    assert dist.dtype == dtype
    assert_close(dist.double().cpu(), expected, rtol=1e-2, atol=1e-2)
