"""Classical baselines on identical splits and the same [-1, 1] pixels. Each returns anomaly scores
(higher = more anomalous) for the test and validation sets."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import LocalOutlierFactor
from sklearn.svm import OneClassSVM

from omasgan import ops

__all__ = ["BASELINES", "STATISTICS", "run_baselines"]

# One-class SVM and LOF scale badly with the training size; they are fitted on a seeded subsample.
SVM_MAX_TRAIN = 5000
LOF_MAX_TRAIN = 20000


def _flat(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1).astype(np.float32)


def _subsample(x: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    return x if len(x) <= n else x[np.random.default_rng(seed).choice(len(x), n, replace=False)]


def knn(train, *queries, k: int = 5):
    """Mean Euclidean distance to the k nearest training points (DESIGN §8's bar), exact (ops.knn)."""
    stored = torch.from_numpy(_flat(train))
    count = min(k, len(stored))
    return [ops.knn(torch.from_numpy(_flat(q)), stored, count)[0].mean(1).double().numpy() for q in queries]


def isolation_forest(train, *queries):
    model = IsolationForest(n_estimators=200, random_state=0).fit(_flat(train))
    return [-model.score_samples(_flat(q)) for q in queries]


def one_class_svm(train, *queries):
    model = OneClassSVM(gamma="scale", nu=0.1).fit(_subsample(_flat(train), SVM_MAX_TRAIN))
    return [-model.score_samples(_flat(q)) for q in queries]


def local_outlier_factor(train, *queries):
    model = LocalOutlierFactor(n_neighbors=20, novelty=True).fit(_subsample(_flat(train), LOF_MAX_TRAIN))
    return [-model.score_samples(_flat(q)) for q in queries]


BASELINES: dict[str, Callable] = {
    "knn5": knn,
    "isolation_forest": isolation_forest,
    "one_class_svm": one_class_svm,
    "lof": local_outlier_factor,
}

# Image statistics as scores, in both directions: a detector that merely tracks "ink" matches one of these.
STATISTICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "more_ink": lambda x: _flat(x).mean(1),
    "less_ink": lambda x: -_flat(x).mean(1),
    "more_contrast": lambda x: _flat(x).std(1),
    "less_contrast": lambda x: -_flat(x).std(1),
}


def run_baselines(
    train: np.ndarray, *queries: np.ndarray, names: list[str] | None = None
) -> dict[str, tuple[np.ndarray, ...]]:
    """{name: one score array per query array (e.g. test, validation)} for the chosen baselines (all by
    default), plus PyOD's ECOD when PyOD is installed."""
    out = {}
    for name in names or list(BASELINES):
        out[name] = tuple(np.asarray(s) for s in BASELINES[name](train, *queries))
    try:
        from pyod.models.ecod import ECOD  # optional
    except ImportError:
        return out
    model = ECOD().fit(_flat(train))
    out["pyod_ecod"] = tuple(model.decision_function(_flat(q)) for q in queries)
    return out
