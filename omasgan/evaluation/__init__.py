"""Evaluation: metrics, baselines, the protocol runner and figures."""

from omasgan.evaluation.metrics import detection_metrics, spearman
from omasgan.plots import boundary_figure

__all__ = ["boundary_figure", "detection_metrics", "evaluate", "spearman", "summarise"]


def __getattr__(name):
    # The runner imports the estimator (scikit-learn, the networks); load it on first use.
    if name in ("evaluate", "summarise"):
        from omasgan.evaluation import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'omasgan.evaluation' has no attribute {name!r}")
