"""The CUDA kernels compile with nvcc against the installed torch headers, GPU or not.

CPU-only machines (like CI) still catch CUDA code that no longer builds; a GPU run then checks that it works.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
CUDA_SOURCES = sorted((REPO_ROOT / "csrc" / "cuda").glob("*.cu"))


def _nvcc_command(source: Path, output: Path) -> list[str]:
    torch_include = Path(torch.__file__).parent / "include"
    return [
        shutil.which("nvcc"),
        "-c",
        str(source),
        "-o",
        str(output),
        "-std=c++20",
        "-O1",
        "--expt-relaxed-constexpr",
        "-gencode=arch=compute_90,code=sm_90",
        "-Xcompiler",
        "-fPIC",
        f"-I{torch_include}",
        f"-I{torch_include / 'torch' / 'csrc' / 'api' / 'include'}",
        f"-I{sysconfig.get_paths()['include']}",
        f"-I{REPO_ROOT / 'csrc'}",
        # A CPU build of torch ships no generated c10/cuda macro header; it only matters on Windows.
        "-DC10_CUDA_NO_CMAKE_CONFIGURE_FILE",
        "-D__CUDA_NO_HALF_OPERATORS__",
        "-D__CUDA_NO_HALF_CONVERSIONS__",
        "-D__CUDA_NO_BFLOAT16_CONVERSIONS__",
        "-D__CUDA_NO_HALF2_OPERATORS__",
        "-DTORCH_EXTENSION_NAME=_C",
        f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}",
    ]


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not found; CUDA sources not compiled here")
def test_cuda_sources_compile_with_nvcc(tmp_path):
    assert CUDA_SOURCES, "csrc/cuda/*.cu is empty"
    jobs = {
        source.name: subprocess.Popen(
            _nvcc_command(source, tmp_path / f"{source.stem}.o"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ),
        )
        for source in CUDA_SOURCES
    }
    failures = {}
    for name, job in jobs.items():
        output, _ = job.communicate(timeout=900)
        if job.returncode != 0:
            failures[name] = output[-4000:]
    assert not failures, failures
    for source in CUDA_SOURCES:
        assert (tmp_path / f"{source.stem}.o").stat().st_size > 0
