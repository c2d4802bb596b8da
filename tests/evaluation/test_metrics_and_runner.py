"""Metrics against scikit-learn on known inputs, and a one-run evaluation end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from omasgan.evaluation import detection_metrics, evaluate


def test_detection_metrics_match_scikit_learn_and_use_the_validation_threshold():
    labels = np.array([0, 0, 0, 1, 1, 0, 1, 0])
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.7, 0.2, 0.3, 0.05])
    validation = np.linspace(0.0, 0.5, 101)  # 95th percentile = 0.475
    m = detection_metrics(scores, labels, validation)
    assert m["auroc"] == pytest.approx(roc_auc_score(labels, scores))
    assert m["auprc"] == pytest.approx(average_precision_score(labels, scores))
    assert m["threshold"] == pytest.approx(0.475)
    # flagged: 0.8 and 0.7 (both anomalies); missed: 0.3 -> precision 1, recall 2/3
    assert m["f1"] == pytest.approx(0.8)
    assert "validation_auroc" not in m
    anomalies = np.array([0.4525, 0.6, 0.9])  # 0.4525 ranks below 10 validation values (0.455 ... 0.5)
    m = detection_metrics(scores, labels, validation, anomalies)
    assert m["validation_auroc"] == pytest.approx(roc_auc_score(np.r_[np.zeros(101), np.ones(3)],
                                                                 np.r_[validation, anomalies]))
    assert m["validation_auroc"] == pytest.approx(1 - 10 / (3 * 101))
    assert m["auroc"] == pytest.approx(roc_auc_score(labels, scores))  # the test AUROC is unchanged


def test_evaluate_runs_one_class_end_to_end_and_resumes(tmp_path, data_dir, monkeypatch):
    import omasgan.evaluation.baselines as baselines

    monkeypatch.setattr(baselines, "SVM_MAX_TRAIN", 500)
    monkeypatch.setattr(baselines, "LOF_MAX_TRAIN", 2000)
    tiny = {"task1.steps": 20, "task2.steps": 5, "task3.steps": 5, "detector.steps": 20, "task2.pool_size": 128}
    out = tmp_path / "eval"
    evaluate("cifar10", "loo", [3], [0], out=out, data_dir=str(data_dir), overrides=tiny, device="cpu", verbose=0)
    run = json.loads((out / "runs" / "cifar10-loo-3_seed0.json").read_text())
    assert set(run["methods"]) == {"detector", "task3_critic", "task1_critic", "feature_knn", "fused"}
    # Issue-7 diagnostics: correlations with image statistics, Task-2 distances, J's B-term activity.
    assert set(run["spearman_with_contrast"]) == set(run["methods"])
    # Every score also has a validation AUROC (held-out normals vs train-split anomalies).
    assert all(0.0 <= m["validation_auroc"] <= 1.0 for m in run["methods"].values())
    assert {"boundary_nn_data", "generator_nn_data", "boundary_diversity"} <= set(run["task2_last"])
    assert 0.0 <= run["detector_last"]["detector_boundary_missed"] <= 1.0
    assert run["n_test"] == 1000 and "first 1000" in run["subset"]
    baselines_result = json.loads((out / "baselines" / "cifar10-loo-3.json").read_text())
    assert {"knn5", "isolation_forest", "one_class_svm", "lof", "less_ink"} <= set(baselines_result)
    assert "validation_auroc" in baselines_result["knn5"]
    table = (out / "results.md").read_text()
    assert "OMASGAN J" in table and "knn5" in table and "**Subset:**" in table
    assert "J + kNN-1 in D's features" in table and "Spearman ρ with contrast" in table
    assert (out / "figures" / "cifar10-loo-3_seed0_roc.png").exists()
    assert (out / "figures" / "cifar10-loo-3_seed0_samples.png").exists()
    assert len((out / "results.csv").read_text().splitlines()) > 10
    assert json.loads((out / "fits" / run["fit"] / "state.json").read_text())["completed"][-1] == "detector"
    before = (out / "runs" / "cifar10-loo-3_seed0.json").stat().st_mtime_ns
    evaluate("cifar10", "loo", [3], [0], out=out, data_dir=str(data_dir), overrides=tiny, device="cpu", verbose=0)
    assert (out / "runs" / "cifar10-loo-3_seed0.json").stat().st_mtime_ns == before  # finished runs are skipped


def test_feature_baselines_are_knn1_and_lof_in_the_critics_features():
    from sklearn.neighbors import LocalOutlierFactor

    from omasgan.data.protocols import Split
    from omasgan.estimator import OMASGANDetector
    from omasgan.evaluation.runner import feature_baseline_metrics
    from omasgan.scoring import critic_features

    rng = np.random.default_rng(0)
    train, validation = rng.normal(size=(200, 6)), rng.normal(size=(40, 6))
    test = np.r_[rng.normal(size=(30, 6)), rng.normal(3.0, 1.0, size=(30, 6))]
    labels = np.r_[np.zeros(30), np.ones(30)]
    split = Split("toy", train, validation, test, labels, "toy", validation_anomalies=rng.normal(3.0, 1.0, (20, 6)))
    tiny = {"task1.steps": 20, "task2.steps": 5, "task3.steps": 5, "detector.steps": 5}
    models = OMASGANDetector(config=tiny, random_state=0, device="cpu", verbose=0).fit(train).models_
    found = feature_baseline_metrics(models, split)
    bank, queries = critic_features(models, train), critic_features(models, test)
    nearest = torch.cdist(queries.double(), bank.double()).min(1).values.numpy()
    assert found["feature_knn1"]["auroc"] == pytest.approx(roc_auc_score(labels, nearest), abs=1e-9)
    lof = LocalOutlierFactor(n_neighbors=20, novelty=True).fit(bank.numpy())
    assert found["feature_lof"]["auroc"] == pytest.approx(roc_auc_score(labels, -lof.score_samples(queries.numpy())))
    assert {"validation_auroc", "spearman_with_ink"} <= set(found["feature_lof"])


def test_ood_targets_of_one_dataset_share_one_fit_and_loo_classes_do_not(tmp_path, data_dir):
    from omasgan.data.protocols import make_split
    from omasgan.evaluation.runner import _fit_dir

    def fit_dir(protocol, target, **kwargs):
        split = make_split("mnist", protocol, target, data_dir=str(data_dir))
        return _fit_dir(split, kwargs.get("seed", 0), kwargs.get("preset", "quick"), kwargs.get("overrides"), tmp_path)

    shared = fit_dir("ood", "fashion-mnist")
    assert fit_dir("ood", "kmnist") == shared
    assert fit_dir("ood", "kmnist", seed=1) != shared
    assert fit_dir("ood", "kmnist", overrides={"task1.steps": 5}) != shared
    assert fit_dir("ood", "kmnist", preset="paper") != shared
    assert fit_dir("loo", 0) != fit_dir("loo", 1)


def test_group_histograms_draws_one_panel_per_entry_whatever_the_group_sizes(tmp_path):
    import matplotlib.image

    from omasgan.plots import group_histograms

    rng = np.random.default_rng(0)
    panels = {
        f"class {c}": {"normal": rng.normal(0, 1, 500), "anomaly": rng.normal(2, 1, 37), "B": rng.normal(4, 1, 5)}
        for c in (1, 9)
    }
    one = matplotlib.image.imread(group_histograms({"class 1": panels["class 1"]}, tmp_path / "one.png"))
    two = matplotlib.image.imread(group_histograms(panels, tmp_path / "two.png", clip=0.5, xlabel="distance"))
    assert two.shape[1] == 2 * one.shape[1]  # 4 inches of width per panel
    assert two.shape[0] == one.shape[0]
