"""Input builders for the operator tests and benchmarks (STYLE §5.1): one ``sample_inputs`` per op."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from hypothesis import strategies as st


@dataclass
class Sample:
    name: str
    args: tuple
    unique_argmin: bool = True  # min_distance: compare indices only when the minimum is unique


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# Offsets of the near-duplicate cases: far from the origin (the kernels centre the points), and just
# inside the offset the CPU kernels use uncentred (||mean||^2 <= 0.25 of the spread, csrc/pairwise_cpu.h).
NEAR_DUPLICATE_OFFSETS = (1000.0, 0.45)


def near_duplicate_points(n: int, q: int, dim: int, *, offset: float = 1000.0, gap: float = 1e-3, seed: int = 0):
    """Points of norm ~offset*sqrt(dim) and, for each, a reference ~gap away; the other references are
    far. ||a||^2 + ||b||^2 - 2ab loses these distances entirely in float32."""
    g = _gen(seed)
    x = offset + torch.randn(n, dim, generator=g, dtype=torch.float64)
    direction = torch.randn(n, dim, generator=g, dtype=torch.float64)
    close = x + gap * direction / direction.norm(dim=1, keepdim=True)
    far = offset + torch.randn(max(q - n, 0), dim, generator=g, dtype=torch.float64)
    ref = torch.cat([close, far])[torch.randperm(max(q, n), generator=g)]
    return x, ref


def integer_points(n: int, q: int, dim: int, *, spread: int, offset: float, seed: int, dtype=torch.float64):
    """Queries (n, dim) and references (q, dim) with integer coordinates in [-spread, spread] plus offset:
    exact in float32 and float64, squared distances exact in float64, exact ties common."""
    rng = np.random.default_rng(seed)
    x = torch.as_tensor(rng.integers(-spread, spread + 1, (n, dim)) + offset, dtype=dtype)
    ref = torch.as_tensor(rng.integers(-spread, spread + 1, (q, dim)) + offset, dtype=dtype)
    return x, ref


def integer_point_cases(*, q_max: int, dims: list[int], spreads: list[int]) -> dict:
    """hypothesis strategies for integer_points and a k (as a fraction of q), for ``@given(**...)``."""
    return {
        "n": st.integers(1, 9),
        "q": st.integers(1, q_max),
        "dim": st.sampled_from(dims),
        "k_fraction": st.floats(0, 1),
        "spread": st.sampled_from(spreads),
        "offset": st.sampled_from([0.0, 1e4]),
        "seed": st.integers(0, 2**16),
    }


def min_distance_samples(device: str = "cpu", dtype=torch.float64, *, requires_grad: bool = False):
    """Cases for min_distance: random shapes, N=1, Q=1, D=1, D=3072, duplicates, near-duplicates,
    non-contiguous and expanded views, images."""
    def make(*shape, seed):
        return torch.randn(*shape, generator=_gen(seed), dtype=torch.float64).to(device=device, dtype=dtype)

    cases = [
        Sample("random", (make(37, 5, seed=1), make(53, 5, seed=2))),
        Sample("wide_gemm_path", (make(70, 40, seed=3), make(600, 40, seed=4))),
        Sample("N=1", (make(1, 7, seed=5), make(9, 7, seed=6))),
        Sample("Q=1", (make(8, 7, seed=7), make(1, 7, seed=8))),
        Sample("D=1", (make(11, 1, seed=9), make(13, 1, seed=10))),
        Sample("D=3072", (make(6, 3072, seed=11), make(20, 3072, seed=12))),
    ]
    x_dup = make(10, 3, seed=13)
    cases.append(Sample("exact_duplicates", (x_dup, torch.cat([x_dup[:5], make(4, 3, seed=14)])), unique_argmin=False))
    x_near, ref_near = near_duplicate_points(12, 30, 20)
    cases.append(Sample("near_duplicates", (x_near.to(device, dtype), ref_near.to(device, dtype))))
    wide = make(9, 24, seed=15)
    cases.append(Sample("non_contiguous", (wide[:, ::2], make(24, 12, seed=16).t().contiguous().t()[:, :12])))
    cases.append(Sample("expanded", (make(1, 6, seed=17).expand(5, 6), make(15, 6, seed=18)), unique_argmin=False))
    cases.append(Sample("images", (make(4, 3, 5, 5, seed=19), make(10, 3, 5, 5, seed=20))))
    if requires_grad:
        for case in cases:
            case.args = tuple(a.detach().clone().requires_grad_(True) for a in case.args)
        # mixed requires_grad
        cases.append(Sample("grad_x_only", (make(6, 4, seed=21).requires_grad_(), make(8, 4, seed=22))))
        cases.append(Sample("grad_ref_only", (make(6, 4, seed=23), make(8, 4, seed=24).requires_grad_())))
    return cases


def scattering_samples(device: str = "cpu", dtype=torch.float64, *, requires_grad: bool = False):
    """Cases for scattering: (z, x) pairs, direct and GEMM paths, N=2, near-duplicate samples, images."""
    def make(*shape, seed):
        return torch.randn(*shape, generator=_gen(seed), dtype=torch.float64).to(device=device, dtype=dtype)

    cases = [
        Sample("2d", (make(30, 2, seed=1), make(30, 2, seed=2))),
        Sample("wide", (make(40, 32, seed=3), make(40, 50, seed=4))),
        Sample("N=2", (make(2, 3, seed=5), make(2, 4, seed=6))),
        Sample("D=3072", (make(5, 8, seed=7), make(5, 3072, seed=8))),
        Sample("images", (make(6, 16, seed=9), make(6, 3, 4, 4, seed=10))),
        Sample("non_contiguous", (make(12, 10, seed=11)[:, ::2], make(24, 30, seed=12)[::2])),
    ]
    x_near, _ = near_duplicate_points(10, 10, 24)
    x_near[1] = x_near[0] + 1e-3 * torch.randn(24, generator=_gen(13), dtype=torch.float64)
    cases.append(Sample("near_duplicates", (make(10, 20, seed=14), x_near.to(device, dtype))))
    if requires_grad:
        for case in cases:
            case.args = tuple(a.detach().clone().requires_grad_(True) for a in case.args)
        cases.append(Sample("grad_x_only", (make(7, 3, seed=15), make(7, 20, seed=16).requires_grad_())))
    return cases
