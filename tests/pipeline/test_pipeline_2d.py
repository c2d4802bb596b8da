"""End to end on 2-D data: B lands outside but near the data, J detects anomalies, runs resume exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from omasgan import divergences, ops
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
    d_b, d_g = ops.min_distance(b, x)[0], ops.min_distance(g, x)[0]
    # Outside: farther from the data than G's samples, by about the recipe's target_ratio (2); near: well
    # within a mode's width (sigma = 0.5).
    assert d_b.mean() > 1.6 * d_g.mean()
    assert 0.05 < float(d_b.mean()) < 1.0
    assert float(d_b.median()) > 0.02
    # Scattering spreads them: B covers more of the plane than the data does, around both modes.
    assert float(b.std(0).min()) > float(x.std(0).min())
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
    assert {p.name for p in tmp_path.glob("*.safetensors")} == {f"{t}.safetensors" for t in
                                                                ("task1", "task2", "task3", "detector")}
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert {json.loads(line)["task"] for line in lines} == {"task1", "task2", "task3", "detector"}


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
