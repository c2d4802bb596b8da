"""End to end on 2-D data: B lands outside but near the data, J detects anomalies, runs resume exactly."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from omasgan import divergences, ops
from omasgan.checkpoint import checkpoint_paths
from omasgan.config import OMASGANConfig
from omasgan.data import bimodal, bimodal_anomalies
from omasgan.errors import CheckpointError, NonFiniteLossError
from omasgan.pipeline import OMASGAN


@pytest.fixture(scope="module")
def trained():
    """One run of the quick 2-D preset (what `omasgan demo` runs), seed 0."""
    x = torch.from_numpy(bimodal(4000, random_state=0))
    config = OMASGANConfig.preset("quick", "vector")
    pipeline = OMASGAN(config, device="cpu", verbose=0)
    return x, pipeline.fit(x), pipeline


def test_boundary_samples_lie_outside_but_near_the_data(trained):
    x, models, _ = trained
    gen = torch.Generator().manual_seed(1)
    b, g = models.sample("boundary", 2000, gen), models.sample("generator", 2000, gen)
    pool, scaled = models.sample("generator", 2048, gen), models.input_scaler
    # What the recipe sets (target_ratio 2): B's distance to G's samples over G's own, in the networks'
    # (standardised) space; 1.72-1.95 over seeds 0-3. Outside the data: 1.59-2.26 x G's distance to it.
    to_pool = [ops.min_distance(scaled(s), scaled(pool))[0].mean() for s in (b, g)]
    assert to_pool[0] > 1.5 * to_pool[1]
    d_b, d_g = ops.min_distance(b, x)[0], ops.min_distance(g, x)[0]
    assert d_b.mean() > 1.3 * d_g.mean()
    # Near: well within a mode's width (sigma = 0.5); mean 0.059-0.100, median 0.025-0.030 over seeds 0-3.
    assert 0.03 < float(d_b.mean()) < 1.0
    assert float(d_b.median()) > 0.015
    # Spread around both modes, about as widely as the data (per-axis SD 0.84-1.25 x the data's).
    assert bool((b.std(0) > 0.75 * x.std(0)).all())
    assert (b[:, 0] < 0).float().mean() > 0.2 and (b[:, 0] > 0).float().mean() > 0.2


def test_detector_separates_anomalies_better_than_the_task1_critic(trained):
    _, models, _ = trained
    normal, anomalies = bimodal(1000, random_state=11), bimodal_anomalies(1000, random_state=12)
    scores = models.scores(torch.from_numpy(np.concatenate([normal, anomalies])))
    labels = np.r_[np.zeros(1000), np.ones(1000)]
    auroc = {k: roc_auc_score(labels, v.numpy()) for k, v in scores.items()}
    assert auroc["detector"] >= 0.95, auroc
    assert auroc["detector"] > auroc["task1_critic"], auroc


def test_metrics_are_logged_per_task_with_active_terms(trained):
    _, _, pipeline = trained
    tasks = {row["task"] for row in pipeline.history}
    assert tasks == {"task1", "task2", "task3", "detector"}
    task3 = [row for row in pipeline.history if row["task"] == "task3"]
    assert all(0.0 <= row["boundary_term_active"] <= 1.0 for row in task3)
    assert all(np.isfinite(v) for row in pipeline.history for k, v in row.items() if k not in ("task", "step"))


SMALL = {"task1.steps": 120, "task2.steps": 60, "task3.steps": 60, "detector.steps": 60, "log_every": 10,
         "checkpoint_every": 20, "task2.pool_size": 512}


class _Interrupt(Exception):
    pass


def test_interrupted_run_resumes_to_the_same_result(tmp_path):
    x = torch.from_numpy(bimodal(1000, random_state=0))
    config = OMASGANConfig.preset("quick", "vector").with_overrides(SMALL)
    probe = torch.from_numpy(bimodal_anomalies(200, random_state=3))
    reference = OMASGAN(config, device="cpu", verbose=0).fit(x).scores(probe)

    def crash(task, step, metrics):
        if task == "task2" and step == 50:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        OMASGAN(config, tmp_path, device="cpu", verbose=0, callbacks=[crash]).fit(x)
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["completed"] == ["task1"]
    assert (tmp_path / "task2.partial.json").exists()  # checkpoint at step 40
    resumed = OMASGAN(config, tmp_path, device="cpu", verbose=0).fit(x).scores(probe)
    assert json.loads((tmp_path / "state.json").read_text())["completed"] == ["task1", "task2", "task3", "detector"]
    for key in reference:
        assert torch.equal(resumed[key], reference[key]), key
    assert (tmp_path / "figures" / "samples.png").stat().st_size > 10_000
    # One checkpoint per task, each its manifest and the one weights file it names; no partial left.
    tasks = ("task1", "task2", "task3", "detector")
    assert {p.name for p in tmp_path.glob("*.safetensors")} == {checkpoint_paths(tmp_path / t)[1].name for t in tasks}
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {row["task"] for row in rows} == set(tasks)
    # Task 2's step 50 was logged before the crash and again after resuming from step 40: kept once.
    logged = [(row["task"], row["step"]) for row in rows]
    assert len(logged) == len(set(logged))


def test_same_seed_same_result_and_different_seed_differs():
    x = torch.from_numpy(bimodal(500, random_state=0))
    config = OMASGANConfig.preset("quick", "vector").with_overrides({**SMALL, "task1.steps": 30})
    probe = torch.from_numpy(bimodal_anomalies(50))
    a = OMASGAN(config, device="cpu", verbose=0).fit(x).scores(probe)["detector"]
    b = OMASGAN(config, device="cpu", verbose=0).fit(x).scores(probe)["detector"]
    c = OMASGAN(config.with_overrides({"seed": 1}), device="cpu", verbose=0).fit(x).scores(probe)["detector"]
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_run_dir_with_other_config_or_data_is_refused(tmp_path):
    x = torch.from_numpy(bimodal(300, random_state=0))
    config = OMASGANConfig.preset("quick", "vector").with_overrides(
        {**SMALL, "task1.steps": 10, "task2.steps": 5, "task3.steps": 5, "detector.steps": 5})
    OMASGAN(config, tmp_path, device="cpu", verbose=0).fit(x)
    with pytest.raises(CheckpointError, match="different configuration"):
        OMASGAN(config.with_overrides({"task2.mu": 3.0}), tmp_path, device="cpu", verbose=0).fit(x)
    with pytest.raises(CheckpointError, match="different data"):
        OMASGAN(config, tmp_path, device="cpu", verbose=0).fit(x + 1)
    # Same shape and sum, other values: only the recorded sum of squares tells them apart.
    same_sum = x.clone()
    same_sum[0, 0] += 0.5
    same_sum[1, 0] -= 0.5
    with pytest.raises(CheckpointError, match="different data"):
        OMASGAN(config, tmp_path, device="cpu", verbose=0).fit(same_sum)


def test_a_second_process_on_a_run_directory_is_refused(tmp_path):
    x = torch.from_numpy(bimodal(300, random_state=0))
    config = OMASGANConfig.preset("quick", "vector").with_overrides(
        {**SMALL, "task1.steps": 10, "task2.steps": 5, "task3.steps": 5, "detector.steps": 5})
    tmp_path.mkdir(exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from omasgan.locking import DirectoryLock; "
         "lock = DirectoryLock(sys.argv[1]); lock.acquire(); print('held', flush=True); time.sleep(60)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(CheckpointError, match=rf"in use by another process \(pid {holder.pid}\)"):
            OMASGAN(config, tmp_path, device="cpu", verbose=0).fit(x)
        assert not (tmp_path / "config.json").exists()  # refused before writing anything
    finally:
        holder.kill()
        holder.wait()
    # The lock dies with its holder, and a finished run releases its own.
    OMASGAN(config, tmp_path, device="cpu", verbose=0).fit(x)
    OMASGAN(config, tmp_path, device="cpu", verbose=0).fit(x)


class _NaNAfter:
    """A KL divergence whose generator loss turns NaN after a number of calls."""

    def __init__(self, calls):
        self.calls = calls

    @divergences.hookimpl
    def omasgan_register_divergences(self, register):
        outer = self

        def factory():
            div = divergences.get("kl")
            inner = div.generator_loss

            def generator_loss(v):
                outer.calls -= 1
                loss = inner(v)
                return loss if outer.calls > 0 else loss * float("nan")

            div.generator_loss = generator_loss
            return div

        register("nan_after", factory)


def test_non_finite_loss_stops_with_task_and_step_and_keeps_last_checkpoint(tmp_path):
    pm = divergences.plugin_manager()
    pm.register(_NaNAfter(calls=35), name="nan-after-plugin")
    try:
        config = OMASGANConfig.preset("quick", "vector").with_overrides(
            {**SMALL, "divergence": "nan_after", "divergence_params": {}})
        with pytest.raises(NonFiniteLossError, match=r"task1: .*generator_loss = nan at step 40"):
            OMASGAN(config, tmp_path, device="cpu", verbose=0).fit(torch.from_numpy(bimodal(300)))
    finally:
        pm.unregister(name="nan-after-plugin")
    assert (tmp_path / "task1.partial.json").exists()
    assert json.loads((tmp_path / "state.json").read_text())["completed"] == []


def test_user_supplied_networks_are_trained():
    x = torch.from_numpy(bimodal(300, random_state=0))
    latent = 3
    generator = torch.nn.Sequential(torch.nn.Linear(latent, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))

        def forward(self, inputs):
            return self.net(inputs).squeeze(1)

    critic, detector = Head(), Head()
    before = [p.detach().clone() for p in detector.parameters()]
    config = OMASGANConfig.preset("quick", "vector").with_overrides(
        {**SMALL, "latent_dim": latent, "task1.steps": 20, "task2.steps": 5, "task3.steps": 5, "detector.steps": 10})
    models = OMASGAN(config, device="cpu", verbose=0, modules=(generator, critic, detector)).fit(x)
    assert models.detector is detector and models.generator is generator
    assert any(not torch.equal(a, b) for a, b in zip(before, detector.parameters(), strict=True))
    assert models.scores(x[:5])["detector"].shape == (5,)
