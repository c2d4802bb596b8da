"""Exceptions users can cause, all under :class:`OmasganError`.

Each concrete error also subclasses the builtin a caller would naturally catch (``KeyError`` for an
unknown name, ``ValueError`` for bad input, ``FileNotFoundError`` for missing data), so code written
against the builtins keeps working.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "DataNotFoundError",
    "DivergenceNameClashError",
    "InvalidInputError",
    "InvalidInputTypeError",
    "NonFiniteLossError",
    "OmasganError",
    "PluginLoadError",
    "UnknownDivergenceError",
]


class OmasganError(Exception):
    """Base class of every error omasgan raises on purpose."""


class InvalidInputError(OmasganError, ValueError):
    """An argument has the wrong shape, dtype, device or values."""


class InvalidInputTypeError(InvalidInputError, TypeError):
    """Input of a kind omasgan cannot take at all (values that are not numbers); also a ``TypeError``, as
    numpy and scikit-learn raise for it."""


class UnknownDivergenceError(OmasganError, KeyError):
    """No divergence is registered under the requested name."""

    def __str__(self) -> str:  # KeyError would show the message with quotes around it
        return str(self.args[0]) if self.args else ""


class DivergenceNameClashError(OmasganError, ValueError):
    """Two providers registered a divergence under the same name."""


class PluginLoadError(OmasganError, ImportError):
    """A divergence plugin failed to load or to register."""


class DataNotFoundError(OmasganError, FileNotFoundError):
    """A dataset file is missing or does not match its checksum."""


class CheckpointError(OmasganError, ValueError):
    """A checkpoint or run directory is missing, incomplete or corrupt."""


class NonFiniteLossError(OmasganError, FloatingPointError):
    """A training loss became NaN or infinite."""
