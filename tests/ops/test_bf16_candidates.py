"""bfloat16 candidates in knn's and min_distance's CPU kernels: the rounding the error bound assumes, and
exact results where the wider bound lets many candidates through (csrc/pairwise_cpu.h)."""

from __future__ import annotations

import contextlib
import os

import pytest
import torch
from hypothesis import example, given, settings

from omasgan import ops
from tests.ops.samples import integer_point_cases, integer_points

compiled_only = pytest.mark.skipif(ops.backend() != "compiled", reason="omasgan._C is not built")

BF16_UNIT_ROUNDOFF = 2.0**-8


@contextlib.contextmanager
def _bf16_candidates():
    """Force the bfloat16 candidate GEMM (hypothesis tests cannot take function-scoped fixtures)."""
    previous = os.environ.get("OMASGAN_BF16_CANDIDATES")
    os.environ["OMASGAN_BF16_CANDIDATES"] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["OMASGAN_BF16_CANDIDATES"]
        else:
            os.environ["OMASGAN_BF16_CANDIDATES"] = previous


@pytest.mark.parametrize("shape", [(1, 1, 17), (256, 512, 17), (128, 512, 784), (64, 512, 3072)])
def test_bfloat16_matmul_rounds_once_after_float32_accumulation(shape):
    # The kernels' bound (kBf16CandidateBound) assumes the bfloat16 GEMM accumulates in float32 and rounds
    # its result once. Positive inputs make every partial sum grow, so a second rounding on the way (a
    # bfloat16 accumulator, or partial sums stored in bfloat16) shows as an error above one unit roundoff
    # somewhere among the many entries.
    m, n, k = shape
    g = torch.Generator().manual_seed(k)
    a = torch.rand(m, k, generator=g).bfloat16()
    b = torch.rand(n, k, generator=g).bfloat16()
    product = torch.mm(a, b.t()).double()  # the call the kernels make: rows times transposed columns
    exact = a.double() @ b.double().t()
    float32_accumulation = k * 2.0**-24
    relative = ((product - exact).abs() / exact).max().item()
    assert relative <= BF16_UNIT_ROUNDOFF + float32_accumulation


@compiled_only
@pytest.mark.parametrize("dim", [784, 4096])  # bfloat16 kept / given up for float32 part-way (crowded)
def test_knn_exact_with_bfloat16_candidates_on_crowded_distances(dim):
    # High-dimensional noise: every distance is close to every other, so the wider bound lets many
    # candidates through (at 4096 so many that the kernel returns to float32). The result is exact either way.
    g = torch.Generator().manual_seed(dim)
    x, ref = torch.randn(64, dim, generator=g), torch.randn(1500, dim, generator=g)
    with _bf16_candidates():
        dist, index = ops.knn(x, ref, 7)
        nearest, nearest_index = ops.min_distance(x, ref)
    expected, expected_index = ops.knn_reference(x.double(), ref.double(), 7)
    assert torch.equal(index, expected_index)
    assert ((dist.double() - expected) / expected).abs().max().item() <= 1e-6
    assert torch.equal(nearest_index, expected_index[:, 0])
    assert torch.equal(nearest, dist[:, 0])


# float32 integer points (exact in float32, their squared distances exact in float64, ties common) in
# the GEMM regime (D >= 17); examples at the edges: one point, k = Q, all points equal, a large offset
# with and without spread, several column tiles.
@compiled_only
@settings(max_examples=40, deadline=None, derandomize=True)
@given(**integer_point_cases(q_max=700, dims=[17, 33, 130], spreads=[0, 1, 3, 40]))
@example(n=1, q=1, dim=17, k_fraction=1.0, spread=0, offset=0.0, seed=0)
@example(n=4, q=700, dim=17, k_fraction=0.0, spread=0, offset=1e4, seed=1)
@example(n=9, q=600, dim=130, k_fraction=0.02, spread=1, offset=1e4, seed=2)
@example(n=3, q=513, dim=33, k_fraction=1.0, spread=40, offset=0.0, seed=3)
def test_knn_property_bfloat16_candidates_match_reference_exactly(n, q, dim, k_fraction, spread, offset, seed):
    x, ref = integer_points(n, q, dim, spread=spread, offset=offset, seed=seed, dtype=torch.float32)
    k = 1 + round(k_fraction * (q - 1))
    with _bf16_candidates():
        dist, index = ops.knn(x, ref, k)
    expected_dist, expected_index = ops.knn_reference(x.double(), ref.double(), k)
    assert torch.equal(index, expected_index)
    assert torch.equal(dist, expected_dist.float())  # exact squared distances, one rounding of the root
