"""Pure-torch reference implementations of the compiled operators.

They are the oracle in the tests and the fallback when ``omasgan._C`` is not built. Distances are
taken by direct differences (never ``||a||^2 + ||b||^2 - 2ab``), so they stay exact for near-duplicate
points; the work is tiled so no ``N x Q x D`` tensor is formed at once. Gradients come from torch
autograd; the gradient of a zero distance is zero, as in the compiled kernels.
"""

from __future__ import annotations

import torch

__all__ = ["knn_reference", "min_distance_reference", "scattering_reference"]

# Elements of the largest (rows, cols, D) difference tensor built at once.
_TILE_ELEMENTS = 1 << 24


def _norm_from_squares(squared: torch.Tensor) -> torch.Tensor:
    """sqrt with a zero (not NaN) gradient at zero: the double-where keeps sqrt's backward finite."""
    positive = squared > 0
    safe = torch.where(positive, squared, torch.ones_like(squared))
    return torch.where(positive, safe.sqrt(), torch.zeros_like(squared))


def _row_chunks(n_rows: int, cols: int, dim: int):
    """Row ranges whose (rows, cols, dim) difference tensor stays within the tile budget."""
    step = max(1, _TILE_ELEMENTS // max(1, cols * dim))
    for start in range(0, n_rows, step):
        yield start, min(n_rows, start + step)


def min_distance_reference(x: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest row of ``ref`` for each row of ``x``, by direct differences.

    Parameters
    ----------
    x : Tensor (N, D)
    ref : Tensor (Q, D)

    Returns
    -------
    dist : Tensor (N,)
        Euclidean distance to the nearest row of ``ref``; differentiable w.r.t. ``x`` and ``ref``.
    index : Tensor (N,), int64
        Row of ``ref`` that attains it (lowest index on ties).
    """
    n, dim = x.shape
    q = ref.shape[0]
    with torch.no_grad():
        best = torch.full((n,), float("inf"), dtype=x.dtype, device=x.device)
        index = torch.zeros(n, dtype=torch.long, device=x.device)
        q_step = max(1, _TILE_ELEMENTS // max(1, min(n, 1024) * dim))
        for q0 in range(0, q, q_step):
            ref_tile = ref[q0 : q0 + q_step]
            for r0, r1 in _row_chunks(n, ref_tile.shape[0], dim):
                squared = (x[r0:r1, None, :] - ref_tile[None, :, :]).square().sum(-1)
                tile_best, tile_index = squared.min(1)
                better = tile_best < best[r0:r1]
                best[r0:r1] = torch.where(better, tile_best, best[r0:r1])
                index[r0:r1] = torch.where(better, tile_index + q0, index[r0:r1])
    dist = _norm_from_squares((x - ref[index]).square().sum(1))
    return dist, index


def knn_reference(x: torch.Tensor, ref: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest rows of ``ref`` for each row of ``x``, by direct differences.

    Parameters
    ----------
    x : Tensor (N, D)
    ref : Tensor (Q, D)
    k : int, 1 <= k <= Q

    Returns
    -------
    dist : Tensor (N, k)
        Euclidean distances, ascending; differentiable w.r.t. ``x`` and ``ref``.
    index : Tensor (N, k), int64
        Rows of ``ref`` that attain them (lowest index first among equal distances: the running best,
        which holds lower indices, comes before each tile in a stable sort).
    """
    n, dim = x.shape
    q = ref.shape[0]
    with torch.no_grad():
        best = torch.empty(n, 0, dtype=x.dtype, device=x.device)
        index = torch.empty(n, 0, dtype=torch.long, device=x.device)
        q_step = max(k, _TILE_ELEMENTS // max(1, min(n, 1024) * dim))
        for q0 in range(0, q, q_step):
            ref_tile = ref[q0 : q0 + q_step]
            columns = torch.arange(q0, q0 + ref_tile.shape[0], device=x.device)
            parts_best, parts_index = [], []
            for r0, r1 in _row_chunks(n, ref_tile.shape[0], dim):
                squared = (x[r0:r1, None, :] - ref_tile[None, :, :]).square().sum(-1)
                values = torch.cat([best[r0:r1], squared], 1)
                candidates = torch.cat([index[r0:r1], columns.expand(r1 - r0, -1)], 1)
                values, order = values.sort(dim=1, stable=True)
                parts_best.append(values[:, :k])
                parts_index.append(candidates.gather(1, order[:, :k]))
            best, index = torch.cat(parts_best), torch.cat(parts_index)
    dist = _norm_from_squares((x[:, None, :] - ref[index]).square().sum(-1))
    return dist, index


def scattering_reference(z: torch.Tensor, x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """s_i = 1/(N-1) sum_{j != i} ||z_i - z_j|| / (||x_i - x_j|| + eps), by direct differences.

    Parameters
    ----------
    z : Tensor (N, L)
    x : Tensor (N, D)
    eps : float

    Returns
    -------
    s : Tensor (N,)
        Differentiable w.r.t. ``z`` and ``x``. Autograd keeps every tile's differences, so backward
        memory is O(N^2 (L + D)); the compiled kernel needs O(N tile).
    """
    n = x.shape[0]
    parts = []
    for r0, r1 in _row_chunks(n, n, max(x.shape[1], z.shape[1])):
        a = _norm_from_squares((z[r0:r1, None, :] - z[None, :, :]).square().sum(-1))
        b = _norm_from_squares((x[r0:r1, None, :] - x[None, :, :]).square().sum(-1))
        ratio = a / (b + eps)
        rows = torch.arange(r0, r1, device=x.device)
        off_diagonal = rows[:, None] != torch.arange(n, device=x.device)[None, :]
        parts.append(torch.where(off_diagonal, ratio, torch.zeros_like(ratio)).sum(1))
    return torch.cat(parts) / (n - 1)
