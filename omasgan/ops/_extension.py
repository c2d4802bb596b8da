"""Loading the compiled extension ``omasgan._C`` once, and saying so once when it is missing."""

from __future__ import annotations

import functools
import importlib
import os
import warnings

import torch

from omasgan.build_notice import warn_missing_extension

__all__ = ["backend", "build_info", "compiled", "cuda_built", "load_error"]


@functools.cache
def _load():
    if os.environ.get("OMASGAN_NO_EXTENSION", "0") == "1":
        return ImportError("disabled by OMASGAN_NO_EXTENSION=1")
    try:
        return importlib.import_module("omasgan._C")
    except ImportError as exc:  # missing or built against another torch
        return exc


def load_error() -> str | None:
    """Why the extension is not loaded (None when it is)."""
    module = _load()
    return str(module) if isinstance(module, ImportError) else None


def compiled() -> bool:
    """Whether the compiled operators are loaded (without warning)."""
    return not isinstance(_load(), ImportError)


@functools.cache
def warn_reference_fallback(device_type: str) -> None:
    """Warn, once per process and cause, that the reference implementation stands in for the extension."""
    reason = _load()
    if isinstance(reason, ImportError):
        warn_missing_extension(f"import failed: {reason}", stacklevel=4)
        return
    message = (
        f"omasgan's compiled operators have no {device_type} kernels in this build, so they run on the "
        "pure-torch reference implementation there. Rebuild with a CUDA torch and nvcc present "
        "(or FORCE_CUDA=1): `pip install --no-build-isolation -e .`."
    )
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def supports(device: torch.device) -> bool:
    """Whether the compiled kernels serve tensors on ``device``."""
    if device.type == "cpu":
        return _COMPILED
    return device.type == "cuda" and _CUDA_BUILT


def backend() -> str:
    """``"compiled"`` when the C++/CUDA operators are loaded, ``"reference"`` otherwise."""
    return "compiled" if compiled() else "reference"


def cuda_built() -> bool:
    """Whether the loaded extension has CUDA kernels (asked of the dispatcher, not of a build flag)."""
    if not compiled():
        return False
    return torch._C._dispatch_has_kernel_for_dispatch_key("omasgan::min_distance", "CUDA")


def build_info() -> dict:
    """How the extension was built (compiler, torch version), or an empty dict when it is missing."""
    module = _load()
    return {} if isinstance(module, ImportError) else dict(module.build_info())


# Resolved once at import: torch.compile traces the operator wrappers, and constants keep them simple.
_COMPILED = compiled()
_CUDA_BUILT = cuda_built()
