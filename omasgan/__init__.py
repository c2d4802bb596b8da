"""omasgan: anomaly detection with strong negatives on the boundary of the data distribution."""

__version__ = "0.1.0"

from omasgan.build_notice import warn_if_extension_missing  # noqa: E402
from omasgan.divergences.hookspecs import hookimpl  # noqa: E402  plugins write `@omasgan.hookimpl`

warn_if_extension_missing()

__all__ = ["OMASGAN", "OMASGANConfig", "OMASGANDetector", "__version__", "hookimpl"]


def __getattr__(name):
    # The estimator and pipeline pull in scikit-learn and the networks; load them on first use so that
    # `import omasgan` stays light for plugins and the operators.
    if name == "OMASGANDetector":
        from omasgan.estimator import OMASGANDetector

        return OMASGANDetector
    if name == "OMASGAN":
        from omasgan.pipeline import OMASGAN

        return OMASGAN
    if name == "OMASGANConfig":
        from omasgan.config import OMASGANConfig

        return OMASGANConfig
    raise AttributeError(f"module 'omasgan' has no attribute {name!r}")
