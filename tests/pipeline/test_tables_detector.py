"""The estimator on tables: its scaler, its sizes from (n, d), J's distance-aware head, thresholds."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from omasgan import OMASGANDetector
from omasgan.cli import main
from omasgan.config import table_sizes
from omasgan.errors import InvalidInputError

TINY = {"task1.steps": 30, "task2.steps": 5, "task3.steps": 5, "detector.steps": 20}


def _fit(X, **kwargs) -> OMASGANDetector:
    return OMASGANDetector(config=dict(TINY), random_state=0, device="cpu", **kwargs).fit(X)


def _rows(n: int, d: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


def test_sizes_follow_the_documented_rules():
    assert table_sizes(4000, 2) == {
        "latent_dim": 8,
        "width": 64,
        "task1.batch_size": 256,
        "task2.batch_size": 128,
        "task3.batch_size": 256,
        "detector.batch_size": 256,
    }
    wide = table_sizes(10**6, 2000)
    assert wide["latent_dim"] == 32 and wide["width"] == 256 and wide["task1.batch_size"] == 256
    assert table_sizes(50, 20)["task1.batch_size"] == 50 and table_sizes(50, 20)["width"] == 64
    assert table_sizes(50, 40)["width"] == 128
    with pytest.raises(InvalidInputError):
        table_sizes(1, 3)


def test_the_estimator_sizes_a_table_and_user_overrides_win():
    X = _rows(60, 40)
    detector = _fit(X)
    assert detector.config_.input_scaling == "standard" and detector.config_.detector.head == "neighbours"
    assert detector.config_.width == 128 and detector.config_.latent_dim == 32
    assert detector.config_.task1.batch_size == 60
    own = OMASGANDetector(config={**TINY, "width": 32}, random_state=0, device="cpu").fit(X)
    assert own.config_.width == 32


def test_scores_do_not_depend_on_the_units_of_the_columns():
    X = np.round(_rows(300, 5) * 8) / 8  # on a grid, so unit changes below are exact in float32
    test = np.round(_rows(50, 5, seed=1) * 8) / 8
    units, offsets = np.array([1.0, 1024.0, 1 / 64, 4.0, 1.0]), np.array([0.0, 4096.0, -3.0, 0.0, 512.0])
    reference = _fit(X).anomaly_score(test)
    changed = _fit(X * units + offsets).anomaly_score(test * units + offsets)
    np.testing.assert_allclose(changed, reference, rtol=1e-4, atol=1e-4)


def test_anomalies_far_beyond_the_data_score_as_anomalies():
    """The defect of issue 16: an MLP J's logit beyond B's samples is arbitrary, so far anomalies scored as
    normal (AUROC 0.02 on annthyroid). J's distance-aware head grows with the distance from the data."""
    X, normal = _rows(400, 8), _rows(200, 8, seed=1)
    detector = _fit(X)
    for spread in (4.0, 1e3):
        anomalies = _rows(200, 8, seed=2) * spread
        scores = detector.anomaly_score(np.r_[normal, anomalies])
        assert roc_auc_score(np.r_[np.zeros(200), np.ones(200)], scores) > 0.97
    assert np.isfinite(detector.anomaly_score(np.full((1, 8), 1e30))).all()


def test_a_constant_column_is_kept_and_a_row_off_the_constant_is_anomalous():
    X = _rows(200, 4)
    X[:, 2] = 7.0
    detector = _fit(X)
    row = np.zeros((2, 4))
    row[:, 2] = [7.0, 12.0]
    on, off = detector.anomaly_score(row)
    assert off > on


def test_contamination_labels_that_share_of_new_normal_rows(tmp_path):
    X, fresh = _rows(800, 4), _rows(2000, 4, seed=1)
    detector = _fit(X, contamination=0.1)
    flagged = float(np.mean(detector.predict(fresh) == -1))
    # Thresholded on the rows J does not store: stored rows' own distance is 0 and would flag far more.
    assert 0.04 < flagged < 0.2


def test_save_load_and_streaming_scores_use_the_scaler(tmp_path):
    X = _rows(200, 3) * np.array([1.0, 100.0, 0.01]) + np.array([0.0, 5000.0, 1.0])
    test = X[:40] + 0.1
    detector = _fit(X)
    detector.save(tmp_path / "model")
    loaded = OMASGANDetector.load(tmp_path / "model")
    np.testing.assert_allclose(loaded.anomaly_score(test), detector.anomaly_score(test), rtol=1e-6, atol=1e-6)
    np.save(tmp_path / "test.npy", test.astype(np.float32))
    main(["score", "--run", str(tmp_path / "model"), "--input", str(tmp_path / "test.npy"), "--output",
          str(tmp_path / "scores.npy"), "--quiet"])
    np.testing.assert_allclose(np.load(tmp_path / "scores.npy"), detector.anomaly_score(test), rtol=1e-5, atol=1e-5)
    # B's samples come back in the data's units.
    boundary = detector.boundary_samples(500)
    assert abs(np.median(boundary[:, 1]) - 5000.0) < 300.0


def test_a_run_directory_keeps_the_scaler(tmp_path):
    X = _rows(120, 3) * 50.0 + 10.0
    detector = _fit(X, run_dir=tmp_path / "run")
    np.save(tmp_path / "x.npy", X[:20].astype(np.float32))
    main(["score", "--run", str(tmp_path / "run"), "--input", str(tmp_path / "x.npy"), "--output",
          str(tmp_path / "s.npy"), "--quiet"])
    np.testing.assert_allclose(np.load(tmp_path / "s.npy"), detector.anomaly_score(X[:20]), rtol=1e-5, atol=1e-5)


def test_fifty_rows_and_two_thousand_columns_fit():
    assert _fit(_rows(50, 6)).anomaly_score(_rows(5, 6)).shape == (5,)
    wide = _fit(_rows(80, 2000))
    assert wide.config_.width == 256 and np.isfinite(wide.anomaly_score(_rows(4, 2000))).all()


def test_training_rows_are_scored_without_themselves():
    """PyOD's decision_scores_: a stored training row's distance to itself is 0, so scoring the fitted rows
    with anomaly_score would call every stored anomaly normal; decision_scores_ leaves each row out."""
    X = np.r_[_rows(300, 4), _rows(15, 4, seed=3) * 6.0]  # 15 anomalies among the fitted rows
    labels = np.r_[np.zeros(300), np.ones(15)]
    detector = _fit(X, contamination=0.05)
    assert detector.decision_scores_.shape == (315,)
    assert roc_auc_score(labels, detector.decision_scores_) > 0.95
    assert roc_auc_score(labels, detector.decision_scores_) > roc_auc_score(labels, detector.anomaly_score(X))
    # The threshold flags the contamination share of the training rows, each scored without itself.
    assert abs(np.mean(-detector.decision_scores_ < detector.offset_) - 0.05) < 0.01
