"""OMASGANDetector: scikit-learn's estimator checks, score invariants, bad input, save/load."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import check_estimator

from omasgan import OMASGANDetector
from omasgan.errors import CheckpointError

TINY = {"task1.steps": 10, "task2.steps": 4, "task3.steps": 4, "detector.steps": 10, "task2.pool_size": 64,
        "task1.batch_size": 32, "task2.batch_size": 16, "task3.batch_size": 32, "detector.batch_size": 32}


def tiny_detector(**params) -> OMASGANDetector:
    return OMASGANDetector(config=TINY, random_state=0, device="cpu", **params)


@pytest.fixture(scope="module")
def fitted():
    X = np.random.default_rng(0).normal(size=(300, 3)).astype(np.float32)
    return X, tiny_detector(contamination=0.1).fit(X)


def test_scikit_learn_estimator_checks_pass():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(tiny_detector(), expected_failed_checks=OMASGANDetector.expected_failed_checks,
                                  on_fail=None)
    failed = [r for r in results if r["status"] == "failed"]
    assert not failed, [(r["check_name"], str(r["exception"])[:300]) for r in failed]
    passed = [r["check_name"] for r in results if r["status"] == "passed"]
    assert len(passed) >= 40, passed


def test_constructor_stores_parameters_and_clone_round_trips():
    det = OMASGANDetector(preset="paper", config={"task2.mu": 1.0}, contamination=0.05, random_state=3)
    params = det.get_params()
    assert params["preset"] == "paper" and params["config"] == {"task2.mu": 1.0} and params["device"] == "auto"
    assert clone(det).get_params() == params


def test_score_directions_and_offset(fitted):
    X, det = fitted
    scores = det.score_samples(X)
    assert np.allclose(scores, det.decision_function(X) + det.offset_)
    assert np.allclose(det.anomaly_score(X), -scores)
    assert set(np.unique(det.predict(X))) <= {-1, 1}
    # contamination=0.1: the offset is the 10th percentile of the scores of training rows J does not
    # store, so about a tenth of new normal rows are outliers.
    fresh = np.random.default_rng(5).normal(size=(3000, 3)).astype(np.float32)
    assert abs(np.mean(det.predict(fresh) == -1) - 0.1) < 0.06
    assert isinstance(scores, np.ndarray) and scores.dtype == np.float64


def test_contamination_auto_puts_the_offset_at_j_boundary():
    X = np.random.default_rng(1).normal(size=(100, 2)).astype(np.float32)
    det = tiny_detector().fit(X)
    assert det.offset_ == 0.0
    assert np.array_equal(det.predict(X) == -1, det.anomaly_score(X) > 0)


def test_accepts_torch_and_images():
    images = torch.rand(40, 28, 28) * 2 - 1
    det = tiny_detector().fit(images)
    assert det.input_shape_ == (1, 28, 28)
    assert det.anomaly_score(images[:5]).shape == (5,)
    assert det.anomaly_score(images[:5].numpy().reshape(5, 1, 28, 28)).shape == (5,)
    assert det.boundary_samples(3).shape == (3, 1, 28, 28)
    assert det.device_ == torch.device("cpu")


@pytest.mark.parametrize(
    ("X", "match"),
    [
        (np.array([[0.0, np.nan], [1.0, 2.0], [3.0, 4.0]]), "NaN"),
        (np.array([[0.0, np.inf], [1.0, 2.0], [3.0, 4.0]]), "infinity"),
        (np.zeros(10), "Expected 2D array"),
        (np.zeros((1, 3)), "minimum of 2"),
        (np.zeros((4, 2, 2, 2, 2)), "must be \\(n, d\\) vectors"),
    ],
)
def test_bad_training_input_raises_value_error(X, match):
    with pytest.raises(ValueError, match=match):
        tiny_detector().fit(X)


def test_scoring_checks_fitting_and_feature_count(fitted):
    X, det = fitted
    with pytest.raises(NotFittedError):
        tiny_detector().score_samples(X)
    with pytest.raises(ValueError, match="features"):
        det.score_samples(X[:, :2])
    with pytest.raises(ValueError, match="NaN"):
        det.anomaly_score(np.full((2, 3), np.nan))


def test_bad_parameters_are_reported_at_fit():
    X = np.zeros((10, 2), np.float32)
    with pytest.raises(ValueError, match="'contamination' parameter of OMASGANDetector must be"):
        OMASGANDetector(contamination=0.7).fit(X)
    with pytest.raises(KeyError, match="unknown divergence"):
        OMASGANDetector(divergence="klwgn", config=TINY, device="cpu").fit(X)


def test_any_registered_divergence_trains():
    X = np.random.default_rng(2).normal(size=(64, 2)).astype(np.float32)
    det = OMASGANDetector(divergence="wasserstein", divergence_params={"gradient_penalty": 5.0}, config=TINY,
                          random_state=0, device="cpu").fit(X)
    assert det.config_.divergence == "wasserstein" and det.config_.divergence_params == {"gradient_penalty": 5.0}
    assert np.isfinite(det.score_samples(X)).all()


def test_save_load_reproduces_scores_exactly(fitted, tmp_path):
    X, det = fitted
    det.save(tmp_path / "model")
    loaded = OMASGANDetector.load(tmp_path / "model", map_location="cpu")
    assert np.array_equal(loaded.score_samples(X), det.score_samples(X))
    assert np.array_equal(loaded.predict(X), det.predict(X))
    assert loaded.get_params() == det.get_params()
    with pytest.raises(CheckpointError):
        OMASGANDetector.load(tmp_path / "missing")


def test_scores_are_subset_invariant_to_float32_rounding(fitted):
    X, det = fitted
    whole = det.decision_function(X)
    for part in (slice(0, 1), slice(3, 23), slice(100, 300)):
        np.testing.assert_allclose(det.decision_function(X[part]), whole[part], rtol=1e-5, atol=1e-5)


def test_one_configuration_path_refuses_a_setting_given_twice():
    from omasgan.config import OMASGANConfig, resolve_config, resolve_seed
    from omasgan.errors import InvalidInputError

    assert resolve_seed(3) == 3 and resolve_seed(np.int64(7)) == 7
    assert resolve_seed(np.random.RandomState(0)) == resolve_seed(np.random.RandomState(0))
    config = resolve_config("quick", "vector", {"task2.mu": 2.0}, seed=4, divergence="js")
    assert (config.seed, config.task2.mu, config.divergence, config.divergence_params) == (4, 2.0, "js", {})
    with pytest.raises(InvalidInputError, match="random_state"):
        resolve_config("quick", "vector", {"seed": 1}, seed=4)
    with pytest.raises(InvalidInputError, match="given both"):
        resolve_config("quick", "vector", {"divergence": "kl"}, seed=4, divergence="js")
    whole = OMASGANConfig.preset("paper", "vector").with_overrides({"seed": 11})
    assert resolve_config("quick", "image", whole, seed=11) == whole  # a whole configuration: preset unused


def test_a_whole_configuration_keeps_its_seed_and_survives_save_and_load(tmp_path):
    from omasgan.config import OMASGANConfig

    whole = OMASGANConfig.preset("quick", "vector").with_overrides({**TINY, "seed": 11})
    X = np.random.default_rng(2).normal(size=(120, 2)).astype(np.float32)
    det = OMASGANDetector(config=whole, device="cpu").fit(X)
    assert det.config_ == whole and det.config_.seed == 11
    assert OMASGANDetector(config=whole, random_state=5, device="cpu").fit(X).config_.seed == 5
    det.save(tmp_path / "model")
    loaded = OMASGANDetector.load(tmp_path / "model")
    assert loaded.get_params()["config"] == whole
    np.testing.assert_array_equal(loaded.anomaly_score(X), det.anomaly_score(X))
