"""The `omasgan` command: demo, config, fit."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess

import numpy as np

from omasgan import OMASGANDetector
from omasgan.cli import main
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
    """`omasgan ARGS` run in this process (a subprocess would import torch again, ~3 s a call), with its
    exit code and output as a subprocess would give them."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(arg) for arg in args])
        except SystemExit as exit_:  # argparse's usage errors
            code = exit_.code if isinstance(exit_.code, int) else 2
    return subprocess.CompletedProcess(["omasgan", *args], code, out.getvalue(), err.getvalue())


def test_cli_config_prints_a_preset_with_overrides():
    result = _omasgan("config", "--kind", "vector", "--set", "task2.mu=1.5", "--set", "seed=7")
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert config["task2"]["mu"] == 1.5 and config["seed"] == 7 and config["task2"]["pool_size"] == 2048
    bad = _omasgan("config", "--set", "task2.muu=1")
    assert bad.returncode == 2 and "unknown configuration field 'task2.muu'" in bad.stderr
    image = json.loads(_omasgan("config").stdout)["detector"]
    paper = json.loads(_omasgan("config", "--preset", "paper-quick", "--set", "detector.steps=9").stdout)["detector"]
    assert (image["input_space"], image["head"]) == ("critic_features", "neighbours")
    assert (paper["input_space"], paper["head"], paper["steps"]) == ("pixels", "mlp", 9)
    form = json.loads(_omasgan("config", "--set", "divergence_params.form=detached").stdout)["divergence_params"]
    assert form == {"temperature": 5.0, "form": "detached"}


def test_cli_config_describe_lists_every_field_with_each_preset():
    from omasgan.config import _rows

    result = _omasgan("config", "--describe")
    assert result.returncode == 0, result.stderr
    for dotted, _, _ in _rows():
        assert f"  {dotted} = " in result.stdout, dotted
    assert "presets (image / vector): quick 0.2 / 1.0; tuned 0.2 / 1.0; paper 0.2 / 8.0" in result.stdout


def test_configuration_reference_in_docs_is_current():
    from pathlib import Path

    from omasgan.config import describe

    reference = Path(__file__).parents[2] / "docs" / "configuration.md"
    assert reference.read_text() == describe(markdown=True), (
        "docs/configuration.md is out of date: python -m omasgan config --describe --markdown > docs/configuration.md"
    )


def test_cli_fit_seed_and_estimator_random_state_train_the_same_run(tmp_path):
    X = np.random.default_rng(1).normal(size=(120, 2)).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    sets = {"task1.steps": 20, "task2.steps": 5, "task3.steps": 5, "detector.steps": 10, "task2.pool_size": 64}
    args = [arg for key, value in sets.items() for arg in ("--set", f"{key}={value}")]
    result = _omasgan("fit", "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "model"), "--quiet",
                      "--seed", "3", "--device", "cpu", *args)
    assert result.returncode == 0, result.stderr
    from_cli = OMASGANDetector.load(tmp_path / "model")
    direct = OMASGANDetector(config=sets, random_state=3, device="cpu").fit(X)
    assert from_cli.config_ == direct.config_ and direct.config_.seed == 3
    np.testing.assert_array_equal(from_cli.anomaly_score(X), direct.anomaly_score(X))
    other = OMASGANDetector(config=sets, random_state=4, device="cpu").fit(X)
    assert not np.array_equal(other.anomaly_score(X), direct.anomaly_score(X))
    refused = _omasgan("fit", "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "m2"), "--set", "seed=3")
    assert refused.returncode == 2 and "random_state" in refused.stderr


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
