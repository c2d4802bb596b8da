"""Which implementation serves the operators, and the one warning when the extension is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

from omasgan import ops

FALLBACK_SCRIPT = textwrap.dedent(
    """
    import warnings
    import torch
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import omasgan.ops as ops
        x, ref = torch.randn(5, 3), torch.randn(7, 3)
        d1, i1 = ops.min_distance(x, ref)
        d2, i2 = ops.min_distance(x, ref)
        s = ops.scattering(torch.randn(5, 2), x)
    ours = [w for w in caught if "compiled operators are not built" in str(w.message)]
    assert ops.backend() == "reference", ops.backend()
    assert not ops.cuda_built()
    assert len(ours) == 1, [str(w.message) for w in caught]
    assert "pip install --no-build-isolation" in str(ours[0].message)
    expected = torch.cdist(x.double(), ref.double()).min(1)
    assert torch.allclose(d1.double(), expected.values) and torch.equal(i1, expected.indices)
    print("fallback-ok")
    """
)


def test_reference_fallback_warns_exactly_once_and_computes():
    env = dict(os.environ, OMASGAN_NO_EXTENSION="1")
    result = subprocess.run([sys.executable, "-c", FALLBACK_SCRIPT], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "fallback-ok" in result.stdout


def test_backend_reports_the_loaded_extension():
    # Where a C++ compiler exists the extension must have built and loaded: a silent fallback to the
    # reference operators would let every "compiled" test pass on the reference.
    if shutil.which(os.environ.get("CXX", "c++")) is not None and os.environ.get("OMASGAN_NO_EXTENSION") != "1":
        assert ops.backend() == "compiled", f"a compiler exists but omasgan._C is not loaded: {ops.load_error()}"
    assert ops.backend() in ("compiled", "reference")
    if ops.backend() == "compiled":
        info = ops.build_info()
        assert info["torch_version"].split("+")[0] == __import__("torch").__version__.split("+")[0]
    else:
        assert ops.build_info() == {}
        assert not ops.cuda_built()


def test_doctor_reports_the_backend_cuda_kernels_and_torch(capsys):
    import json

    import torch

    from omasgan.cli import main

    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ops_backend"] == ops.backend() and report["cuda_kernels_built"] == ops.cuda_built()
    assert report["torch"] == torch.__version__ and "kl" in report["divergences"]
    result = subprocess.run([sys.executable, "-m", "omasgan.ops"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "ops_backend" in result.stdout and ops.backend() in result.stdout and torch.__version__ in result.stdout


@pytest.mark.skipif(ops.backend() != "compiled", reason="the extension is not built")
@pytest.mark.parametrize("call", [lambda x, r: ops.min_distance(x, r), lambda x, r: ops.knn(x, r, 2)])
def test_nearest_operators_differentiate_without_python(call):
    # Their autograd kernel is C++ (csrc/autograd.cpp): the backward node is no Python autograd.Function,
    # and only the inputs that require a gradient get one.
    x, ref = torch.randn(6, 3, requires_grad=True), torch.randn(9, 3)
    dist, index = call(x, ref)
    assert not isinstance(dist.grad_fn, torch.autograd.function.BackwardCFunction), type(dist.grad_fn)
    assert not index.requires_grad
    dist.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0 and ref.grad is None
