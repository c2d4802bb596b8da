"""Non-finite inputs (NaN, +-inf) give NaN outputs and NaN gradients, on every backend.

A NaN or infinite coordinate is not a point, and the kernels' searches skip such values in ways that
differ by backend (a distance of inf, of 0, or a finite distance to some other row). The operators
therefore mark, after the backend has run, the outputs a non-finite input can reach, and the gradients
of the inputs that reach them, as NaN: never a silently wrong finite value, and no device sync (the
masks are tensors, not Python booleans). The CPU kernels of min_distance, knn (csrc/knn.h) and
scattering apply the same rule themselves, so these masks serve the reference implementation and CUDA.
"""

from __future__ import annotations

import math

import torch

__all__ = ["known_finite", "nonfinite_rows", "poison", "rows_chosen_by"]


def known_finite(*tensors: torch.Tensor) -> bool:
    """True when every value is finite and asking cost no device sync (CPU, eager): the operators then skip
    the masks, which are an identity on finite input. On CUDA or under torch.compile: False (use the masks)."""
    if torch.compiler.is_compiling() or any(t.device.type != "cpu" for t in tensors):
        return False
    # A finite sum means every value is finite (a NaN or an infinity reaches the sum); a sum that overflows
    # only sends finite input down the masked path, which is correct too. Unlike isfinite(t).all(), it
    # allocates nothing of t's size (that was 57 MiB for knn's 65,536 x 128 reference).
    return all(math.isfinite(t.detach().sum().item()) for t in tensors)


def nonfinite_rows(points: torch.Tensor) -> torch.Tensor:
    """(rows,) bool: rows holding a NaN or an infinity."""
    return ~torch.isfinite(points.detach()).all(1)


def rows_chosen_by(query_rows: torch.Tensor, index: torch.Tensor, count: int) -> torch.Tensor:
    """(count,) bool: the reference rows that ``index`` (N,) or (N, k) names for the queries in
    ``query_rows`` (N,) bool (a tensor scatter, no sync)."""
    chosen = query_rows.view(-1, *([1] * (index.dim() - 1))).expand_as(index).reshape(-1).long()
    hits = torch.zeros(count, dtype=torch.long, device=index.device).scatter_add(0, index.reshape(-1), chosen)
    return hits > 0


class _Poison(torch.autograd.Function):
    """``out`` with NaN in ``rows``; its gradient passes unchanged, and the inputs ``a`` and ``b`` get NaN
    gradients in ``rows`` (``b`` in ``b_rows`` when given), added to the operator's own so that NaN wins,
    and zeros elsewhere. Each mask is passed once (torch.compile refuses one tensor in two arguments)."""

    @staticmethod
    def forward(ctx, out, rows, a, b, b_rows):
        ctx.shapes = (a.shape, b.shape)
        ctx.own_b_rows = b_rows is not None
        ctx.save_for_backward(rows, *([b_rows] if b_rows is not None else []))
        # rows masks out's first dimension, whatever its trailing ones (knn's (N, k)).
        mask = rows.view(rows.shape + (1,) * (out.dim() - 1))
        return torch.where(mask, torch.full_like(out, float("nan")), out)

    @staticmethod
    def backward(ctx, grad):
        rows, *rest = ctx.saved_tensors
        b_rows = rest[0] if ctx.own_b_rows else rows
        nan = torch.full((), float("nan"), dtype=grad.dtype, device=grad.device)
        zero = torch.zeros((), dtype=grad.dtype, device=grad.device)
        grad_a = torch.where(rows[:, None], nan, zero).expand(ctx.shapes[0])
        grad_b = torch.where(b_rows[:, None], nan, zero).expand(ctx.shapes[1])
        return grad, None, grad_a, grad_b, None


def poison(
    out: torch.Tensor, rows: torch.Tensor, a: torch.Tensor, b: torch.Tensor, b_rows: torch.Tensor | None = None
) -> torch.Tensor:
    """``out`` (rows, ...) with NaN where ``rows``; the operator's inputs ``a`` and ``b`` (2-D) get NaN
    gradients in ``rows`` (``b``: in ``b_rows`` where given)."""
    return _Poison.apply(out, rows, a, b, b_rows)
