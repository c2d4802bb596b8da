"""Per-column scaling of a table's rows (``input_scaling="standard"``), fitted on the training rows and kept
with the trained networks, so a detector fitted on raw columns scores raw columns."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["InputScaler"]

# Scaled values are clipped here: a raw 1e30 stays finite through float32 networks and distances.
SCALED_LIMIT = 1e6


class InputScaler(nn.Module):
    """x -> (x - center) / scale per column: the training rows' mean and standard deviation.

    A constant column (SD at most 1e-9 of its magnitude, or 0) gets scale 1, as scikit-learn's
    ``StandardScaler`` does: it is 0 on every training row, and a new row that differs from the constant
    lies that far from every normal row. The statistics are computed in float64.
    """

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.register_buffer("center", torch.zeros(n_features, dtype=torch.float64))
        self.register_buffer("scale", torch.ones(n_features, dtype=torch.float64))

    @classmethod
    def fitted(cls, x: torch.Tensor) -> InputScaler:
        """A scaler for the rows of ``x`` (n, d)."""
        rows = x.detach().double().flatten(1)
        scaler = cls(rows.shape[1]).to(x.device)
        center, sd = rows.mean(0), rows.std(0, correction=0)
        constant = sd <= 1e-9 * center.abs().clamp_min(1.0)
        scaler.center.copy_(center)
        scaler.scale.copy_(torch.where(constant, torch.ones_like(sd), sd))
        return scaler

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = (x.flatten(1).double() - self.center) / self.scale
        return flat.clamp(-SCALED_LIMIT, SCALED_LIMIT).to(torch.float32).view_as(x)

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Scaled rows back in the original units."""
        return (x.flatten(1).double() * self.scale + self.center).to(torch.float32).view_as(x)

    def to_dict(self) -> dict[str, list[float]]:
        return {"center": self.center.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> InputScaler:
        scaler = cls(len(data["center"]))
        scaler.center.copy_(torch.tensor(data["center"], dtype=torch.float64))
        scaler.scale.copy_(torch.tensor(data["scale"], dtype=torch.float64))
        return scaler
