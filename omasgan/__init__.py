"""omasgan: anomaly detection with strong negatives on the boundary of the data distribution."""

__version__ = "0.1.0"

from omasgan.divergences.hookspecs import hookimpl  # noqa: E402  plugins write `@omasgan.hookimpl`

__all__ = ["__version__", "hookimpl"]
