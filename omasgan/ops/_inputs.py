"""Argument checks for the operators, at the Python boundary (STYLE §7.3): clear messages, no deep tracebacks."""

from __future__ import annotations

import torch

from omasgan.errors import InvalidInputError

__all__ = ["as_point_pair", "as_points", "check_same_kind", "float32_under_autocast"]

_CPU_DTYPES = (torch.float32, torch.float64)
_CUDA_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def float32_under_autocast(value: torch.Tensor) -> torch.Tensor:
    """Half-precision input inside an autocast region is computed in float32: distances between nearby
    points lose their digits in 8 mantissa bits, and the CPU kernels have no half-precision path."""
    if (
        isinstance(value, torch.Tensor)
        and value.dtype in (torch.float16, torch.bfloat16)
        and torch.is_autocast_enabled(value.device.type)
    ):
        return value.float()
    return value


def as_points(op: str, name: str, value: torch.Tensor) -> torch.Tensor:
    """Return ``value`` as a (rows, features) matrix; images (N, C, H, W) are flattened."""
    if not isinstance(value, torch.Tensor):
        raise InvalidInputError(f"{op}: {name} must be a torch.Tensor, got {type(value).__name__}.")
    if value.dim() < 2:
        raise InvalidInputError(
            f"{op}: {name} must have shape (N, D) or (N, C, H, W), got {tuple(value.shape)}; "
            f"use {name}.reshape(-1, 1) for a single feature."
        )
    points = value.flatten(1) if value.dim() > 2 else value
    if points.shape[0] == 0 or points.shape[1] == 0:
        raise InvalidInputError(f"{op}: {name} is empty (shape {tuple(value.shape)}); pass at least one point.")
    allowed = _CUDA_DTYPES if points.device.type == "cuda" else _CPU_DTYPES
    if points.dtype not in allowed:
        names = ", ".join(str(d).removeprefix("torch.") for d in allowed)
        raise InvalidInputError(
            f"{op}: {name} has dtype {points.dtype} but on {points.device.type} supported dtypes are {names}; "
            f"cast with {name}.float()."
        )
    return points


def check_same_kind(op: str, names: tuple[str, str], a: torch.Tensor, b: torch.Tensor) -> None:
    """Both tensors on one device with one dtype."""
    if a.device != b.device:
        raise InvalidInputError(
            f"{op}: {names[0]} is on {a.device} but {names[1]} is on {b.device}; move both to one device."
        )
    if a.dtype != b.dtype:
        raise InvalidInputError(
            f"{op}: {names[0]} is {a.dtype} but {names[1]} is {b.dtype}; cast both to one floating dtype."
        )


def as_point_pair(op: str, x: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Queries ``x`` and references ``ref`` as (N, D) and (Q, D) matrices of one D, device and dtype
    (autocast's half precision computed in float32): the inputs of min_distance and knn."""
    x = as_points(op, "x", float32_under_autocast(x))
    ref = as_points(op, "ref", float32_under_autocast(ref))
    if x.shape[1] != ref.shape[1]:
        raise InvalidInputError(
            f"{op}: x has {x.shape[1]} columns but ref has {ref.shape[1]}; flatten both to the same D."
        )
    check_same_kind(op, ("x", "ref"), x, ref)
    return x, ref
