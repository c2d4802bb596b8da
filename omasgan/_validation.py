"""Parameter constraints in scikit-learn's table form, checked at the top of ``fit``.

scikit-learn keeps its own checker private, so this is the small subset the estimator needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np

from omasgan.errors import InvalidInputError

__all__ = ["Interval", "Options", "validate_params"]


@dataclass(frozen=True)
class Options:
    values: set

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.values

    def __str__(self) -> str:
        return "a str among " + str(sorted(self.values))


@dataclass(frozen=True)
class Interval:
    kind: type
    left: float | None
    right: float | None
    closed: str = "both"  # "left", "right", "both" or "neither"

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, self.kind):
            return False
        if self.left is not None:
            if value < self.left or (value == self.left and self.closed not in ("left", "both")):
                return False
        if self.right is not None:
            if value > self.right or (value == self.right and self.closed not in ("right", "both")):
                return False
        return True

    def __str__(self) -> str:
        kind = "an int" if self.kind is Integral else "a float" if self.kind is Real else self.kind.__name__
        lo = "-inf" if self.left is None else self.left
        hi = "inf" if self.right is None else self.right
        left = "[" if self.closed in ("left", "both") else "("
        right = "]" if self.closed in ("right", "both") else ")"
        return f"{kind} in the range {left}{lo}, {hi}{right}"


def _accepts(constraint: Any, value: Any) -> bool:
    if constraint is None:
        return value is None
    if constraint == "random_state":
        return value is None or isinstance(value, (Integral, np.random.RandomState)) and not isinstance(value, bool)
    if isinstance(constraint, type):
        return isinstance(value, constraint)
    return constraint.accepts(value)


def _describe(constraint: Any) -> str:
    if constraint is None:
        return "None"
    if constraint == "random_state":
        return "an int, a numpy RandomState or None"
    if isinstance(constraint, type):
        return f"an instance of {constraint.__name__!r}"
    return str(constraint)


def validate_params(estimator: Any) -> None:
    """Check every parameter of ``estimator`` against its ``_parameter_constraints``."""
    for name, constraints in estimator._parameter_constraints.items():
        value = getattr(estimator, name)
        if not any(_accepts(c, value) for c in constraints):
            options = " or ".join(_describe(c) for c in constraints)
            raise InvalidInputError(
                f"The {name!r} parameter of {type(estimator).__name__} must be {options}. Got {value!r} instead."
            )
