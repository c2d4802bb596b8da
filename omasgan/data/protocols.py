"""Evaluation protocols: which data trains, which validates, which tests.

The test split is never used for any choice. Thresholds come from the validation slice, which is held
out of the training data and contains normal samples only. Choices between configurations (issue 7) use
``validation`` against ``validation_anomalies``: the anomaly classes' images of the *train* split, which
no model trains on (leave-one-out and one-class protocols only).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from omasgan.data.readers import Dataset, load_dataset
from omasgan.errors import InvalidInputError

__all__ = ["PROTOCOLS", "Split", "leave_one_out", "make_split", "one_class", "out_of_dataset"]


@dataclass(frozen=True)
class Split:
    """Train and validation hold normal samples only; ``test_labels`` is 1 for anomalies.

    ``validation_anomalies``: anomalous samples from the train split (never the test split) for choosing
    configurations by a validation AUROC; None where the protocol has none (out-of-dataset)."""

    name: str
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray
    description: str
    subset: str | None = None
    validation_anomalies: np.ndarray | None = None

    def query_sets(self) -> dict[str, np.ndarray]:
        """What a detector is scored on: "test", "validation" (normal) and, if any, "validation_anomalies"."""
        sets = {"test": self.test, "validation": self.validation}
        if self.validation_anomalies is not None:
            sets["validation_anomalies"] = self.validation_anomalies
        return sets


def _hold_out(images: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(len(images))
    n_val = max(1, int(round(fraction * len(images))))
    return images[order[n_val:]], images[order[:n_val]]


def _subset_note(*datasets: Dataset) -> str | None:
    notes = [f"{d.name} {d.split}: {d.subset}" for d in datasets if d.subset]
    return "; ".join(notes) or None


def _class_split(
    dataset: str, name: str, description: str, is_normal, data_dir, validation_fraction: float, seed: int
) -> Split:
    """Train on the train-split images whose label ``is_normal``; test on the whole test split, label 1 for
    the others."""
    train = load_dataset(dataset, "train", data_dir_path=data_dir)
    test = load_dataset(dataset, "test", data_dir_path=data_dir)
    fit, validation = _hold_out(train.images[is_normal(train.labels)], validation_fraction, seed)
    anomalies = train.images[~is_normal(train.labels)]
    # As many anomalies as validation normals, drawn evenly over the anomaly classes' train images.
    order = np.random.default_rng(seed).permutation(len(anomalies))[: len(validation)]
    return Split(
        name=name,
        train=fit,
        validation=validation,
        test=test.images,
        test_labels=(~is_normal(test.labels)).astype(np.int64),
        description=description,
        subset=_subset_note(train, test),
        validation_anomalies=anomalies[np.sort(order)],
    )


def leave_one_out(
    dataset: str,
    anomaly_class: int,
    *,
    data_dir: str | os.PathLike | None = None,
    validation_fraction: float = 0.05,
    seed: int = 0,
) -> Split:
    """Train on the official train split without ``anomaly_class``; test on the whole test split,
    label 1 = ``anomaly_class``."""
    description = (
        f"{dataset} leave-one-out, anomaly class {anomaly_class}: train = train split without it, "
        "test = whole test split"
    )
    return _class_split(
        dataset,
        f"{dataset}-loo-{anomaly_class}",
        description,
        lambda labels: labels != anomaly_class,
        data_dir,
        validation_fraction,
        seed,
    )


def one_class(
    dataset: str,
    normal_class: int,
    *,
    data_dir: str | os.PathLike | None = None,
    validation_fraction: float = 0.05,
    seed: int = 0,
) -> Split:
    """Train on ``normal_class`` only; every other class of the test split is an anomaly."""
    return _class_split(
        dataset,
        f"{dataset}-oneclass-{normal_class}",
        f"{dataset} one-class, normal class {normal_class}",
        lambda labels: labels == normal_class,
        data_dir,
        validation_fraction,
        seed,
    )


def out_of_dataset(
    normal: str,
    anomalous: str,
    *,
    data_dir: str | os.PathLike | None = None,
    validation_fraction: float = 0.05,
    seed: int = 0,
) -> Split:
    """Train on all of ``normal``; test on its test split (label 0) plus ``anomalous``'s test split (1)."""
    train, test = (
        load_dataset(normal, "train", data_dir_path=data_dir),
        load_dataset(normal, "test", data_dir_path=data_dir),
    )
    other = load_dataset(anomalous, "test", data_dir_path=data_dir)
    if other.images.shape[1:] != test.images.shape[1:]:
        raise InvalidInputError(
            f"{normal} images are {test.images.shape[1:]} but {anomalous} images are "
            f"{other.images.shape[1:]}; out-of-dataset pairs need one image shape."
        )
    fit, validation = _hold_out(train.images, validation_fraction, seed)
    return Split(
        name=f"{normal}-ood-{anomalous}",
        train=fit,
        validation=validation,
        test=np.concatenate([test.images, other.images]),
        test_labels=np.r_[np.zeros(len(test.images), np.int64), np.ones(len(other.images), np.int64)],
        description=f"out-of-dataset: train on {normal}, test {normal} test (0) + {anomalous} test (1)",
        subset=_subset_note(train, test, other),
    )


PROTOCOLS = ("loo", "one_class", "ood")


def make_split(dataset: str, protocol: str, target: int | str, **kwargs) -> Split:
    """``protocol`` "loo" / "one_class" take a class index; "ood" takes the anomalous dataset's name."""
    if protocol == "loo":
        return leave_one_out(dataset, int(target), **kwargs)
    if protocol == "one_class":
        return one_class(dataset, int(target), **kwargs)
    if protocol == "ood":
        return out_of_dataset(dataset, str(target), **kwargs)
    raise InvalidInputError(f"unknown protocol {protocol!r}; protocols: {PROTOCOLS}.")
