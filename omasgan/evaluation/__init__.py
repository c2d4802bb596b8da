"""Evaluation: figures (and, with the evaluation issue, metrics, protocols and baselines)."""

from omasgan.evaluation.plots import boundary_figure

__all__ = ["boundary_figure"]
