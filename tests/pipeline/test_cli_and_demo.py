"""The `omasgan` command: demo, config, fit."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from omasgan import OMASGANDetector
from omasgan.demo import format_summary, run_demo

FAST = {"task1.steps": 60, "task2.steps": 20, "task3.steps": 20, "detector.steps": 40, "task2.pool_size": 256}


def test_demo_writes_figure_and_summary(tmp_path):
    summary = run_demo(tmp_path, verbose=0, device="cpu", overrides=FAST)
    assert (tmp_path / "boundary.png").stat().st_size > 10_000
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert set(saved["auroc"]) == {"task1_critic", "task3_critic", "detector"}
    assert all(0.0 <= v <= 1.0 for v in saved["auroc"].values())
    assert saved["config"]["task1"]["steps"] == 60
    assert "detector J" in format_summary(summary)


def _omasgan(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "omasgan.cli", *args], capture_output=True, text=True)


def test_cli_config_prints_a_preset_with_overrides():
    result = _omasgan("config", "--kind", "vector", "--set", "task2.mu=1.5", "--set", "seed=7")
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert config["task2"]["mu"] == 1.5 and config["seed"] == 7 and config["task2"]["pool_size"] == 4096
    bad = _omasgan("config", "--set", "task2.muu=1")
    assert bad.returncode == 2 and "unknown configuration field 'task2.muu'" in bad.stderr
    image = json.loads(_omasgan("config").stdout)["detector"]
    paper = json.loads(_omasgan("config", "--paper-recipe", "--set", "detector.steps=9").stdout)["detector"]
    assert (image["input_space"], image["head"]) == ("critic_features", "neighbours")
    assert (paper["input_space"], paper["head"], paper["steps"]) == ("pixels", "mlp", 9)
    vector = json.loads(_omasgan("config", "--kind", "vector", "--paper-recipe").stdout)["detector"]
    assert vector == json.loads(_omasgan("config", "--kind", "vector").stdout)["detector"]  # lr 1e-3 kept


def test_cli_fit_reads_a_config_file_and_saves_a_loadable_detector(tmp_path):
    X = np.random.default_rng(0).normal(size=(100, 2)).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    config = json.loads(_omasgan("config", "--kind", "vector").stdout)
    config["task1"]["steps"], config["task2"]["steps"], config["task3"]["steps"] = 20, 5, 5
    config["detector"]["steps"] = 10
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = _omasgan("fit", "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "model"), "--quiet",
                      "--config", str(tmp_path / "config.json"), "--set", "task2.nu=2.0", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    detector = OMASGANDetector.load(tmp_path / "model")
    assert detector.config_.task2.nu == 2.0 and detector.config_.task1.steps == 20
    assert detector.score_samples(X).shape == (100,)
