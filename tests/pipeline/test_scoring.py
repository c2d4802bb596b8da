"""Streaming scoring: memory-mapped input scored in batches equals scoring at once, and never loads it whole."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from omasgan.cli import main
from omasgan.data import bimodal
from omasgan.errors import CheckpointError
from omasgan.estimator import OMASGANDetector

TINY = {"task1.steps": 30, "task2.steps": 10, "task3.steps": 10, "detector.steps": 30, "log_every": 10}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A tiny detector on 784-dimensional vectors, saved, with its run directory."""
    root = tmp_path_factory.mktemp("scoring")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 784)).astype(np.float32)
    detector = OMASGANDetector(config=TINY, random_state=0, device="cpu", run_dir=root / "run").fit(X)
    detector.save(root / "model")
    return detector, root


def _memmap(path, rows: int, seed: int = 1) -> np.memmap:
    data = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, 784))
    rng = np.random.default_rng(seed)
    for start in range(0, rows, 5000):
        stop = min(start + 5000, rows)
        data[start:stop] = rng.normal(size=(stop - start, 784))
    data.flush()
    del data
    return np.load(path, mmap_mode="r")


def test_memmap_in_batches_equals_scoring_at_once(fitted, tmp_path):
    detector, _ = fitted
    X = _memmap(tmp_path / "x.npy", 1000)
    at_once = detector.set_params(batch_size=4096).anomaly_score(np.array(X))
    batched = detector.set_params(batch_size=64).anomaly_score(X)
    detector.set_params(batch_size=4096)
    assert batched.shape == (1000,) and batched.dtype == np.float64
    # Equal up to float32 GEMM rounding, which depends on the batch's row count.
    np.testing.assert_allclose(batched, at_once, rtol=1e-5, atol=1e-5)


def test_cli_score_streams_a_large_memmap(fitted, tmp_path):
    """50 000 x 784 float32 (157 MB): the numpy memory scoring allocates stays at a few batches."""
    detector, root = fitted
    X = _memmap(tmp_path / "big.npy", 50_000)
    tracemalloc.start()
    try:
        code = main(["score", "--run", str(root / "model"), "--input", str(tmp_path / "big.npy"),
                     "--output", str(tmp_path / "scores.npy"), "--batch-size", "2048", "--quiet"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert code == 0
    assert peak < 40e6, f"peak numpy allocation {peak / 1e6:.0f} MB"  # X alone would be 157 MB
    scores = np.load(tmp_path / "scores.npy")
    assert scores.shape == (50_000,)
    np.testing.assert_allclose(scores[:3000], detector.anomaly_score(np.array(X[:3000])), rtol=1e-5, atol=1e-5)
    assert not (tmp_path / "scores.npy.partial").exists()


def test_cli_score_reads_a_run_directory_and_other_scores(fitted, tmp_path, capsys):
    detector, root = fitted
    X = bimodal(10, random_state=0)  # wrong width: a clear error, no output file
    np.save(tmp_path / "bad.npy", X)
    assert main(["score", "--run", str(root / "run"), "--input", str(tmp_path / "bad.npy"),
                 "--output", str(tmp_path / "out.npy"), "--quiet"]) == 2
    assert "trained on (784,)" in capsys.readouterr().err
    assert not (tmp_path / "out.npy").exists()

    good = np.random.default_rng(3).normal(size=(200, 784)).astype(np.float32)
    np.save(tmp_path / "good.npy", good)
    for which in ("detector", "task3_critic"):
        assert main(["score", "--run", str(root / "run"), "--input", str(tmp_path / "good.npy"),
                     "--output", str(tmp_path / f"{which}.npy"), "--which", which, "--quiet"]) == 0
        np.testing.assert_allclose(
            np.load(tmp_path / f"{which}.npy"), detector.ablation_scores(good)[which], rtol=1e-5, atol=1e-5
        )


def test_score_refuses_a_folder_without_a_model(tmp_path):
    from omasgan.scoring import load_models

    with pytest.raises(CheckpointError, match="neither a saved detector"):
        load_models(tmp_path, "cpu")
