"""Non-finite coordinates propagate as NaN through min_distance, knn and scattering, on every backend."""

from __future__ import annotations

import pytest
import torch

from omasgan import ops
from omasgan.ops import _extension
from tests.conftest import available_devices

BACKENDS = ["compiled", "reference"] if ops.backend() == "compiled" else ["reference"]
BAD = [float("nan"), float("inf"), float("-inf")]


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    """Run the public operators on the compiled kernels or on the pure-torch reference."""
    if request.param == "reference":
        monkeypatch.setattr(_extension, "_COMPILED", False)
        monkeypatch.setattr(_extension, "_CUDA_BUILT", False)
    return request.param


def _points(device, dtype, n, d, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=dtype).to(device)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("device", available_devices())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("d", [3, 64])  # direct differences / GEMM candidates in the CPU kernel
@pytest.mark.parametrize("bad", BAD)
def test_a_non_finite_query_row_gives_nan_for_that_row_only(backend, device, dtype, d, bad):
    x, ref = _points(device, dtype, 6, d, 0), _points(device, dtype, 9, d, 1)
    clean_dist, clean_index = ops.min_distance(x, ref)
    x = x.clone()
    x[2, d // 2] = bad
    x.requires_grad_(True)
    ref = ref.clone().requires_grad_(True)
    dist, index = ops.min_distance(x, ref)
    dist.sum().backward()
    others = torch.arange(6, device=device) != 2
    assert torch.isnan(dist[2]) and int(index[2]) == 0
    assert torch.equal(dist[others], clean_dist[others]) and torch.equal(index[others], clean_index[others])
    assert torch.isnan(x.grad[2]).all() and torch.isfinite(x.grad[others]).all()
    assert torch.isnan(ref.grad[0]).all()  # the row it reports as its nearest
    untouched = torch.ones(9, dtype=torch.bool, device=device)
    untouched[0] = False
    assert torch.isfinite(ref.grad[untouched]).all()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("device", available_devices())
@pytest.mark.parametrize("d", [3, 64])
@pytest.mark.parametrize("bad", BAD)
def test_a_non_finite_reference_row_makes_every_distance_nan(backend, device, d, bad):
    x, ref = _points(device, torch.float64, 6, d, 0), _points(device, torch.float64, 9, d, 1)
    ref[4, 0] = bad
    ref[7, 1] = bad
    x.requires_grad_(True)
    ref.requires_grad_(True)
    dist, index = ops.min_distance(x, ref)
    dist.sum().backward()
    assert torch.isnan(dist).all() and (index == 4).all()
    assert torch.isnan(x.grad).all() and torch.isnan(ref.grad).all()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("device", available_devices())
@pytest.mark.parametrize("where", ["z", "x"])
@pytest.mark.parametrize("bad", BAD)
def test_scattering_with_a_non_finite_coordinate_is_nan_everywhere(backend, device, where, bad):
    z, x = _points(device, torch.float64, 7, 2, 2), _points(device, torch.float64, 7, 5, 3)
    (z if where == "z" else x)[3, 1] = bad
    z.requires_grad_(True)
    x.requires_grad_(True)
    s = ops.scattering(z, x)
    s.sum().backward()
    assert torch.isnan(s).all()
    assert torch.isnan(z.grad).all() and torch.isnan(x.grad).all()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("device", available_devices())
def test_finite_inputs_are_unchanged_by_the_rule(backend, device):
    """The rule adds nothing where every coordinate is finite: values and gradients as the reference."""
    x, ref = _points(device, torch.float64, 6, 4, 4), _points(device, torch.float64, 9, 4, 5)
    x.requires_grad_(True)
    dist, index = ops.min_distance(x, ref)
    dist.sum().backward()
    expected = torch.cdist(x.detach(), ref).min(1)
    torch.testing.assert_close(dist.detach(), expected.values)
    assert torch.equal(index, expected.indices)
    assert torch.isfinite(x.grad).all()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("device", available_devices())
@pytest.mark.parametrize("d", [3, 64])
@pytest.mark.parametrize("bad", BAD)
def test_knn_non_finite_query_row_gives_nan_for_that_row_only(backend, device, d, bad):
    x, ref = _points(device, torch.float64, 6, d, 0), _points(device, torch.float64, 9, d, 1)
    clean_dist, clean_index = ops.knn(x, ref, 3)
    x = x.clone()
    x[2, d // 2] = bad
    x.requires_grad_(True)
    ref = ref.clone().requires_grad_(True)
    dist, index = ops.knn(x, ref, 3)
    dist.sum().backward()
    others = torch.arange(6, device=device) != 2
    assert torch.isnan(dist[2]).all() and index[2].tolist() == [0, 1, 2]
    assert torch.equal(dist[others], clean_dist[others]) and torch.equal(index[others], clean_index[others])
    assert torch.isnan(x.grad[2]).all() and torch.isfinite(x.grad[others]).all()
    assert torch.isnan(ref.grad[:3]).all()  # the rows it reports as its nearest
    assert torch.isfinite(ref.grad[3:]).all()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("device", available_devices())
@pytest.mark.parametrize("bad", BAD)
def test_knn_non_finite_reference_row_makes_every_distance_nan(backend, device, bad):
    x, ref = _points(device, torch.float64, 6, 5, 0), _points(device, torch.float64, 9, 5, 1)
    ref[7, 1] = bad
    x.requires_grad_(True)
    ref.requires_grad_(True)
    dist, index = ops.knn(x, ref, 4)
    dist.sum().backward()
    assert torch.isnan(dist).all() and (index == torch.arange(4, device=device)).all()
    assert torch.isnan(x.grad).all() and torch.isnan(ref.grad).all()


@pytest.mark.skipif(ops.backend() != "compiled", reason="needs the compiled extension")
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("op", ["min_distance", "knn"])
@pytest.mark.parametrize("d", [3, 64])
@pytest.mark.parametrize("bad", BAD)
def test_the_cpu_kernels_apply_the_rule_without_the_python_masks(op, d, bad):
    """The public CPU path returns the kernels' output unmasked, so the kernels themselves must give the
    rule's values, indices and gradients (for a bad query row, and for a bad reference row)."""
    call = getattr(torch.ops.omasgan, op).default
    args = () if op == "min_distance" else (3,)
    reported = 1 if op == "min_distance" else 3  # the rows of ref a bad query row reports: 0..k-1
    x, ref = _points("cpu", torch.float64, 6, d, 0), _points("cpu", torch.float64, 9, d, 1)
    x[2, d // 2] = bad
    x.requires_grad_(True)
    ref.requires_grad_(True)
    dist, index = call(x, ref, *args)
    dist.sum().backward()
    assert torch.isnan(dist[2]).all() and torch.isfinite(dist[torch.arange(6) != 2]).all()
    assert index[2].reshape(-1).tolist() == list(range(reported))
    assert torch.isnan(x.grad[2]).all() and torch.isfinite(x.grad[torch.arange(6) != 2]).all()
    assert torch.isnan(ref.grad[:reported]).all() and torch.isfinite(ref.grad[reported:]).all()

    x, ref = _points("cpu", torch.float64, 6, d, 0), _points("cpu", torch.float64, 9, d, 1)
    ref[7, d // 2] = bad
    ref[8, 0] = bad
    x.requires_grad_(True)
    ref.requires_grad_(True)
    dist, index = call(x, ref, *args)
    dist.sum().backward()
    expected_index = torch.full((6,), 7) if op == "min_distance" else torch.arange(3).expand(6, 3)
    assert torch.isnan(dist).all() and torch.equal(index, expected_index)
    assert torch.isnan(x.grad).all() and torch.isnan(ref.grad).all()


@pytest.mark.skipif(ops.backend() != "compiled", reason="needs the compiled extension")
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("keep", [None, (True, True), (False, True), (True, False)])  # None: recompute
@pytest.mark.parametrize("where", ["z", "x"])
@pytest.mark.parametrize("d", [3, 64])
@pytest.mark.parametrize("bad", BAD)
def test_the_cpu_scattering_kernels_apply_the_rule_without_the_python_masks(keep, where, d, bad):
    """The public CPU path returns scattering's kernel output unmasked, so each strategy's kernels must
    give NaN for every s[i] and every gradient themselves."""
    z, x = _points("cpu", torch.float64, 7, 20, 2), _points("cpu", torch.float64, 7, d, 3)
    (z if where == "z" else x)[3, 1] = bad
    z.requires_grad_(True)
    x.requires_grad_(True)
    if keep is None:
        s = torch.ops.omasgan.scattering.default(z, x, 1e-8)
    else:
        s, latent_pairs, data_pairs = torch.ops.omasgan.scattering_with_pairs.default(z, x, 1e-8, *keep)
    s.sum().backward()
    assert torch.isnan(s).all()
    assert torch.isnan(z.grad).all() and torch.isnan(x.grad).all()
