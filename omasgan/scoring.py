"""Streaming scoring: score an .npy array larger than memory, batch by batch, into an .npy file.

``omasgan score --run DIR --input X.npy --output scores.npy`` reads ``X.npy`` as a memory map and writes
the scores into a memory-mapped output, so neither array is ever held whole. DIR is either a saved
``OMASGANDetector`` (``omasgan fit --out``) or a completed run directory (``--run-dir``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from omasgan.errors import CheckpointError, InvalidInputError
from omasgan.models import ESTIMATOR_FILE, OMASGANModels, read_saved
from omasgan.nets.features import unit_features
from omasgan.runtime import resolve_device

__all__ = [
    "critic_features",
    "feature_knn_scores",
    "fuse_scores",
    "load_array",
    "load_models",
    "score_array",
    "score_batches",
    "score_file",
]

SCORES = ("detector", "task1_critic", "task3_critic")


def load_array(path: str | Path) -> np.ndarray:
    """A .npy array as a read-only memory map (never unpickled), or InvalidInputError saying why not. Its
    values are checked where they are used (the estimator's validation, :func:`score_array`)."""
    try:
        X = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise
    except (ValueError, OSError) as exc:
        raise InvalidInputError(
            f"{path} cannot be read as a numeric .npy array ({exc}); save one with np.save(path, X.astype(np.float32))."
        ) from exc
    return X


def load_models(path: str | Path, device: str = "auto") -> tuple[OMASGANModels, tuple[int, ...]]:
    """The networks in ``path`` (a saved detector or a completed run directory) and their input shape."""
    path = Path(path)
    device = resolve_device(device)
    if (path / ESTIMATOR_FILE).exists():
        models, state = read_saved(path, device)
        return models, tuple(state["input_shape"])
    if (path / "config.json").exists():
        models, _ = OMASGANModels.load_run(path, device)
        return models, tuple(json.loads((path / "config.json").read_text())["data"]["shape"][1:])
    raise CheckpointError(f"{path} holds neither a saved detector (estimator.json) nor a run (config.json).")


def score_batches(
    models: OMASGANModels,
    X,
    which: tuple[str, ...],
    prepare: Callable[[Any, int], torch.Tensor],
    *,
    batch_size: int = 4096,
    out: dict[str, np.ndarray] | None = None,
    verbose: int = 0,
) -> dict[str, np.ndarray]:
    """Scores of the rows of ``X`` (an array, a memory map or a tensor), one batch at a time.

    ``prepare(rows, start)`` turns the rows ``X[start:start + batch_size]`` into a float32 tensor of samples
    (validating them); the scores go into ``out`` (float64 arrays, memory maps allowed; allocated if None).
    Only one batch is read, converted and moved at a time, so ``X`` need not fit in memory.
    """
    n = len(X)
    out = out if out is not None else {name: np.empty(n, dtype=np.float64) for name in which}
    with tqdm(total=n, desc=f"scoring ({', '.join(which)})", unit="sample", disable=verbose == 0, leave=False) as bar:
        for start in range(0, n, batch_size):
            batch = prepare(X[start : start + batch_size], start)
            for name, values in models.scores(batch, batch_size=batch_size, which=which).items():
                out[name][start : start + len(batch)] = values.numpy()
            bar.update(len(batch))
    return out


def score_array(
    models: OMASGANModels,
    input_shape: tuple[int, ...],
    X: np.ndarray,
    out: np.ndarray,
    *,
    which: str = "detector",
    batch_size: int = 4096,
    verbose: int = 1,
) -> None:
    """Write ``which``'s score of every row of ``X`` into ``out`` (both may be memory maps), batch by batch."""
    if X.dtype.kind not in "biuf":
        raise InvalidInputError(f"the input holds {X.dtype} values; convert it to real numbers (float32).")
    if which not in SCORES:
        raise InvalidInputError(f"which must be one of {SCORES}, got {which!r}.")
    if int(np.prod(X.shape[1:])) != int(np.prod(input_shape)):
        raise InvalidInputError(
            f"the input holds samples of shape {tuple(X.shape[1:])} but the model was trained on {input_shape}: "
            f"reshape them to {input_shape} (or score with the model trained on such samples)."
        )

    def prepare(rows, start: int) -> torch.Tensor:
        chunk = np.array(rows, dtype=np.float32)  # a writable copy of one batch
        if not np.isfinite(chunk).all():
            raise InvalidInputError(
                f"the input has NaN or infinite values in rows {start}..{start + len(chunk)}: drop or impute them "
                "before scoring."
            )
        return torch.from_numpy(chunk).reshape(len(chunk), *input_shape)

    score_batches(models, X, (which,), prepare, batch_size=batch_size, out={which: out}, verbose=verbose)


def score_file(
    run: str | Path,
    input_path: str | Path,
    output_path: str | Path,
    *,
    which: str = "detector",
    batch_size: int = 4096,
    device: str = "auto",
    verbose: int = 1,
) -> int:
    """Score ``input_path`` (.npy) with the model in ``run``; write float64 scores (higher = more anomalous)
    to ``output_path`` (.npy). Returns the number of samples scored."""
    models, input_shape = load_models(run, device)
    X = load_array(input_path)
    if X.ndim < 2:
        raise InvalidInputError(
            f"{input_path} must hold an array of samples (n, ...), got shape {X.shape}; reshape it, e.g. "
            "X.reshape(-1, 1) for one feature."
        )
    output_path = Path(output_path)
    partial = output_path.with_name(output_path.name + ".partial")  # renamed once every row is written
    out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float64, shape=(X.shape[0],))
    try:
        score_array(models, input_shape, X, out, which=which, batch_size=batch_size, verbose=verbose)
        out.flush()
        del out
        os.replace(partial, output_path)
    finally:
        partial.unlink(missing_ok=True)
    return int(X.shape[0])


# -- score fusion (issue 7): reported next to J, never in its place ------------------------------------


@torch.no_grad()
def critic_features(models: OMASGANModels, x: np.ndarray | torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """Unit-normalised features of the Task-1 critic D (its last hidden layer), float32 on the CPU."""
    critic = models.critic.eval()
    device = next(critic.parameters()).device
    x = torch.as_tensor(np.asarray(x, dtype=np.float32)) if not isinstance(x, torch.Tensor) else x.float()
    return torch.cat(
        [unit_features(critic, x[i : i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)]
    )


def feature_knn_scores(models: OMASGANModels, bank: np.ndarray, *queries: np.ndarray) -> list[np.ndarray]:
    """For each query array, the distance from each sample to its nearest bank sample in D's feature space
    (higher = more anomalous): the kNN baseline (k = 1) in the critic's view of the data instead of pixels.
    The bank's features are computed once for all queries."""
    from omasgan import ops

    bank_features = critic_features(models, bank)
    return [ops.min_distance(critic_features(models, x), bank_features)[0].double().numpy() for x in queries]


def fuse_scores(scores: dict[str, np.ndarray], normal: dict[str, np.ndarray]) -> np.ndarray:
    """Sum of the scores, each standardised by its mean and SD on held-out normal data (``normal``):
    equal weight to each score's spread among normal samples."""
    total = 0.0
    for name, values in scores.items():
        reference = normal[name]
        total = total + (values - reference.mean()) / max(float(reference.std()), 1e-12)
    return np.asarray(total, dtype=np.float64)
