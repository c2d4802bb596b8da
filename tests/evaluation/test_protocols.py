"""Protocol splits: no class leakage, test split untouched, labels right, validation normal-only."""

from __future__ import annotations

import numpy as np
import pytest

from omasgan.data import leave_one_out, load_dataset, make_split, one_class, out_of_dataset


def _rows(images: np.ndarray) -> set:
    return {row.tobytes() for row in images.reshape(len(images), -1)}


def test_leave_one_out_excludes_the_class_and_keeps_the_whole_test_split(data_dir):
    split = leave_one_out("mnist", 7, data_dir=data_dir)
    train = load_dataset("mnist", "train", data_dir_path=data_dir)
    test = load_dataset("mnist", "test", data_dir_path=data_dir)
    assert len(split.train) + len(split.validation) == int((train.labels != 7).sum())
    assert np.array_equal(split.test, test.images)  # untouched, in official order
    assert np.array_equal(split.test_labels, (test.labels == 7).astype(np.int64))
    sevens = _rows(train.images[train.labels == 7])
    assert not sevens & _rows(split.train[:5000]) and not sevens & _rows(split.validation)
    assert not _rows(split.train[:3000]) & _rows(split.validation)
    assert 0.04 < len(split.validation) / (len(split.train) + len(split.validation)) < 0.06
    # Validation anomalies (for choosing configurations): train-split sevens, never test images.
    assert len(split.validation_anomalies) == len(split.validation)
    assert _rows(split.validation_anomalies) <= sevens
    assert not _rows(split.validation_anomalies) & _rows(test.images)


def test_one_class_and_out_of_dataset_labels(data_dir):
    oc = one_class("mnist", 3, data_dir=data_dir)
    test = load_dataset("mnist", "test", data_dir_path=data_dir)
    assert np.array_equal(oc.test_labels, (test.labels != 3).astype(np.int64))
    ood = out_of_dataset("mnist", "kmnist", data_dir=data_dir)
    assert len(ood.test) == 20000 and ood.test_labels.sum() == 10000 and ood.test_labels[:10000].sum() == 0
    assert len(ood.train) + len(ood.validation) == 60000
    assert ood.validation_anomalies is None  # no anomalous train split to draw from
    train = load_dataset("mnist", "train", data_dir_path=data_dir)
    assert _rows(oc.validation_anomalies) <= _rows(train.images[train.labels != 3])


def test_split_is_seeded_and_cifar_subset_is_flagged(data_dir):
    a, b = make_split("cifar10", "loo", 0, data_dir=data_dir), make_split("cifar10", "loo", 0, data_dir=data_dir)
    assert np.array_equal(a.validation, b.validation)
    assert "subset" not in a.description and a.subset is not None and "first 1000" in a.subset
    with pytest.raises(ValueError, match="unknown protocol"):
        make_split("mnist", "loco", 0, data_dir=data_dir)
