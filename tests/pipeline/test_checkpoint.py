"""A checkpoint is one unit: a manifest naming its weights by SHA-256; every mismatch is a CheckpointError."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from omasgan.checkpoint import (
    checkpoint_exists,
    checkpoint_paths,
    load_state,
    remove_checkpoint,
    save_state,
)
from omasgan.errors import CheckpointError
from omasgan.estimator import OMASGANDetector

STATE = {"models": {"net": {"w": torch.arange(6.0).reshape(2, 3)}}, "step": 7, "streams": (1, [2, 3])}


def test_a_state_round_trips_and_rewriting_replaces_the_weights(tmp_path):
    save_state(tmp_path / "task1", STATE)
    loaded = load_state(tmp_path / "task1")
    assert torch.equal(loaded["models"]["net"]["w"], STATE["models"]["net"]["w"])
    assert loaded["step"] == 7 and loaded["streams"] == (1, [2, 3])
    first = checkpoint_paths(tmp_path / "task1")[1]
    save_state(tmp_path / "task1", {**STATE, "models": {"net": {"w": torch.zeros(2)}}})
    manifest, weights = checkpoint_paths(tmp_path / "task1")
    assert weights != first and not first.exists()  # the old weights go once the new manifest is in place
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([manifest.name, weights.name])
    save_state(tmp_path / "task1.partial", STATE)
    remove_checkpoint(tmp_path / "task1.partial")
    assert not checkpoint_exists(tmp_path / "task1.partial") and checkpoint_exists(tmp_path / "task1")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([manifest.name, weights.name])


def test_a_crash_before_the_manifest_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    """New weights on disk, manifest not yet replaced: the old manifest still reads its own weights, and
    the next save clears the stray file."""
    import omasgan.checkpoint as checkpoint

    save_state(tmp_path / "task1", STATE)

    def crash(path, text):
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "atomic_write_text", crash)
    with pytest.raises(KeyboardInterrupt):
        save_state(tmp_path / "task1", {"models": {"net": {"w": torch.ones(3)}}, "step": 8})
    monkeypatch.undo()
    assert len(list(tmp_path.glob("task1.*.safetensors"))) == 2
    assert load_state(tmp_path / "task1")["step"] == 7
    save_state(tmp_path / "task1", {"models": {"net": {"w": torch.zeros(3)}}, "step": 9})
    assert load_state(tmp_path / "task1")["step"] == 9
    assert len(list(tmp_path.glob("task1.*.safetensors"))) == 1


def _corrupt(tmp_path, how):
    save_state(tmp_path / "c", STATE)
    manifest, weights = checkpoint_paths(tmp_path / "c")
    record = json.loads(manifest.read_text())
    if how == "truncated weights":
        weights.write_bytes(weights.read_bytes()[:-10])
    elif how == "flipped byte":
        data = bytearray(weights.read_bytes())
        data[-1] ^= 1
        weights.write_bytes(bytes(data))
    elif how == "other weights":
        save_state(tmp_path / "other", {"models": {"net": {"w": torch.ones(2, 3)}}})
        other = checkpoint_paths(tmp_path / "other")[1]
        weights.write_bytes(other.read_bytes())
    elif how == "missing weights":
        weights.unlink()
    elif how == "truncated manifest":
        manifest.write_text(manifest.read_text()[:40])
    elif how == "not a manifest":
        manifest.write_text(json.dumps({"models": 1}))
    elif how == "path in the name":
        record["weights"]["file"] = "../" + record["weights"]["file"]
        manifest.write_text(json.dumps(record))
    elif how == "edited skeleton":
        record["content"]["models"]["net"]["w"] = {"__tensor__": "/models/net/nothing"}
        manifest.write_text(json.dumps(record))
    elif how == "missing manifest":
        manifest.unlink()
    return tmp_path / "c"


@pytest.mark.parametrize(
    ("how", "match"),
    [
        ("truncated weights", "truncated or replaced"),
        ("flipped byte", "does not match the SHA-256"),
        ("other weights", "does not match the SHA-256"),
        ("missing weights", "is missing"),
        ("truncated manifest", "is not JSON"),
        ("not a manifest", "not an omasgan checkpoint"),
        ("path in the name", "plain file name"),
        ("edited skeleton", "refers to tensors"),
        ("missing manifest", "manifest .* is missing"),
    ],
)
def test_a_damaged_checkpoint_is_refused_naming_the_file(tmp_path, how, match):
    stem = _corrupt(tmp_path, how)
    with pytest.raises(CheckpointError, match=match) as caught:
        load_state(stem)
    assert str(tmp_path) in str(caught.value)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    X = np.random.default_rng(0).normal(size=(200, 3))
    config = {"task1.steps": 6, "task2.steps": 3, "task3.steps": 3, "detector.steps": 3, "log_every": 3}
    det = OMASGANDetector(preset="quick", config=config, random_state=0, device="cpu", verbose=0).fit(X)
    path = tmp_path_factory.mktemp("saved") / "model"
    det.save(path)
    return path, X, det


def _edit(path, tmp_path, change):
    copy = tmp_path / "copy"
    copy.mkdir()
    for file in path.iterdir():
        (copy / file.name).write_bytes(file.read_bytes())
    record = json.loads((copy / "estimator.json").read_text())
    change(record, copy)
    (copy / "estimator.json").write_text(json.dumps(record))
    return copy


def _truncate_weights(record, copy):
    weights = copy / record["weights"]["file"]
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (_truncate_weights, "truncated"),
        (lambda r, c: r["content"].pop("input_shape"), "does not describe its weights"),
        (lambda r, c: r["content"].update(input_shape=[7]), "does not describe its weights"),
        (lambda r, c: r["content"]["config"].update(width="wide"), "does not describe its weights"),
        (lambda r, c: r["content"].pop("params"), "does not hold a detector's parameters"),
        (lambda r, c: r["content"].update(offset="x"), "does not hold a detector's parameters"),
        (lambda r, c: r["content"]["params"].update(n_jobs=1), "does not hold a detector's parameters"),
    ],
)
def test_a_malformed_save_raises_checkpoint_error(saved, tmp_path, change, match):
    path, X, _ = saved
    with pytest.raises(CheckpointError, match=match) as caught:
        OMASGANDetector.load(_edit(path, tmp_path, change))
    assert "estimator.json" in str(caught.value) or "weights" in str(caught.value)


def test_resaving_replaces_the_save_as_one_unit(saved, tmp_path):
    path, X, det = saved
    det.save(tmp_path / "m")
    det.save(tmp_path / "m")
    assert len(list((tmp_path / "m").glob("*.safetensors"))) == 1
    assert np.array_equal(OMASGANDetector.load(tmp_path / "m").score_samples(X), det.score_samples(X))
    # A manifest from before the format (no format tag) is refused with what to do.
    (tmp_path / "m" / "estimator.json").write_text(json.dumps({"params": {}, "config": {}}))
    with pytest.raises(CheckpointError, match="retrain with this version"):
        OMASGANDetector.load(tmp_path / "m")
