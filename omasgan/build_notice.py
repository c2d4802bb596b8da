"""The one warning a process gets when omasgan's compiled operators are missing (no torch import here,
so ``import omasgan`` can say it before anything else loads)."""

from __future__ import annotations

import importlib.util
import os
import warnings

__all__ = ["BUILD_HINT", "warn_if_extension_missing", "warn_missing_extension"]

BUILD_HINT = (
    "omasgan's compiled operators are not built, so min_distance and scattering run on the pure-torch "
    "reference implementation (correct, slower, more memory). Build them with "
    "`pip install --no-build-isolation -e .` from a checkout (needs a C++ compiler; CUDA kernels also need "
    "nvcc and a CUDA build of torch); `omasgan doctor` shows what is loaded."
)
_warned = False


def warn_missing_extension(reason: str, stacklevel: int = 3) -> None:
    """Warn once per process that the reference operators stand in for the extension, and why."""
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(f"{BUILD_HINT} ({reason})", RuntimeWarning, stacklevel=stacklevel)


def warn_if_extension_missing() -> None:
    """At ``import omasgan``: warn if the extension is disabled or was not installed (a build without a
    compiler). One that is installed but fails to load is reported when the operators first load it."""
    if os.environ.get("OMASGAN_NO_EXTENSION", "0") == "1":
        warn_missing_extension("disabled by OMASGAN_NO_EXTENSION=1", stacklevel=4)
    elif importlib.util.find_spec("omasgan._C") is None:
        warn_missing_extension("omasgan._C is not installed: it was not built at install", stacklevel=4)
