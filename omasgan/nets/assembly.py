"""The one place networks are assembled for a configuration and an input shape: fresh for training
(``omasgan.pipeline``), B around G (Task 2), and all seven again to reload a trained run or a saved
estimator (``omasgan.models``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from omasgan.errors import InvalidInputError
from omasgan.nets.boundary import LatentShiftGenerator
from omasgan.nets.conv import ConvCritic, ConvGenerator
from omasgan.nets.heads import CriticFeatureDetector, SampleHeadDetector, StandardisedInput
from omasgan.nets.mlp import MLPCritic, MLPGenerator
from omasgan.nets.tuned import TunedFeatureDetector

if TYPE_CHECKING:
    from omasgan.config import OMASGANConfig

__all__ = [
    "NETWORK_NAMES",
    "boundary_network",
    "build_nets",
    "config_nets",
    "detector_network",
    "networks_for_reload",
]

# The trained networks of a run, in the order a run produces them.
NETWORK_NAMES = (
    "generator",
    "critic",
    "boundary",
    "boundary_critic",
    "retrained_generator",
    "retrain_critic",
    "detector",
)


def build_nets(
    input_shape: tuple[int, ...], latent_dim: int, width: int, spectral_norm: bool
) -> tuple[nn.Module, nn.Module, nn.Module]:
    """Generator, critic and pixel-space detector J for data of per-sample shape ``input_shape``.

    (d,) vectors get MLPs; (c, h, w) images with h = w in {28, 32} get the convolutional nets.
    J shares the critic's architecture (one logit), without spectral norm.
    """
    if len(input_shape) == 1:
        dim = input_shape[0]
        return (
            MLPGenerator(latent_dim, dim, hidden=width),
            MLPCritic(dim, hidden=width, spectral_norm=spectral_norm),
            MLPCritic(dim, hidden=width),
        )
    channels, height, width_px = input_shape
    if height != width_px:
        raise InvalidInputError(
            f"the built-in convolutional nets take square images, got {height}x{width_px}: crop or resize them, "
            "flatten them to vectors, or pass your own networks (OMASGAN(modules=...))."
        )
    return (
        ConvGenerator(latent_dim, channels, height, width=width),
        ConvCritic(channels, height, width=width, spectral_norm=spectral_norm),
        ConvCritic(channels, height, width=width, spectral_norm=False),
    )


def config_nets(config: OMASGANConfig, input_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module, nn.Module]:
    """``build_nets`` with the configuration's latent size, width and spectral norm."""
    return build_nets(tuple(input_shape), config.latent_dim, config.width, config.spectral_norm)


def detector_network(
    critic: nn.Module, pixel_detector: nn.Module, config: OMASGANConfig, input_shape: tuple[int, ...]
) -> nn.Module:
    """J as configured: ``pixel_detector`` on the samples (detector.input_space="pixels", head "mlp"), a
    distance-aware head on the samples (other heads), a head on ``critic``'s features, or a neighbour head
    on the features of a copy of ``critic`` that J's training fine-tunes ("tuned_features"); any of them
    behind per-sample standardisation if detector.input_norm says so."""
    cfg = config.detector
    detector = pixel_detector
    if cfg.input_space == "pixels" and cfg.head != "mlp":
        detector = SampleHeadDetector(tuple(input_shape), cfg.head, cfg.head_size, cfg.feature_rank, cfg.local_k)
    elif cfg.input_space == "critic_features":
        detector = CriticFeatureDetector.around(
            critic, tuple(input_shape), cfg.head, cfg.head_size, cfg.feature_rank, cfg.local_k
        )
    elif cfg.input_space == "tuned_features":
        detector = TunedFeatureDetector.around(critic, tuple(input_shape), cfg.head_size, cfg.feature_rank, cfg.local_k)
    return StandardisedInput(detector) if cfg.input_norm == "per_sample" else detector


def boundary_network(generator: nn.Module, boundary_space: str, latent_dim: int) -> nn.Module:
    """B's network for ``task2.boundary_space``: ``generator`` itself ("weights": B is trained as a copy of G)
    or wrapped in a latent shift ("latent", "latent_shell"). Task 2 trains it; reloading a run rebuilds it."""
    if boundary_space == "weights":
        return generator
    return LatentShiftGenerator(generator, latent_dim, keep_norm=boundary_space == "latent_shell")


def networks_for_reload(config: OMASGANConfig, input_shape: tuple[int, ...]) -> dict[str, nn.Module]:
    """Untrained built-in networks shaped like a trained run's, one per ``NETWORK_NAMES``, to load its state
    dicts into. J's feature head gets its own critic copy, filled from J's state."""
    def fresh(index: int) -> nn.Module:  # 0: a generator, 1: a critic
        return config_nets(config, input_shape)[index]

    generator, critic, pixel_detector = config_nets(config, input_shape)
    return {
        "generator": generator,
        "critic": critic,
        "boundary": boundary_network(fresh(0), config.task2.boundary_space, config.latent_dim),
        "boundary_critic": fresh(1),
        "retrained_generator": fresh(0),
        "retrain_critic": fresh(1),
        "detector": detector_network(fresh(1), pixel_detector, config, input_shape),
    }
