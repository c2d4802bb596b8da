"""Readers against the checksummed files in ../shared/data; clear errors for missing or corrupt files."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from omasgan.data import load_dataset
from omasgan.errors import DataNotFoundError

MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_mnist_test_split_matches_the_official_counts(data_dir):
    test = load_dataset("mnist", "test", data_dir_path=data_dir)
    assert test.images.shape == (10000, 1, 28, 28) and test.images.dtype == np.float32
    assert test.images.min() == -1.0 and test.images.max() == 1.0
    assert np.bincount(test.labels).tolist() == MNIST_TEST_COUNTS
    assert test.subset is None


def test_mnist_train_and_fashion_mnist_and_kmnist(data_dir):
    train = load_dataset("mnist", "train", data_dir_path=data_dir)
    assert train.images.shape == (60000, 1, 28, 28)
    assert np.bincount(train.labels)[1] == 6742
    fashion = load_dataset("fashion-mnist", "test", data_dir_path=data_dir)
    assert np.bincount(fashion.labels).tolist() == [1000] * 10
    kmnist = load_dataset("kmnist", "test", data_dir_path=data_dir)
    assert kmnist.images.shape == (10000, 1, 28, 28) and np.bincount(kmnist.labels).tolist() == [1000] * 10


def test_cifar10_falls_back_to_the_exact_subsets_and_says_so(data_dir):
    test = load_dataset("cifar10", "test", data_dir_path=data_dir)
    assert test.images.shape == (1000, 3, 32, 32)
    assert test.labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert test.subset == "first 1000 test images in official order"
    assert load_dataset("cifar10", "train", data_dir_path=data_dir).images.shape == (4000, 3, 32, 32)


def test_missing_file_names_file_checksum_and_source(tmp_path):
    with pytest.raises(FileNotFoundError) as failure:
        load_dataset("mnist", "test", data_dir_path=tmp_path)
    assert isinstance(failure.value, DataNotFoundError)
    message = str(failure.value)
    assert "t10k-images-idx3-ubyte.gz" in message and "9fb629c4189551a2d022fa330f9573f3" in message
    assert "download=True" in message


def test_corrupt_file_is_rejected_by_checksum(tmp_path, data_dir):
    shutil.copytree(data_dir / "kmnist", tmp_path / "kmnist")
    labels = tmp_path / "kmnist" / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(DataNotFoundError, match="has md5 .* but the official file has 7320c461"):
        load_dataset("kmnist", "test", data_dir_path=tmp_path)


def test_unknown_dataset_and_svhn_without_files(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'mnsit'"):
        load_dataset("mnsit", data_dir_path=tmp_path)
    with pytest.raises(DataNotFoundError, match="test_32x32.mat .*eb5a983be6a315427106f1b164d9cef3"):
        load_dataset("svhn", "test", data_dir_path=tmp_path)


def _cifar_like_batch(n: int = 3) -> dict:
    rng = np.random.default_rng(0)
    return {
        "batch_label": "testing batch 1 of 1",
        "labels": [int(v) for v in rng.integers(0, 10, n)],
        "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        "filenames": [f"img_{i}.png" for i in range(n)],
    }


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > pwned.txt",))


def test_cifar_batches_are_read_by_a_restricted_unpickler(tmp_path):
    import pickle

    from omasgan.data.readers import read_cifar_batch

    batch = _cifar_like_batch()
    good = tmp_path / "good"
    good.write_bytes(pickle.dumps(batch, protocol=4))
    read = read_cifar_batch(good)
    assert np.array_equal(read["data"], batch["data"]) and read["labels"] == batch["labels"]

    # A batch that would run code when unpickled is refused and nothing runs (before: pickle.load ran it).
    evil = tmp_path / "evil"
    evil.write_bytes(pickle.dumps({**batch, "labels": _RunsCode()}, protocol=4))
    with pytest.raises(DataNotFoundError, match=r"asks for posix\.system|asks for nt\.system|asks for os\.system"):
        read_cifar_batch(evil)
    assert not (tmp_path / "pwned.txt").exists()
    for payload in (b"not a pickle", pickle.dumps({"data": [1, 2]}), pickle.dumps([1, 2, 3])):
        bad = tmp_path / "bad"
        bad.write_bytes(payload)
        with pytest.raises(DataNotFoundError, match="not an official CIFAR-10 batch"):
            read_cifar_batch(bad)


def test_cifar_batches_are_checked_against_the_official_md5(tmp_path):
    import pickle

    batches = tmp_path / "cifar10" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    (batches / "test_batch").write_bytes(pickle.dumps(_cifar_like_batch(), protocol=4))
    with pytest.raises(DataNotFoundError, match="40351d587109b95175f43aff81a1287e"):
        load_dataset("cifar10", "test", data_dir_path=tmp_path)


def test_no_reader_unpickles_outside_the_restricted_unpickler():
    import pathlib
    import re

    package = pathlib.Path(__file__).resolve().parents[2] / "omasgan"
    offending = []
    for path in package.rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            where = f"{path.relative_to(package)}:{number}: {line.strip()}"
            if re.search(r"pickle\.loads?\(|allow_pickle\s*=\s*True|torch\.load\(", line):
                offending.append(where)
            if "np.load(" in line and "allow_pickle=False" not in line:
                offending.append(where)
    assert not offending, offending
