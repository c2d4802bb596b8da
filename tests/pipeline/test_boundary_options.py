"""The Task-2 / J options against degenerate boundary samples and shortcut detectors (issue 7)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from omasgan import divergences
from omasgan.checkpoint import load_state
from omasgan.config import PAPER_B, PAPER_J, TUNED_IMAGE, OMASGANConfig
from omasgan.data import bimodal, bimodal_anomalies
from omasgan.errors import InvalidInputError
from omasgan.models import OMASGANModels
from omasgan.nets import MLPCritic, MLPGenerator
from omasgan.nets.assembly import detector_network
from omasgan.nets.boundary import LatentShiftGenerator
from omasgan.nets.heads import (
    CriticFeatureDetector,
    NeighbourHead,
    PrototypeHead,
    SampleHeadDetector,
    StandardisedInput,
)
from omasgan.pipeline import OMASGAN, _streams
from omasgan.runtime import Engine
from omasgan.tasks.boundary import BoundaryTrainer, boundary_loss, repulsion, statistics_gap
from omasgan.tasks.detector import stroke_augment

OPTIONS = {
    "task2.boundary_space": "latent_shell",
    "task2.nearness_space": "features",
    "task2.target_ratio": 1.5,
    "task2.repulsion": 0.5,
    "task2.match_statistics": 0.5,
    "task2.push_limit": 1.0,
    "detector.input_norm": "per_sample",
    "detector.head": "mlp",  # per-sample standardisation is for J's network on the samples
}
SMALL = {"task1.steps": 60, "task2.steps": 40, "task3.steps": 20, "detector.steps": 30, "log_every": 10,
         "checkpoint_every": 20, "task2.pool_size": 256}


def test_repulsion_falls_as_points_spread_at_any_scale():
    torch.manual_seed(0)
    clustered = torch.cat([torch.randn(20, 5) * 0.01, torch.randn(20, 5) * 0.01 + 3])
    spread = torch.randn(40, 5)
    assert repulsion(spread) < repulsion(clustered)
    torch.testing.assert_close(repulsion(spread * 100), repulsion(spread))  # median bandwidth: scale-free
    points = spread.clone().requires_grad_(True)
    repulsion(points).backward()
    assert torch.isfinite(points.grad).all() and points.grad.abs().sum() > 0


def test_statistics_gap_is_zero_for_matching_batches_and_pulls_brightness_back():
    torch.manual_seed(0)
    reference = torch.rand(64, 1, 8, 8)
    assert float(statistics_gap(reference, reference)) == pytest.approx(0.0, abs=1e-10)
    brighter = (reference + 0.5).requires_grad_(True)
    gap = statistics_gap(brighter, reference)
    assert gap > 1.0
    gap.backward()
    assert float(brighter.grad.sum()) > 0  # descending lowers B's intensity


def test_push_limit_stops_pushing_samples_beyond_the_margin():
    div = divergences.get("klwgan")
    v_b = torch.tensor([2.0, 0.0, -0.5, -3.0, -5.0], requires_grad=True)
    b, z = torch.randn(5, 3), torch.randn(5, 2)
    terms = boundary_loss(div, v_b, b, z, torch.randn(7, 3), mu=0.0, nu=0.0, push_limit=1.0)
    terms["total"].backward()
    assert torch.all(v_b.grad[:3] != 0) and torch.all(v_b.grad[3:] == 0)
    unbounded = boundary_loss(div, v_b.detach(), b, z, torch.randn(7, 3), mu=0.0, nu=0.0)
    assert float(unbounded["push"]) > float(terms["push"].detach())


def test_latent_shift_generator_starts_as_g_and_trains_only_the_shift():
    torch.manual_seed(0)
    generator = MLPGenerator(4, 2, hidden=16)
    boundary = LatentShiftGenerator(generator, 4).train()
    z = torch.randn(10, 4)
    torch.testing.assert_close(boundary(z), generator(z))
    assert not boundary.generator.training
    trainable = {name for name, p in boundary.named_parameters() if p.requires_grad}
    assert trainable and all(not name.startswith("generator.") for name in trainable)


def test_latent_shell_keeps_each_latent_on_its_own_sphere():
    torch.manual_seed(0)
    boundary = LatentShiftGenerator(nn.Identity(), 6, keep_norm=True)  # an identity "G" exposes B's latents
    free = LatentShiftGenerator(nn.Identity(), 6)
    nn.init.normal_(boundary.out.weight)
    free.load_state_dict(boundary.state_dict())
    z = torch.randn(50, 6)
    shifted = boundary(z)
    torch.testing.assert_close(shifted.norm(dim=1), z.norm(dim=1))
    assert (shifted - z).norm(dim=1).min() > 1e-2  # it moved, along the sphere
    assert (free(z).norm(dim=1) - z.norm(dim=1)).abs().max() > 1e-1  # without the shell it leaves it


def test_standardised_detector_ignores_intensity_and_contrast():
    torch.manual_seed(0)
    detector = StandardisedInput(MLPCritic(16, hidden=8))
    x = torch.rand(6, 16)
    # Invariant up to the eps (1e-3) added to each sample's SD (about 0.3 here).
    torch.testing.assert_close(detector(3.0 * x + 0.7), detector(x), rtol=1e-2, atol=1e-3)
    assert not torch.allclose(detector(x.flip(1)), detector(x), rtol=1e-2, atol=1e-3)  # shape still matters


def _boundary_trainer(target_ratio: float) -> BoundaryTrainer:
    torch.manual_seed(0)
    config = OMASGANConfig.preset("quick", "vector").with_overrides(
        {"task2.target_ratio": target_ratio, "task2.nearness_space": "features"})
    return BoundaryTrainer(
        MLPGenerator(8, 2, hidden=16), MLPCritic(2, hidden=16, spectral_norm=True), divergences.get("kl"),
        config.task2, engine=Engine(torch.device("cpu")), latent_dim=8, streams=_streams(0, 2),
    )


def test_adaptive_mu_rises_when_b_is_too_far_and_falls_when_too_near():
    trainer = _boundary_trainer(target_ratio=1.5)
    pool = trainer.reference(128, torch.zeros(1, 2))
    start = float(trainer.buffers["log_mu"])
    trainer._adapt_mu(torch.tensor(10.0), pool)  # far beyond 1.5 x G's nearness (unit features: <= 2)
    assert float(trainer.buffers["log_mu"]) == pytest.approx(start + trainer.config.mu_rate)
    trainer._adapt_mu(torch.tensor(0.0), pool)
    trainer._adapt_mu(torch.tensor(0.0), pool)
    assert float(trainer.buffers["log_mu"]) == pytest.approx(start - trainer.config.mu_rate)
    assert math.isclose(float(trainer.buffers["log_mu"].exp()), trainer.config.mu * math.exp(-trainer.config.mu_rate),
                        rel_tol=1e-6)


class _Interrupt(Exception):
    pass


def test_all_options_train_resume_exactly_and_reload(tmp_path):
    x = torch.from_numpy(bimodal(1000, random_state=0))
    config = OMASGANConfig.preset("quick", "vector").with_overrides({**SMALL, **OPTIONS})
    probe = torch.from_numpy(bimodal_anomalies(100, random_state=3))
    pipeline = OMASGAN(config, device="cpu", verbose=0)
    reference = pipeline.fit(x).scores(probe)
    task2 = [row for row in pipeline.history if row["task"] == "task2"]
    assert {"boundary_repulsion", "boundary_statistics_gap", "boundary_mu", "boundary_generator_nearness",
            "boundary_nn_data", "generator_nn_data", "boundary_diversity"} <= set(task2[-1])
    assert len({row["boundary_mu"] for row in task2}) > 1  # mu adapted

    def crash(task, step, metrics):
        if task == "task2" and step == 30:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        OMASGAN(config, tmp_path, device="cpu", verbose=0, callbacks=[crash]).fit(x)
    resumed = OMASGAN(config, tmp_path, device="cpu", verbose=0).fit(x).scores(probe)  # from task2 step 20
    for key in reference:
        assert torch.equal(resumed[key], reference[key]), key
    reloaded, _ = OMASGANModels.load_run(tmp_path)
    assert isinstance(reloaded.boundary, LatentShiftGenerator) and reloaded.boundary.keep_norm
    assert isinstance(reloaded.detector, StandardisedInput)
    for key, value in reloaded.scores(probe).items():
        torch.testing.assert_close(value, reference[key])


@pytest.mark.parametrize("head", ["mlp", "prototypes", "neighbours"])
def test_critic_feature_detector_trains_a_head_on_the_frozen_task1_critic(tmp_path, head):
    x = torch.from_numpy(bimodal(1000, random_state=0))
    probe = torch.from_numpy(bimodal_anomalies(100, random_state=3))
    config = OMASGANConfig.preset("quick", "vector").with_overrides(
        {**SMALL, "detector.input_space": "critic_features", "detector.head": head, "detector.head_size": 32})
    models = OMASGAN(config, tmp_path, device="cpu", verbose=0).fit(x)
    assert isinstance(models.detector, CriticFeatureDetector) and models.detector.critic is models.critic
    # J's training moved its head only: D is bit-identical to D at the end of Task 1.
    after_task1 = load_state(tmp_path / "task1", "cpu")["models"]["critic"]
    for key, value in models.critic.state_dict().items():
        assert torch.equal(value, after_task1[key]), key
    scores = models.scores(probe)
    assert float(scores["detector"].std()) > 0  # the head learnt something input-dependent
    reloaded, _ = OMASGANModels.load_run(tmp_path)
    assert isinstance(reloaded.detector, CriticFeatureDetector)
    torch.testing.assert_close(reloaded.scores(probe)["detector"], scores["detector"])
    with pytest.raises(InvalidInputError, match="input_norm"):
        OMASGANConfig().with_overrides({"detector.input_space": "critic_features", "detector.input_norm": "per_sample"})
    # On the samples themselves (detector.input_space="pixels"), a distance-aware head replaces J's network.
    on_samples = detector_network(models.critic, None, config.with_overrides({"detector.input_space": "pixels"}), (2,))
    if head == "mlp":
        assert on_samples is None  # J's own network (here: none given) stays
        with pytest.raises(InvalidInputError, match="prototypes"):
            SampleHeadDetector((2,), "mlp", 8)
    else:
        assert isinstance(on_samples, SampleHeadDetector) and isinstance(on_samples.head, type(models.detector.head))


def test_prototype_head_is_calibrated_and_grows_with_the_distance_from_every_prototype():
    torch.manual_seed(0)
    head = PrototypeHead(feature_dim=8, count=4)
    prototypes = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    calibration = torch.nn.functional.normalize(prototypes.repeat(64, 1) + 0.1 * torch.randn(256, 8), dim=1)
    head.initialise(prototypes, calibration)
    logits = head(calibration)
    assert abs(float(logits.median())) < 1e-4 and float(logits.std()) == pytest.approx(1.0, rel=1e-3)
    # Moving away from the nearest prototype (towards no other) raises the logit monotonically.
    direction = torch.nn.functional.normalize(torch.randn(8), dim=0)
    path = torch.stack([prototypes[0] + t * direction for t in torch.linspace(0, 0.5, 6)])
    assert torch.all(head(path).diff() > 0)


def test_neighbour_head_is_calibrated_and_measures_the_distance_to_the_nearest_stored_sample():
    torch.manual_seed(0)
    stored = torch.nn.functional.normalize(torch.randn(300, 16), dim=1)
    calibration = torch.nn.functional.normalize(stored[:200] + 0.05 * torch.randn(200, 16), dim=1)
    head = NeighbourHead(feature_dim=16, size=256, rank=16)  # all 16 components: exact distances
    head.initialise(stored, calibration)
    assert head.memory.shape == (256, 16)  # at most ``size`` stored
    logits = head(calibration).detach()
    assert abs(float(logits.median())) < 1e-4 and float(logits.std()) == pytest.approx(1.0, rel=1e-3)
    # At a low temperature the logit is an increasing function of the nearest stored sample's distance.
    queries = torch.nn.functional.normalize(torch.randn(100, 16), dim=1)
    nearest = torch.cdist(queries, stored[:256]).min(1).values
    order = nearest.argsort()
    assert torch.all(head(queries)[order].diff() > -1e-3)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the distances stay float32 (cancellation)
        inside = head(queries)
    assert inside.dtype == torch.float32 and torch.equal(inside, head(queries))
    # Loading takes the stored samples' count from the state (a run may store fewer than ``size``).
    fewer = NeighbourHead(feature_dim=16, size=256, rank=16)
    fewer.initialise(stored[:40], calibration)
    fresh = NeighbourHead(feature_dim=16, size=256, rank=16)
    fresh.load_state_dict(fewer.state_dict())
    assert fresh.memory.shape == (40, 16) and torch.equal(fresh(queries), fewer(queries))


@pytest.mark.parametrize("local_k", [0, 3])
@pytest.mark.parametrize("stored_count", [5, 40])  # fewer and more than the soft minimum's 32 searched
def test_stored_logits_score_each_stored_sample_without_itself(local_k, stored_count):
    torch.manual_seed(0)
    stored = torch.randn(stored_count, 6)
    head = NeighbourHead(feature_dim=6, size=256, rank=6, local_k=local_k)
    head.initialise(stored, torch.randn(20, 6))
    logits = head.stored_logits()
    # Row i as a new sample against a copy of the memory without row i: what stored_logits must give.
    for i in (0, stored_count - 1):
        others = torch.cat([head.memory[:i], head.memory[i + 1 :]])
        without = NeighbourHead(feature_dim=6, size=256, rank=6, local_k=0)
        without.load_state_dict({**head.state_dict(), "memory": others}, strict=False)
        if local_k:  # the spacing terms keep the full memory's neighbour lists: compare the search only
            assert i not in head._nearest(head.memory[i : i + 1], local_k, exclude=torch.tensor([i])).tolist()[0]
            continue
        expected = without.log_scale.exp() * (without._score_projected(head.memory[i : i + 1]) - without.offset)
        torch.testing.assert_close(logits[i : i + 1], expected)


def test_relative_neighbour_score_measures_distance_in_units_of_the_local_spacing():
    torch.manual_seed(0)
    dense = torch.randn(400, 8) * 0.01  # spacing ~0.01 around 0
    sparse = torch.randn(400, 8) * 0.1 + 3.0  # spacing ~0.1 around 3
    stored, calibration = torch.cat([dense, sparse]), torch.cat([dense[:50], sparse[:50]]) * 1.01
    direction = torch.nn.functional.normalize(torch.randn(8), dim=0)
    near_dense = torch.zeros(8) + 0.08 * direction  # several dense spacings out
    near_sparse = torch.full((8,), 3.0) + 0.08 * direction  # well inside the sparse cloud
    queries = torch.stack([near_dense, near_sparse])
    relative = NeighbourHead(feature_dim=8, size=1000, rank=8, local_k=5)
    relative.initialise(stored, calibration)
    assert relative.memory_neighbours.shape == (800, 5)
    assert not (relative.memory_neighbours == torch.arange(800).unsqueeze(1)).any()  # never itself
    dense_score, sparse_score = relative(queries).tolist()
    assert dense_score > sparse_score + 1.0  # off the dense cloud, at home in the sparse one
    plain = NeighbourHead(feature_dim=8, size=1000, rank=8)
    plain.initialise(stored, calibration)
    plain_dense, plain_sparse = plain(queries).tolist()
    assert plain_dense < plain_sparse  # the plain distance calls the sparse cloud's member odder
    restored = NeighbourHead(feature_dim=8, size=1000, rank=8, local_k=5)
    restored.load_state_dict(relative.state_dict())
    assert torch.equal(restored(queries), relative(queries))
    few = NeighbourHead(feature_dim=8, size=1000, rank=8, local_k=5)
    few.initialise(stored[:3], calibration)  # fewer stored samples than local_k: as many as there are
    assert few.memory_neighbours.shape == (3, 2) and torch.isfinite(few(queries)).all()
    # One stored sample (a detector fitted on two rows): its own spacing, a constant; scores stay finite
    # and grow with the distance from it.
    few.initialise(stored[:1], calibration)
    assert few.memory_neighbours.shape == (1, 1)
    far = stored[:1] + torch.linspace(0.1, 2.0, 4)[:, None] * direction
    scores = few(far)
    assert torch.isfinite(scores).all() and bool((scores.diff() > 0).all())


@pytest.mark.parametrize("local_k", [0, 5])
def test_neighbour_head_trains_on_samples_it_does_not_store_and_resumes_exactly(tmp_path, local_k):
    x = torch.from_numpy(bimodal(600, random_state=0))
    probe = torch.from_numpy(bimodal_anomalies(50, random_state=3))
    config = OMASGANConfig.preset("quick", "vector").with_overrides(
        {**SMALL, "detector.input_space": "critic_features", "detector.head": "neighbours",
         "detector.head_size": 10_000, "detector.feature_rank": 8, "detector.local_k": local_k,
         "checkpoint_every": 10})
    reference = OMASGAN(config, tmp_path / "a", device="cpu", verbose=0).fit(x)
    assert reference.detector.head.memory.shape == (540, 8)  # a tenth of x left for J's real batches

    def crash(task, step, metrics):
        if task == "detector" and step == 20:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        OMASGAN(config, tmp_path / "b", device="cpu", verbose=0, callbacks=[crash]).fit(x)
    resumed = OMASGAN(config, tmp_path / "b", device="cpu", verbose=0).fit(x)
    assert torch.equal(resumed.scores(probe)["detector"], reference.scores(probe)["detector"])


def test_stroke_augment_thickens_or_thins_images_and_leaves_vectors_alone():
    torch.manual_seed(0)
    images = -torch.ones(64, 1, 12, 12)
    images[:, :, 3:9, 5:7] = 1.0  # a vertical stroke, 2 px wide
    out = stroke_augment(images, torch.Generator().manual_seed(1))
    assert torch.equal(out, stroke_augment(images, torch.Generator().manual_seed(1)))  # seeded
    ink_change = (out - images).flatten(1).mean(1)
    assert (ink_change > 1e-3).any() and (ink_change < -1e-3).any() and (ink_change.abs() < 1e-7).any()
    assert out.min() >= -1 and out.max() <= 1
    # Dilation only brightens pixels next to the stroke; erosion only darkens the stroke itself.
    background = images < 0
    thicker, thinner = ink_change > 0, ink_change < 0
    assert torch.all((out - images)[thicker][~background[thicker]] == 0)
    assert torch.all((out - images)[thinner][background[thinner]] == 0)
    vectors = torch.randn(8, 5)
    assert stroke_augment(vectors, torch.Generator().manual_seed(1)) is vectors


def test_tuned_presets_differ_from_the_paper_presets_only_by_the_tuned_recipe():
    paper_values = {**PAPER_B, **PAPER_J}
    assert set(paper_values) == set(TUNED_IMAGE)
    for tuned, paper in (("quick", "paper-quick"), ("tuned", "paper")):
        image = OMASGANConfig.preset(tuned, "image")
        assert (image.detector.input_space, image.detector.head) == ("critic_features", "neighbours")
        assert image.detector.local_k > 0 and image.task2.boundary_space == "latent_shell"
        assert image.with_overrides(paper_values) == OMASGANConfig.preset(paper, "image")
    # The paper preset is OMASGANConfig()'s defaults: the published recipe, KL-WGAN as Song & Ermon wrote it.
    paper = OMASGANConfig.preset("paper", "image")
    assert paper == OMASGANConfig()
    assert (paper.task2.boundary_space, paper.task2.nearness_space, paper.detector.input_space) == (
        "weights", "pixels", "pixels")
    assert paper.divergence == "klwgan" and paper.divergence_params == {"temperature": 5.0, "form": "reference"}
    assert (paper.task2.mu, paper.task2.nu, paper.task2.pool_size, paper.task2.batch_size) == (0.2, 0.3, 1024, 256)
    vector = OMASGANConfig.preset("paper", "vector")
    assert (vector.task2.mu, vector.task2.nu, vector.task2.pool_size, vector.task2.batch_size) == (8.0, 20.0, 4096, 100)
    assert OMASGANConfig.preset("quick", "vector").detector.input_space == "pixels"


def test_unknown_option_values_are_refused():
    with pytest.raises(InvalidInputError, match="task2.nearness_space"):
        OMASGANConfig().with_overrides({"task2.nearness_space": "wavelets"})
    with pytest.raises(InvalidInputError, match="detector.input_norm"):
        OMASGANConfig().with_overrides({"detector.input_norm": "global"})
