"""``scattering``: the Task-2 term that spreads boundary samples apart (DESIGN §2, §5)."""

from __future__ import annotations

import torch

from omasgan.errors import InvalidInputError
from omasgan.ops import _extension
from omasgan.ops._inputs import as_points, check_same_kind, float32_under_autocast
from omasgan.ops._nonfinite import known_finite, nonfinite_rows, poison
from omasgan.ops._reference import scattering_reference

__all__ = ["PAIR_MATRIX_BUDGET_BYTES", "scattering"]

# The CPU kernel keeps the two (N, N) squared-distance matrices from forward for backward when they fit
# in this many bytes together (N <= 2896 in float32); else the one that costs more to recompute when it
# fits alone (N <= 4096); beyond that it recomputes them tile by tile, where memory stays O(N * tile).
# All are exact; keeping saves backward a distance GEMM per kept space.
PAIR_MATRIX_BUDGET_BYTES = 64 << 20


def scattering(z: torch.Tensor, x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean ratio of latent to sample distances for each sample.

    ``s[i] = 1/(N-1) * sum_{j != i} ||z[i] - z[j]||_2 / (||x[i] - x[j]||_2 + eps)``. Large when samples
    from distant latents collapse together, so minimising its mean spreads them out.

    Parameters
    ----------
    z : Tensor (N, L)
        Latents that produced ``x``.
    x : Tensor (N, D) or (N, C, H, W)
        Samples; images are flattened. Same device and dtype as ``z``.
    eps : float, default 1e-8
        Added to each sample distance; must be >= 0.

    Returns
    -------
    s : Tensor (N,)
        Differentiable w.r.t. ``z`` and ``x``. On the CPU, when a gradient is needed, forward keeps the
        N x N squared-distance matrices for backward as far as ``PAIR_MATRIX_BUDGET_BYTES`` (64 MiB)
        allows: both, or the one of the wider space; beyond it (and on CUDA) backward recomputes them
        tile by tile and memory stays O(N * tile). Distances of near-duplicate pairs are taken by direct
        differences either way, so they are exact. The gradient of a zero distance is 0. Inside
        ``torch.autocast``, float16/bfloat16 inputs are computed (and returned) in float32. A non-finite
        coordinate (NaN, +-inf) anywhere in ``z`` or ``x`` makes every ``s[i]`` and every gradient NaN, on
        every backend.

    Raises
    ------
    InvalidInputError
        Fewer than 2 samples, mismatched row counts, devices or dtypes, negative eps.
    """
    z = as_points("scattering", "z", float32_under_autocast(z))
    x = as_points("scattering", "x", float32_under_autocast(x))
    if z.shape[0] != x.shape[0]:
        raise InvalidInputError(
            f"scattering: z has {z.shape[0]} rows but x has {x.shape[0]}; pass the latents that produced x."
        )
    if x.shape[0] < 2:
        raise InvalidInputError("scattering: needs at least 2 samples (it averages over the other N-1), got N=1.")
    if eps < 0:
        raise InvalidInputError(f"scattering: eps must be >= 0, got {eps}.")
    check_same_kind("scattering", ("z", "x"), z, x)
    if _extension.supports(x.device):
        kept = _kept_pairs(z, x)
        if kept is not None:
            s, _, _ = torch.ops.omasgan.scattering_with_pairs.default(z, x, float(eps), *kept)
        else:
            s = torch.ops.omasgan.scattering.default(z, x, float(eps))
        if x.device.type == "cpu":
            return s  # the CPU kernels apply the non-finite rule themselves
    else:
        _extension.warn_reference_fallback(x.device.type)
        s = scattering_reference(z, x, eps)
    # Every s[i] averages over all the other samples: one non-finite coordinate reaches them all.
    if known_finite(z, x):
        return s
    bad = (nonfinite_rows(z) | nonfinite_rows(x)).any().expand(x.shape[0])
    return poison(s, bad, z, x)


def _kept_pairs(z: torch.Tensor, x: torch.Tensor, budget_bytes: int | None = None) -> tuple[bool, bool] | None:
    """The pairs strategy's (keep_latent, keep_data), or None for the recompute strategy.

    CPU with a gradient to come only. Both (N, N) matrices when they fit the budget (default
    ``PAIR_MATRIX_BUDGET_BYTES``) together; else the one whose distances cost more to recompute (the
    space with more columns) when it fits alone; else none (recompute)."""
    n = x.shape[0]
    if x.device.type != "cpu" or not torch.is_grad_enabled() or not (z.requires_grad or x.requires_grad):
        return None
    budget = PAIR_MATRIX_BUDGET_BYTES if budget_bytes is None else budget_bytes
    matrix_bytes = n * n * x.element_size()
    if 2 * matrix_bytes <= budget:
        return True, True
    if matrix_bytes <= budget:
        latent_costs_more = z.shape[1] > x.shape[1]
        return latent_costs_more, not latent_costs_more
    return None


def _register() -> None:
    # Fake kernels for torch.compile and opcheck. The autograd kernels are C++ (csrc/autograd.cpp).
    @torch.library.register_fake("omasgan::scattering")
    def _scattering_fake(z, x, eps):
        torch._check(z.dim() == 2 and x.dim() == 2, lambda: "scattering: z and x must be 2-D")
        torch._check(z.shape[0] == x.shape[0], lambda: "scattering: z and x need the same N")
        return x.new_empty(x.shape[0])

    @torch.library.register_fake("omasgan::scattering_backward")
    def _scattering_backward_fake(grad_s, z, x, eps):
        return torch.empty_like(z), torch.empty_like(x)

    @torch.library.register_fake("omasgan::scattering_with_pairs")
    def _scattering_with_pairs_fake(z, x, eps, keep_latent, keep_data):
        torch._check(z.dim() == 2 and x.dim() == 2, lambda: "scattering: z and x must be 2-D")
        torch._check(z.shape[0] == x.shape[0], lambda: "scattering: z and x need the same N")
        n = x.shape[0]
        return (
            x.new_empty(n),
            x.new_empty((n, n) if keep_latent else (0,)),
            x.new_empty((n, n) if keep_data else (0,)),
        )

    @torch.library.register_fake("omasgan::scattering_backward_from_pairs")
    def _scattering_backward_from_pairs_fake(grad_s, z, x, latent_pairs, data_pairs, eps):
        return torch.empty_like(z), torch.empty_like(x)


if _extension.compiled():
    _register()
