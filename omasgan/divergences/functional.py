"""Numerically stable building blocks for divergence losses."""

from __future__ import annotations

import math

import torch

__all__ = ["exp_linear", "lambertw_exp", "log_mean_exp", "log_softplus"]

# Above this argument exp is continued by its tangent line: exp(50) ~ 5e21, so the loss stays finite
# in float32 for critic outputs of +-1e4 while keeping a C1, convex, increasing function.
EXP_CAP = 50.0


def exp_linear(x: torch.Tensor, cap: float = EXP_CAP) -> torch.Tensor:
    """``exp(x)`` for ``x <= cap`` and its tangent ``exp(cap) * (1 + x - cap)`` beyond.

    Convex, increasing and continuously differentiable; equal to ``exp`` wherever ``exp`` is usable.
    """
    clamped = x.clamp(max=cap)
    return torch.exp(clamped) * (1 + (x - clamped))


def log_softplus(x: torch.Tensor) -> torch.Tensor:
    """``log(softplus(x))`` without ``log(0)``: for x < -20, softplus(x) = e^x to double precision."""
    far_left = x < -20
    safe = torch.where(far_left, torch.zeros_like(x), x)  # keeps the unused branch's gradient finite
    return torch.where(far_left, x, torch.log(torch.nn.functional.softplus(safe)))


def log_mean_exp(x: torch.Tensor) -> torch.Tensor:
    """``log(mean(exp(x)))`` without overflow."""
    return torch.logsumexp(x, dim=0) - math.log(x.shape[0])


def lambertw_exp(x: torch.Tensor, iterations: int = 12) -> torch.Tensor:
    """``W(exp(x))``, the principal Lambert W of ``exp(x)``, for any real ``x`` without forming ``exp(x)``.

    Solves ``w + log(w) = x`` by Newton's method from ``x - log(x)`` (large x) or ``exp(x)`` (small x);
    converges to machine precision in a few steps. Differentiable: d/dx W(e^x) = W / (1 + W).
    """
    large = x > 1
    safe_large = torch.where(large, x, torch.full_like(x, 2.0))
    w = torch.where(large, safe_large - torch.log(safe_large), torch.exp(x.clamp(max=1.0)))
    w = w.detach()
    x_detached = x.detach()
    tiny = torch.finfo(x.dtype).tiny
    for _ in range(iterations):
        w = w.clamp(min=tiny)
        # Newton step on h(w) = w + log(w) - x, written as w (1 + x - log w) / (1 + w).
        w = w * (1 + x_detached - torch.log(w)) / (1 + w)
    w = w.clamp(min=tiny)
    # Reattach the gradient with the implicit-function derivative dW/dx = W / (1 + W).
    return w + (w / (1 + w)) * (x - x_detached)
