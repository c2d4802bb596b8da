"""``min_distance``: exact distance from each point to its nearest reference point (DESIGN §5)."""

from __future__ import annotations

import torch

from omasgan.ops import _extension
from omasgan.ops._inputs import as_point_pair
from omasgan.ops._nonfinite import known_finite, nonfinite_rows, poison, rows_chosen_by
from omasgan.ops._reference import min_distance_reference

__all__ = ["min_distance"]


def min_distance(x: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance from each row of ``x`` to its nearest row of ``ref``, and that row's index.

    The distance is Euclidean (not squared) and exact: the compiled kernels may find candidates with a
    GEMM, but every candidate that could win is recomputed by direct differences, so near-duplicate
    points keep their digits.

    Parameters
    ----------
    x : Tensor (N, D) or (N, C, H, W)
        Query points; images are flattened.
    ref : Tensor (Q, D) or (Q, C, H, W)
        Reference points, on the same device and with the same dtype as ``x``. float32 and float64
        everywhere; float16 and bfloat16 on CUDA (float32 accumulation).

    Returns
    -------
    dist : Tensor (N,)
        ``dist[i] = min_j ||x[i] - ref[j]||_2``. Differentiable w.r.t. ``x`` and ``ref``: ``ref``
        receives the gradients of its selected rows, summed. The gradient of a zero distance is 0.
    index : Tensor (N,), int64
        The argmin (lowest index among exact ties); not differentiable.

    Raises
    ------
    InvalidInputError
        Empty inputs, rank below 2, different feature counts, devices or dtypes.

    Notes
    -----
    Inside ``torch.autocast`` float16/bfloat16 inputs are computed (and returned) in float32.
    Non-finite coordinates (NaN, +-inf) propagate as NaN, on every backend: a row of ``x`` holding one
    gets ``dist`` NaN, ``index`` 0, and NaN gradients for itself and its ``index`` row of ``ref``; one
    anywhere in ``ref`` makes every ``dist`` NaN, every ``index`` that row's, and every gradient NaN
    (any point could be nearest to it). Check finiteness upstream to find the row. The CPU
    kernels are deterministic; the CUDA backward accumulates ``ref``'s gradient with ``index_add_``,
    which honours ``torch.use_deterministic_algorithms``. As in ``knn``, float32 candidates may come
    from a bfloat16 GEMM on CPUs with native bfloat16 (``OMASGAN_BF16_CANDIDATES=0`` turns it off);
    the results do not change.
    """
    x, ref = as_point_pair("min_distance", x, ref)
    if _extension.supports(x.device):
        dist, index = torch.ops.omasgan.min_distance.default(x, ref)
        if x.device.type == "cpu":
            return dist, index  # the CPU kernels apply the non-finite rule themselves (one pass, no Python)
    else:
        _extension.warn_reference_fallback(x.device.type)
        dist, index = min_distance_reference(x, ref)
    return _propagate_nonfinite(x, ref, dist, index)


def _propagate_nonfinite(
    x: torch.Tensor, ref: torch.Tensor, dist: torch.Tensor, index: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """NaN where a non-finite coordinate reaches (the docstring's rule), on any backend's result."""
    if known_finite(x, ref):
        return dist, index
    x_bad, ref_bad = nonfinite_rows(x), nonfinite_rows(ref)
    any_ref_bad = ref_bad.any()
    # Indices as torch.cdist(x, ref).min(1) gives them with NaN: the first NaN of each row.
    first_bad = ref_bad.to(torch.uint8).argmax()
    index = torch.where(x_bad, torch.zeros_like(index), torch.where(any_ref_bad, first_bad, index))
    out_rows = x_bad | any_ref_bad
    ref_rows = any_ref_bad | rows_chosen_by(x_bad, index, ref.shape[0])
    return poison(dist, out_rows, x, ref, ref_rows), index


def _register() -> None:
    # Fake kernels for torch.compile and opcheck. The autograd kernel is C++ (csrc/autograd.cpp), so a
    # differentiable call runs no Python beyond this module's argument checks.
    @torch.library.register_fake("omasgan::min_distance")
    def _min_distance_fake(x, ref):
        torch._check(x.dim() == 2 and ref.dim() == 2, lambda: "min_distance: x and ref must be 2-D")
        torch._check(x.shape[1] == ref.shape[1], lambda: "min_distance: x and ref need the same D")
        n = x.shape[0]
        return x.new_empty(n), x.new_empty(n, dtype=torch.long)

    @torch.library.register_fake("omasgan::min_distance_backward")
    def _min_distance_backward_fake(grad_dist, x, ref, index, dist):
        return torch.empty_like(x), torch.empty_like(ref)


if _extension.compiled():
    _register()
