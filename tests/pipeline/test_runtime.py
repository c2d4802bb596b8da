"""Fast paths: bf16 autocast, channels_last and torch.compile keep the losses in float32 and the operators working."""

from __future__ import annotations

import pytest
import torch

from omasgan import ops
from omasgan.config import OMASGANConfig
from omasgan.data import bimodal
from omasgan.errors import InvalidInputError
from omasgan.nets import ConvCritic, ConvGenerator
from omasgan.pipeline import OMASGAN
from omasgan.runtime import Engine, RuntimeOptions

TINY = {"task1.steps": 20, "task2.steps": 10, "task3.steps": 10, "detector.steps": 10, "log_every": 5}


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().norm() / b.detach().norm())


def test_bf16_networks_return_float32_outputs_close_to_fp32():
    torch.manual_seed(0)
    critic = ConvCritic(1, 28, width=16)
    images = torch.randn(32, 1, 28, 28)
    reference = critic(images)
    fast = Engine(torch.device("cpu"), RuntimeOptions(precision="bf16")).prepare(critic, trained=False)
    out = fast(images)
    assert out.dtype == torch.float32
    assert 0 < _relative_error(out, reference) < 0.05  # bf16 really ran (not bit-equal), within its precision


def test_channels_last_converts_conv_weights_and_keeps_outputs():
    torch.manual_seed(0)
    generator, critic = ConvGenerator(16, 1, 28, width=16).eval(), ConvCritic(1, 28, width=16).eval()
    z, images = torch.randn(8, 16), torch.randn(8, 1, 28, 28)
    expected_g, expected_c = generator(z), critic(images)
    engine = Engine(torch.device("cpu"), RuntimeOptions(channels_last=True))
    fast_g, fast_c = engine.prepare(generator, trained=False), engine.prepare(critic, trained=False)
    conv = generator.body[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(fast_g(z), expected_g, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast_c(images), expected_c, rtol=1e-5, atol=1e-5)


def test_operators_run_in_float32_inside_autocast():
    torch.manual_seed(0)
    x = torch.randn(64, 10).bfloat16().requires_grad_(True)
    ref = torch.randn(200, 10)
    z = torch.randn(64, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        dist, index = ops.min_distance(x, ref)
        spread = ops.scattering(z, x)
    assert dist.dtype == spread.dtype == torch.float32
    expected_dist, expected_index = ops.min_distance(x.detach().float(), ref)
    torch.testing.assert_close(dist, expected_dist)
    assert torch.equal(index, expected_index)
    (dist.sum() + spread.sum()).backward()
    assert x.grad.dtype == torch.bfloat16 and torch.isfinite(x.grad.float()).all()
    with pytest.raises(InvalidInputError, match="supported dtypes"):  # outside autocast: a clear error
        ops.min_distance(x.detach(), ref.bfloat16())


def test_image_pipeline_with_bf16_and_channels_last():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(128, 1, 28, 28, generator=generator) * 2 - 1
    config = OMASGANConfig.preset("quick", "image").with_overrides({**TINY, "task2.pool_size": 64})
    pipeline = OMASGAN(config, device="cpu", verbose=0, runtime={"precision": "bf16", "channels_last": True})
    models = pipeline.fit(images)
    assert {row["task"] for row in pipeline.history} == {"task1", "task2", "task3", "detector"}
    scores = models.scores(images[:10])
    assert all(v.dtype == torch.float32 and v.shape == (10,) for v in scores.values())
    assert models.boundary.generator.body[0].weight.is_contiguous(memory_format=torch.channels_last)  # latent B
    assert models.retrained_generator.body[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_compiled_networks_train_like_eager_ones():
    x = torch.from_numpy(bimodal(500, random_state=0))
    config = OMASGANConfig.preset("quick", "vector").with_overrides(TINY)
    probe = x[:50]
    eager = OMASGAN(config, device="cpu", verbose=0).fit(x).scores(probe)["detector"]
    compiled = OMASGAN(config, device="cpu", verbose=0, runtime={"compile": True}).fit(x).scores(probe)["detector"]
    # Same updates up to the compiler's float32 rounding, carried through 50 training steps.
    assert float((compiled - eager).abs().max()) < 0.05


def test_runtime_options_are_checked():
    with pytest.raises(InvalidInputError, match="precision"):
        RuntimeOptions(precision="fp8")
    with pytest.raises(InvalidInputError, match="unknown runtime options"):
        RuntimeOptions.from_dict({"bf16": True})
