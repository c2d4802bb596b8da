"""Synthetic 2-D data for demos and tests: a bimodal normal class and held-out anomalies."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["bimodal", "bimodal_anomalies"]

CENTRES = np.array([[-2.0, 0.0], [2.0, 0.0]])
SCALE = 0.5


def bimodal(n: int, *, random_state: int | None = 0) -> np.ndarray:
    """n points from two Gaussian modes, at (-2, 0) and (2, 0) with standard deviation 0.5: (n, 2) float32."""
    rng = np.random.default_rng(random_state)
    mode = rng.integers(0, 2, size=n)
    return (CENTRES[mode] + SCALE * rng.standard_normal((n, 2))).astype(np.float32)


def bimodal_anomalies(n: int, *, random_state: int | None = 1) -> np.ndarray:
    """Anomalies for :func:`bimodal`: half uniform on [-6, 6]^2 outside both modes' 3-sigma discs, half
    "near the support": on rings between 3.5 and 5 sigma around a mode. (n, 2) float32."""
    rng = np.random.default_rng(random_state)
    n_near = n // 2
    uniform = []
    while len(uniform) < n - n_near:
        p = rng.uniform(-6, 6, size=2)
        if np.min(np.linalg.norm(CENTRES - p, axis=1)) > 3 * SCALE:
            uniform.append(p)
    angle = rng.uniform(0, 2 * math.pi, size=n_near)
    radius = SCALE * rng.uniform(3.5, 5.0, size=n_near)
    mode = rng.integers(0, 2, size=n_near)
    near = CENTRES[mode] + radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return np.concatenate([np.array(uniform), near]).astype(np.float32)
