"""J on features B's samples shape (detector.input_space="tuned_features") and the no-boundary controls
(detector.negatives), issue 17."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from omasgan.checkpoint import load_state
from omasgan.config import OMASGANConfig
from omasgan.data import bimodal, bimodal_anomalies
from omasgan.errors import InvalidInputError
from omasgan.models import OMASGANModels
from omasgan.nets.features import unit_features
from omasgan.nets.tuned import TunedFeatureDetector
from omasgan.pipeline import OMASGAN, _streams
from omasgan.runtime import Engine
from omasgan.tasks.detector import DetectorTrainer

SMALL = {"task1.steps": 40, "task2.steps": 20, "task3.steps": 10, "detector.steps": 40, "log_every": 10,
         "checkpoint_every": 10, "task2.pool_size": 256}
TUNED = {**SMALL, "detector.input_space": "tuned_features", "detector.head": "neighbours",
         "detector.head_size": 10_000, "detector.feature_rank": 8, "detector.local_k": 5,
         "detector.tuning_steps": 25}


class _Interrupt(Exception):
    pass


def _config(**overrides) -> OMASGANConfig:
    return OMASGANConfig.preset("quick", "vector").with_overrides({**TUNED, **overrides})


def test_tuned_features_fine_tune_a_copy_of_the_critic_then_store_samples_in_its_features(tmp_path):
    x = torch.from_numpy(bimodal(600, random_state=0))
    probe = torch.from_numpy(bimodal_anomalies(60, random_state=3))
    pipeline = OMASGAN(_config(), tmp_path, device="cpu", verbose=0)
    models = pipeline.fit(x)
    detector = models.detector
    assert isinstance(detector, TunedFeatureDetector)
    after_task1 = load_state(tmp_path / "task1", "cpu")["models"]["critic"]
    # D is untouched; its copy in J moved away from it during the tuning, and is frozen afterwards.
    for key, value in models.critic.state_dict().items():
        assert torch.equal(value, after_task1[key]), key
    tuned = detector.classifier.encoder.state_dict()
    weights = [key for key in after_task1 if after_task1[key].is_floating_point()]
    assert any(not torch.equal(tuned[key], after_task1[key]) for key in weights)
    assert not any(p.requires_grad for p in detector.classifier.parameters())
    # The memory holds the stored rows (all but a tenth of x), projected from the tuned features.
    head = detector.head
    assert head.memory.shape == (540, 8)
    features = detector.features(models.input_scaler(x)[pipeline.stored_rows])  # J works on scaled rows
    torch.testing.assert_close(head._project(features), head.memory, rtol=0, atol=1e-5)
    scores = models.scores(probe, which=("detector", "tuned_classifier"))
    assert float(scores["detector"].std()) > 0 and float(scores["tuned_classifier"].std()) > 0
    history = [row for row in _metrics(tmp_path) if row["task"] == "detector"]
    assert {"tuning_total", "tuning_boundary_missed"} <= set(history[0]) and "detector_total" in history[-1]
    reloaded, _ = OMASGANModels.load_run(tmp_path)
    torch.testing.assert_close(reloaded.scores(probe, which=("detector", "tuned_classifier")), scores)


def _metrics(run_dir):
    import json

    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# A crash at step s resumes from the checkpoint before it: in the tuning (15), exactly at the switch to
# the head (25 = tuning_steps), in the head's training (30).
@pytest.mark.parametrize(("crash_at", "checkpoint_every"), [(20, 5), (26, 1), (35, 5)])
def test_tuned_features_resume_exactly(tmp_path, crash_at, checkpoint_every):
    x = torch.from_numpy(bimodal(600, random_state=0))
    probe = torch.from_numpy(bimodal_anomalies(50, random_state=3))
    config = _config(checkpoint_every=checkpoint_every)
    reference = OMASGAN(config, tmp_path / "a", device="cpu", verbose=0).fit(x)

    def crash(task, step, metrics):
        if task == "detector" and step == crash_at:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        OMASGAN(config, tmp_path / "b", device="cpu", verbose=0, callbacks=[crash]).fit(x)
    resumed = OMASGAN(config, tmp_path / "b", device="cpu", verbose=0).fit(x)
    which = ("detector", "tuned_classifier")
    resumed_scores, reference_scores = resumed.scores(probe, which=which), reference.scores(probe, which=which)
    for name in which:
        assert torch.equal(resumed_scores[name], reference_scores[name]), name


class _Constant(nn.Module):
    def __init__(self, value: float, dim: int) -> None:
        super().__init__()
        self.value, self.dim = value, dim
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.full((z.shape[0], self.dim), self.value)


class _Recorder(nn.Module):
    """A detector that records what it is shown and scores by the first coordinate."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return self.scale * x[:, 0]


