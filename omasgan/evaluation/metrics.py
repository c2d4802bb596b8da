"""Detection metrics. Scores are anomaly scores: higher = more anomalous; labels are 1 for anomalies."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

__all__ = ["detection_metrics", "spearman"]


def detection_metrics(
    test_scores: np.ndarray,
    test_labels: np.ndarray,
    validation_scores: np.ndarray,
    validation_anomaly_scores: np.ndarray | None = None,
    *,
    normal_quantile: float = 0.95,
) -> dict[str, float]:
    """AUROC, AUPRC (anomalies positive) and F1 at a threshold chosen on normal validation data only:
    the ``normal_quantile`` quantile of the validation scores (5% false alarms on held-out normals).

    With ``validation_anomaly_scores`` (anomalies from the train split) also ``validation_auroc``: normal
    validation vs those anomalies, the number configurations are chosen by (never the test AUROC)."""
    threshold = float(np.quantile(validation_scores, normal_quantile))
    metrics = {
        "auroc": float(roc_auc_score(test_labels, test_scores)),
        "auprc": float(average_precision_score(test_labels, test_scores)),
        "f1": float(f1_score(test_labels, test_scores > threshold)),
        "threshold": threshold,
    }
    if validation_anomaly_scores is not None:
        labels = np.r_[np.zeros(len(validation_scores)), np.ones(len(validation_anomaly_scores))]
        metrics["validation_auroc"] = float(roc_auc_score(labels, np.r_[validation_scores, validation_anomaly_scores]))
    return metrics


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (used to see whether a score just tracks an image statistic)."""
    return float(spearmanr(a, b).statistic)
