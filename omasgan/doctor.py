"""``omasgan doctor`` (and ``python -m omasgan.ops``): what this installation runs on, for bug reports."""

from __future__ import annotations

import platform
import sys
from typing import Any

import torch

import omasgan
from omasgan import ops

__all__ = ["environment_report", "format_report"]


def environment_report() -> dict[str, Any]:
    """omasgan's and torch's versions, the operators' backend and why, CUDA kernels and devices, plugins."""
    from omasgan import divergences
    from omasgan.runtime import resolve_device

    build = ops.build_info()
    return {
        "omasgan": omasgan.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "ops_backend": ops.backend(),
        "ops_not_compiled_because": ops.load_error(),
        "cuda_kernels_built": ops.cuda_built(),
        "extension_built_with": build.get("compiler"),
        "extension_built_against_torch": build.get("torch_version"),
        "extension_openmp": build.get("openmp"),
        "device_auto": str(resolve_device("auto")),
        "divergences": sorted(divergences.available()),
        "plugin_errors": [str(error) for error in divergences.load_errors()],
    }


def format_report(report: dict[str, Any]) -> str:
    width = max(map(len, report))
    lines = []
    for key, value in report.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        lines.append(f"{key.ljust(width)}  {'-' if shown in (None, '') else shown}")
    return "\n".join(lines)


def main() -> int:
    print(format_report(environment_report()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