def _control_step(negatives: str) -> tuple[set[float], dict[str, torch.Tensor], torch.Tensor]:
    """One J update with B(z) = 5, G(z) = -7, G'(z) = 1 and data 0: the values J was shown, the metrics
    and the latent stream's state afterwards."""
    config = OMASGANConfig.preset("quick", "vector").with_overrides(
        {"detector.negatives": negatives, "detector.batch_size": 8}).detector
    recorder = _Recorder()
    trainer = DetectorTrainer(
        recorder, _Constant(5.0, 2), _Constant(1.0, 2), config, generator=_Constant(-7.0, 2),
        engine=Engine(torch.device("cpu")), latent_dim=3, streams=_streams(0, 4, 0))
    metrics = trainer.step(torch.zeros(100, 2))
    return {float(batch[0, 0]) for batch in recorder.seen}, metrics, trainer.streams["latent"].get_state()


@pytest.mark.parametrize(("negatives", "expected"), [("boundary", 5.0), ("generator", -7.0), ("none", None)])
def test_negatives_choose_the_anomalous_side_of_eq6(negatives, expected):
    shown, metrics, latent_state = _control_step(negatives)
    if expected is None:
        assert shown == {0.0, 1.0} and float(metrics["detector_boundary"]) == 0.0
        assert "detector_boundary_missed" not in metrics
    else:
        assert shown == {expected, 0.0, 1.0} and float(metrics["detector_boundary"]) > 0.0
    # The controls draw the same latents as the default: only the anomalous side differs, so a paired
    # comparison differs in B alone.
    assert torch.equal(latent_state, _control_step("boundary")[2])


def test_tuned_features_options_are_checked():
    with pytest.raises(InvalidInputError, match="tuning_steps"):
        _config(**{"detector.tuning_steps": 40})  # no steps left for the head
    with pytest.raises(InvalidInputError, match="neighbours"):
        _config(**{"detector.head": "prototypes"})
    with pytest.raises(InvalidInputError, match="input_norm"):
        _config(**{"detector.input_norm": "per_sample"})
    with pytest.raises(InvalidInputError, match="detector.negatives"):
        OMASGANConfig().with_overrides({"detector.negatives": "shuffled"})
    for anchor in (-1.0, float("nan"), float("inf")):
        with pytest.raises(InvalidInputError, match="tuning_anchor"):
            _config(**{"detector.tuning_anchor": anchor})


def test_tuning_anchor_keeps_the_normal_features_near_the_critics(tmp_path):
    """The feature-preservation term: with a large weight the tuned copy's features of the data stay
    closer to D's than without it, and the term is logged."""
    x = torch.from_numpy(bimodal(600, random_state=0))
    drift = {}
    for anchor in (0.0, 100.0):
        config = _config(**{"detector.tuning_anchor": anchor, "detector.tuning_lr": 1e-2})
        models = OMASGAN(config, tmp_path / str(anchor), device="cpu", verbose=0).fit(x)
        scaled = models.input_scaler(x)
        with torch.no_grad():
            frozen = unit_features(models.critic.eval(), scaled)
        drift[anchor] = float((models.detector.features(scaled) - frozen).square().sum(1).mean())
        tuning = [row for row in _metrics(tmp_path / str(anchor)) if "tuning_total" in row]
        assert ("tuning_anchor" in tuning[0]) == (anchor > 0)
    assert drift[100.0] < 0.5 * drift[0.0], drift
