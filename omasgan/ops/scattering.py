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
# in this many bytes together (N <= 2896 in float32), and recomputes them tile by tile beyond it, where
# memory stays O(N * tile). Both are exact; keeping saves backward the two distance GEMMs.
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
        Differentiable w.r.t. ``z`` and ``x``. On the CPU, when a gradient is needed and the two N x N
        squared-distance matrices fit in ``PAIR_MATRIX_BUDGET_BYTES`` (64 MiB), forward keeps them for
        backward; beyond it (and on CUDA) backward recomputes them tile by tile and memory stays
        O(N * tile). Distances of near-duplicate pairs are taken by direct differences either way, so
        they are exact. The gradient of a zero distance is 0. Inside ``torch.autocast``, float16/bfloat16
        inputs are computed (and returned) in float32. A non-finite coordinate (NaN, +-inf) anywhere in
        ``z`` or ``x`` makes every ``s[i]`` and every gradient NaN, on every backend.

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
    if _extension.supports(x.device) and _keeps_pairs(z, x):
        s, _, _ = torch.ops.omasgan.scattering_with_pairs.default(z, x, float(eps))
    elif _extension.supports(x.device):
        s = torch.ops.omasgan.scattering.default(z, x, float(eps))
    else:
        _extension.warn_reference_fallback(x.device.type)
        s = scattering_reference(z, x, eps)
    # Every s[i] averages over all the other samples: one non-finite coordinate reaches them all.
    if known_finite(z, x):
        return s
    bad = (nonfinite_rows(z) | nonfinite_rows(x)).any().expand(x.shape[0])
    return poison(s, bad, z, x)


def _keeps_pairs(z: torch.Tensor, x: torch.Tensor) -> bool:
    """The pairs strategy: CPU, a gradient to come, and both (N, N) matrices within the budget."""
    n = x.shape[0]
    return (
        x.device.type == "cpu"
        and torch.is_grad_enabled()
        and (z.requires_grad or x.requires_grad)
        and 2 * n * n * x.element_size() <= PAIR_MATRIX_BUDGET_BYTES
    )


def _register() -> None:
    @torch.library.register_fake("omasgan::scattering")
    def _scattering_fake(z, x, eps):
        torch._check(z.dim() == 2 and x.dim() == 2, lambda: "scattering: z and x must be 2-D")
        torch._check(z.shape[0] == x.shape[0], lambda: "scattering: z and x need the same N")
        return x.new_empty(x.shape[0])

    @torch.library.register_fake("omasgan::scattering_backward")
    def _scattering_backward_fake(grad_s, z, x, eps):
        return torch.empty_like(z), torch.empty_like(x)

    def _setup_context(ctx, inputs, output):
        z, x, eps = inputs
        ctx.eps = eps
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            ctx.save_for_backward(z, x)

    def _backward(ctx, grad_s):
        z, x = ctx.saved_tensors
        grad_z, grad_x = torch.ops.omasgan.scattering_backward.default(grad_s, z, x, ctx.eps)
        return (grad_z if ctx.needs_input_grad[0] else None, grad_x if ctx.needs_input_grad[1] else None, None)

    torch.library.register_autograd("omasgan::scattering", _backward, setup_context=_setup_context)

    @torch.library.register_fake("omasgan::scattering_with_pairs")
    def _scattering_with_pairs_fake(z, x, eps):
        torch._check(z.dim() == 2 and x.dim() == 2, lambda: "scattering: z and x must be 2-D")
        torch._check(z.shape[0] == x.shape[0], lambda: "scattering: z and x need the same N")
        n = x.shape[0]
        return x.new_empty(n), x.new_empty(n, n), x.new_empty(n, n)

    @torch.library.register_fake("omasgan::scattering_backward_from_pairs")
    def _scattering_backward_from_pairs_fake(grad_s, z, x, latent_pairs, data_pairs, eps):
        return torch.empty_like(z), torch.empty_like(x)

    def _setup_pairs_context(ctx, inputs, output):
        z, x, eps = inputs
        _, latent_pairs, data_pairs = output
        ctx.eps = eps
        ctx.mark_non_differentiable(latent_pairs, data_pairs)
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            ctx.save_for_backward(z, x, latent_pairs, data_pairs)

    def _backward_from_pairs(ctx, grad_s, _grad_latent_pairs, _grad_data_pairs):
        z, x, latent_pairs, data_pairs = ctx.saved_tensors
        grad_z, grad_x = torch.ops.omasgan.scattering_backward_from_pairs.default(
            grad_s, z, x, latent_pairs, data_pairs, ctx.eps
        )
        return (grad_z if ctx.needs_input_grad[0] else None, grad_x if ctx.needs_input_grad[1] else None, None)

    torch.library.register_autograd(
        "omasgan::scattering_with_pairs", _backward_from_pairs, setup_context=_setup_pairs_context
    )


if _extension.compiled():
    _register()
