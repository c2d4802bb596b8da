"""How the networks run: device, bf16 autocast, channels_last, torch.compile and DDP, in one place.

These are execution choices, not hyper-parameters: they are not part of a run's configuration, and a run
may be resumed with other ones. The trainers call their networks through :meth:`Engine.prepare`, which
returns a module that

- takes inputs as they come (images are converted to channels_last when asked),
- runs the network under bf16 autocast when ``precision="bf16"``,
- returns float32 outputs, so every loss term, divergence and distance operator computes in float32,
- is wrapped in DistributedDataParallel when the network is trained in a multi-process run.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.nn.utils import parametrize

from omasgan.distributed import DistributedContext
from omasgan.errors import InvalidInputError

__all__ = ["Engine", "RuntimeOptions", "resolve_device"]

PRECISIONS = ("fp32", "bf16")


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass(frozen=True)
class RuntimeOptions:
    """Fast paths (README "Fast paths"): each keeps every loss term in float32."""

    precision: str = "fp32"  # "bf16": network forward passes under torch.autocast(dtype=bfloat16)
    channels_last: bool = False  # convolutional nets and image batches in channels_last memory format
    compile: bool = False  # torch.compile each network except spectral-normalised critics (see prepare)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise InvalidInputError(f"precision must be one of {PRECISIONS}, got {self.precision!r}.")

    @classmethod
    def from_dict(cls, options: dict | None) -> RuntimeOptions:
        known = {"precision", "channels_last", "compile"}
        unknown = set(options or {}) - known
        if unknown:
            raise InvalidInputError(f"unknown runtime options {sorted(unknown)}; known: {sorted(known)}.")
        return cls(**(options or {}))


class _Forward(nn.Module):
    """Calls ``network`` under the engine's autocast and memory format; outputs come back in float32."""

    def __init__(self, network: nn.Module, device_type: str, options: RuntimeOptions) -> None:
        super().__init__()
        self.network = network
        self.device_type = device_type
        self.bf16 = options.precision == "bf16"
        self.channels_last = options.channels_last

    def forward(self, inputs: torch.Tensor, **options) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if self.channels_last and inputs.dim() == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.bf16):
            out = self.network(inputs, **options)
        return tuple(part.float() for part in out) if isinstance(out, tuple) else out.float()


def _has_spectral_norm(module: nn.Module) -> bool:
    # Compiled, a spectral-normalised critic called twice before one backward (real, then fake) fails: the
    # second call's in-place power-iteration update changes a vector the first call saved for backward
    # (eager spectral_norm clones it). Those critics run eagerly; everything else is compiled.
    return any(parametrize.is_parametrized(m) for m in module.modules())


def _has_convolutions(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.conv._ConvNd) for m in module.modules())


class Engine:
    """Device, fast paths and process group of one run; prepares each network for the trainers."""

    def __init__(
        self,
        device: torch.device,
        options: RuntimeOptions | None = None,
        context: DistributedContext | None = None,
    ) -> None:
        self.device = device
        self.options = options or RuntimeOptions()
        self.context = context or DistributedContext.single()

    def prepare(self, network: nn.Module, *, trained: bool) -> nn.Module:
        """``network`` ready to call: DDP-wrapped when ``trained`` in a multi-process run, compiled and
        autocast per the options. The returned module shares ``network``'s parameters (state dicts stay on
        ``network``)."""
        if self.options.channels_last and _has_convolutions(network):
            network.to(memory_format=torch.channels_last)
        runner: nn.Module = network
        if trained and self.context.active:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            # Buffers are synced from rank 0 before each forward (DDP's default): rank 0's BatchNorm running
            # statistics and spectral-norm vectors are the shared ones; batch statistics stay per rank.
            runner = DistributedDataParallel(network, device_ids=device_ids)
        if self.options.compile and not _has_spectral_norm(network):
            runner = torch.compile(runner)
        return _Forward(runner, self.device.type, self.options)
