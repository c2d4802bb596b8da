"""Networks: MLPs for vectors, DCGAN-like convolutional nets for 28x28 / 32x32 images, B's latent shift,
J's feature heads, and the one module that assembles them for a configuration (``assembly``)."""

from __future__ import annotations

from omasgan.nets.assembly import build_nets
from omasgan.nets.conv import ConvCritic, ConvGenerator
from omasgan.nets.mlp import MLPCritic, MLPGenerator

__all__ = ["ConvCritic", "ConvGenerator", "MLPCritic", "MLPGenerator", "build_nets"]
