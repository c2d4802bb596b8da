"""``knn``: exact distances from each point to its k nearest reference points, and their indices."""

from __future__ import annotations

import operator

import torch

from omasgan.errors import InvalidInputError
from omasgan.ops import _extension
from omasgan.ops._inputs import as_point_pair
from omasgan.ops._nonfinite import known_finite, nonfinite_rows, poison, rows_chosen_by
from omasgan.ops._reference import knn_reference

__all__ = ["knn"]


def knn(x: torch.Tensor, ref: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Distances from each row of ``x`` to its ``k`` nearest rows of ``ref``, ascending, and those rows.

    Exact, as ``min_distance`` is: the compiled kernels find candidates with a GEMM per tile, and every
    candidate that could be among the k nearest is recomputed by direct differences, so near-duplicate
    points keep their digits and the neighbours are the true ones. Memory is O(N k) plus tile-sized
    buffers: the (N, Q) distance matrix is never formed.

    Parameters
    ----------
    x : Tensor (N, D) or (N, C, H, W)
        Query points; images are flattened.
    ref : Tensor (Q, D) or (Q, C, H, W)
        Reference points, on the same device and with the same dtype as ``x``. float32 and float64
        everywhere; float16 and bfloat16 on CUDA (float32 accumulation).
    k : int
        Neighbours per query, 1 <= k <= Q.

    Returns
    -------
    dist : Tensor (N, k)
        ``dist[i, p]``: Euclidean distance from ``x[i]`` to its (p+1)-th nearest row of ``ref``,
        non-decreasing in p. Differentiable w.r.t. ``x`` and ``ref`` (each selected row of ``ref``
        receives its pairs' gradients, summed); the gradient of a zero distance is 0.
    index : Tensor (N, k), int64
        The rows of ``ref``; among exactly equal distances the lowest index comes first. Not
        differentiable.

    Raises
    ------
    InvalidInputError
        Empty inputs, rank below 2, different feature counts, devices or dtypes, k outside [1, Q].

    Notes
    -----
    Inside ``torch.autocast`` float16/bfloat16 inputs are computed (and returned) in float32.
    Non-finite coordinates (NaN, +-inf) propagate as NaN on every backend: a row of ``x`` holding one
    gets ``dist`` NaN, ``index`` 0, 1, ..., k-1, and NaN gradients for itself and those rows of ``ref``;
    one anywhere in ``ref`` makes every ``dist`` NaN, every ``index`` row 0, ..., k-1, and every gradient
    NaN. The CPU kernels are deterministic; the CUDA backward accumulates ``ref``'s gradient with
    ``index_add_``, which honours ``torch.use_deterministic_algorithms``. On CPUs that multiply bfloat16
    natively (AVX512-BF16, AMX), float32 searches find their candidates with a bfloat16 GEMM and a
    correspondingly wider error bound (more exact recomputes, the same results);
    ``OMASGAN_BF16_CANDIDATES=0`` keeps the float32 GEMM.
    """
    x, ref = as_point_pair("knn", x, ref)
    k = _neighbour_count(k, ref.shape[0])
    if _extension.supports(x.device):
        dist, index = torch.ops.omasgan.knn.default(x, ref, k)
        if x.device.type == "cpu":
            return dist, index  # the CPU kernels apply the non-finite rule themselves (one pass, no Python)
    else:
        _extension.warn_reference_fallback(x.device.type)
        dist, index = knn_reference(x, ref, k)
    return _propagate_nonfinite(x, ref, dist, index)


def _neighbour_count(k, rows: int) -> int:
    """``k`` as a Python int in [1, rows] (numpy integers too; bools and floats are refused)."""
    try:
        count = operator.index(k) if not isinstance(k, bool) else None
    except TypeError:
        count = None
    if count is None or not 1 <= count <= rows:
        raise InvalidInputError(f"knn: k must be an int in [1, {rows}] (the rows of ref), got {k!r}.")
    return count


def _propagate_nonfinite(
    x: torch.Tensor, ref: torch.Tensor, dist: torch.Tensor, index: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """NaN where a non-finite coordinate reaches (the docstring's rule), on any backend's result."""
    if known_finite(x, ref):
        return dist, index
    x_bad, any_ref_bad = nonfinite_rows(x), nonfinite_rows(ref).any()
    out_rows = x_bad | any_ref_bad
    first_rows = torch.arange(index.shape[1], device=index.device).expand_as(index)
    index = torch.where(out_rows[:, None], first_rows, index)
    ref_rows = any_ref_bad | rows_chosen_by(x_bad, index, ref.shape[0])
    return poison(dist, out_rows, x, ref, ref_rows), index


def _register() -> None:
    # Fake kernels for torch.compile and opcheck. The autograd kernel is C++ (csrc/autograd.cpp), so a
    # differentiable call runs no Python beyond this module's argument checks.
    @torch.library.register_fake("omasgan::knn")
    def _knn_fake(x, ref, k):
        torch._check(x.dim() == 2 and ref.dim() == 2, lambda: "knn: x and ref must be 2-D")
        torch._check(x.shape[1] == ref.shape[1], lambda: "knn: x and ref need the same D")
        torch._check(1 <= k <= ref.shape[0], lambda: "knn: k must be in [1, Q]")
        n = x.shape[0]
        return x.new_empty(n, k), x.new_empty(n, k, dtype=torch.long)

    @torch.library.register_fake("omasgan::knn_backward")
    def _knn_backward_fake(grad_dist, x, ref, index, dist):
        return torch.empty_like(x), torch.empty_like(ref)


if _extension.compiled():
    _register()
