"""Build omasgan's compiled operators, ``omasgan._C``.

The CPU kernels are always built. CUDA kernels (csrc/cuda/*.cu) are added when the installed torch is
a CUDA build and nvcc is found, or when FORCE_CUDA=1. We do not look at torch.cuda.is_available():
build machines often have no GPU. DEBUG=1 builds with -O0 -g.

The extension is optional, as pip's optional extensions are: where it fails to build (no working C++
compiler, a broken toolchain), omasgan installs without it and runs on the pure-torch operators, saying
so once here (pip shows it with -v) and once at import. OMASGAN_REQUIRE_EXTENSION=1 makes a failed build
fail the install instead (CI sets it where a compiler exists).
"""

from __future__ import annotations

import glob
import os
import sys

import torch
from setuptools import setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

HERE = os.path.dirname(os.path.abspath(__file__))


def _want_cuda() -> bool:
    if os.environ.get("FORCE_CUDA", "0") == "1":
        return True
    return torch.version.cuda is not None and CUDA_HOME is not None


def _extension():
    debug = os.environ.get("DEBUG", "0") == "1"
    cxx_flags = ["-O0", "-g"] if debug else ["-O3"]
    # -fopenmp: at::parallel_for is an inline "#pragma omp parallel"; without the flag it runs serially.
    # The extension then shares the libgomp.so.1 torch has already loaded.
    # -fno-math-errno: sqrt in the hot loops may vectorise (torch builds with it too).
    cxx_flags += ["-std=c++20", "-fopenmp", "-fno-math-errno"]
    sources = sorted(glob.glob(os.path.join("csrc", "*.cpp")))
    extra = {"cxx": cxx_flags}
    if _want_cuda():
        sources += sorted(glob.glob(os.path.join("csrc", "cuda", "*.cu")))
        extra["nvcc"] = (["-O0", "-g", "-G"] if debug else ["-O3"]) + ["-std=c++20", "--expt-relaxed-constexpr"]
        extension = CUDAExtension
    else:
        extension = CppExtension
    return extension(
        "omasgan._C",
        sources,
        extra_compile_args=extra,
        extra_link_args=["-fopenmp"],
        include_dirs=[os.path.join(HERE, "csrc")],
    )


_FALLBACK_NOTE = (
    "omasgan: the compiled operators (omasgan._C) could not be built ({reason}); installing without them. "
    "min_distance and scattering will run on the pure-torch reference implementation (correct, slower). "
    "`omasgan doctor` shows what is loaded; install a C++ compiler and reinstall to build them."
)


class OptionalBuildExtension(BuildExtension):
    """Build omasgan._C if possible; otherwise install without it (unless OMASGAN_REQUIRE_EXTENSION=1)."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # setuptools' CompileError/LinkError, a missing compiler, ninja failing
            self._skip(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._skip(exc)

    def _skip(self, exc: Exception) -> None:
        if os.environ.get("OMASGAN_REQUIRE_EXTENSION", "0") == "1":
            raise exc
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        print("\n" + "=" * 78 + "\n" + _FALLBACK_NOTE.format(reason=reason) + "\n" + "=" * 78, file=sys.stderr)


setup(
    ext_modules=[_extension()],
    cmdclass={"build_ext": OptionalBuildExtension.with_options(use_ninja=True)},
)
