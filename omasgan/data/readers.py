"""Readers for the benchmark datasets in their official formats, verified by MD5.

Files are looked up under a data directory (argument, or ``OMASGAN_DATA``), as
``<dir>/<dataset>/<file>``. Images come back as float32 in [-1, 1] with shape (n, c, h, w), labels as
int64. A missing or corrupt file raises :class:`DataNotFoundError` naming the file, its checksum and
where to get it; ``download=True`` fetches missing files from the official address (never in tests).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import pickle
import struct
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from omasgan.errors import DataNotFoundError, InvalidInputError

__all__ = ["DATASETS", "Dataset", "data_dir", "load_dataset", "read_cifar_batch"]


@dataclass(frozen=True)
class DataFile:
    name: str  # path under <data_dir>/<dataset>/
    md5: str | None  # official checksum of the file, where one is known
    url: str  # official address


@dataclass(frozen=True)
class Dataset:
    """Images (n, c, h, w) float32 in [-1, 1] and labels (n,) int64, plus where they came from."""

    name: str
    split: str
    images: np.ndarray
    labels: np.ndarray
    subset: str | None = None  # e.g. "first 1000 official test images" when not the full split


_MNIST = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_FASHION = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_KMNIST = "http://codh.rois.ac.jp/kmnist/dataset/kmnist/"
_CIFAR = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz (extract cifar-10-batches-py/)"
_SVHN = "http://ufldl.stanford.edu/housenumbers/"


def _idx(split_files: dict[str, tuple[str, str | None, str | None, str | None]], base: str) -> dict:
    return {
        split: (DataFile(images, md5_images, base + images), DataFile(labels, md5_labels, base + labels))
        for split, (images, md5_images, labels, md5_labels) in split_files.items()
    }


DATASETS: dict[str, dict] = {
    "mnist": _idx(
        {
            "train": (
                "train-images-idx3-ubyte.gz",
                "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                "train-labels-idx1-ubyte.gz",
                "d53e105ee54ea40749a09fcbcd1e9432",
            ),
            "test": (
                "t10k-images-idx3-ubyte.gz",
                "9fb629c4189551a2d022fa330f9573f3",
                "t10k-labels-idx1-ubyte.gz",
                "ec29112dd5afa0611ce80d1b7f02629c",
            ),
        },
        _MNIST,
    ),
    "fashion-mnist": _idx(
        {
            "train": (
                "train-images-idx3-ubyte.gz",
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "train-labels-idx1-ubyte.gz",
                "25c81989df183df01b3e8a0aad5dffbe",
            ),
            "test": (
                "t10k-images-idx3-ubyte.gz",
                "bef4ecab320f06d8554ea6380940ec79",
                "t10k-labels-idx1-ubyte.gz",
                "bb300cfdad3c16e7a12a480ee83cd310",
            ),
        },
        _FASHION,
    ),
    "kmnist": _idx(
        {
            "train": (
                "train-images-idx3-ubyte.gz",
                "bdb82020997e1d708af4cf47b453dcf7",
                "train-labels-idx1-ubyte.gz",
                "e144d726b3acfaa3e44228e80efcd344",
            ),
            "test": (
                "t10k-images-idx3-ubyte.gz",
                "5c965bf0a639b31b8f53240b1b52f4d7",
                "t10k-labels-idx1-ubyte.gz",
                "7320c461ea6c1c855c0b718fb2a4b134",
            ),
        },
        _KMNIST,
    ),
    "cifar10": {
        # Official MD5s of the python batches (https://www.cs.toronto.edu/~kriz/cifar.html; torchvision's too).
        "train": tuple(
            DataFile(f"cifar-10-batches-py/data_batch_{i}", md5, _CIFAR)
            for i, md5 in enumerate(
                (
                    "c99cafc152244af753f735de768cd75f",
                    "d4bba439e000b95fd0a9bffe97cbabec",
                    "54ebc095f3ab1f0389bbae665268c751",
                    "634d18415352ddfa80567beed471001a",
                    "482c414d41f54cd18b22e5b47cb7c3cb",
                ),
                start=1,
            )
        ),
        "test": (DataFile("cifar-10-batches-py/test_batch", "40351d587109b95175f43aff81a1287e", _CIFAR),),
        # Exact subsets kept for machines without network (see shared/data/README.md).
        "train-subset": (DataFile("cifar10_train_first4000.npz", "19fb9bce359fe17971179d119dabdfea", _CIFAR),),
        "test-subset": (DataFile("cifar10_test_first1000.npz", "88e0469ce419507eb7bded2d130f060a", _CIFAR),),
    },
    "svhn": {
        "train": (DataFile("train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373", _SVHN + "train_32x32.mat"),),
        "test": (DataFile("test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3", _SVHN + "test_32x32.mat"),),
    },
}


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The data directory: ``path``, else ``OMASGAN_DATA``."""
    chosen = path if path is not None else os.environ.get("OMASGAN_DATA")
    if chosen is None:
        raise DataNotFoundError("no data directory: pass data_dir= / --data-dir, or set OMASGAN_DATA.")
    return Path(chosen)


@functools.lru_cache(maxsize=64)
def _md5(path: Path, size: int, mtime: float) -> str:  # size and mtime key the cache
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _resolve(dataset: str, entry: DataFile, root: Path, download: bool) -> Path:
    path = root / dataset / entry.name
    if not path.exists():
        if download and entry.url.startswith("http") and " " not in entry.url:
            path.parent.mkdir(parents=True, exist_ok=True)
            urllib.request.urlretrieve(entry.url, path)  # noqa: S310 (official address, user asked)
        else:
            checksum = f" (md5 {entry.md5})" if entry.md5 else ""
            raise DataNotFoundError(
                f"{dataset}: expected {path}{checksum}. Get it from {entry.url}, or pass download=True "
                "(--download); point OMASGAN_DATA / --data-dir at the folder that holds the dataset folders."
            )
    if entry.md5 is not None:
        stat = path.stat()
        found = _md5(path, stat.st_size, stat.st_mtime)
        if found != entry.md5:
            raise DataNotFoundError(
                f"{dataset}: {path} has md5 {found} but the official file has {entry.md5}; it is corrupt or a "
                f"different version. Delete it and download it again from {entry.url}."
            )
    return path


class _CifarBatchUnpickler(pickle.Unpickler):
    """Admits only what the official CIFAR-10 batches hold: containers, strings and numbers (pickle opcodes,
    no lookup) and numpy arrays (these three globals). Anything else a file asks for is refused, so a
    tampered batch cannot run code; safetensors and ``np.load(allow_pickle=False)`` refuse likewise."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0],
        ("numpy._core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0],
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"it asks for {module}.{name}, which a CIFAR-10 batch never holds") from None


def read_cifar_batch(path: Path) -> dict:
    """One official CIFAR-10 python batch: ``{"data": (n, 3072) uint8, "labels": [n ints], ...}``.

    Raises
    ------
    DataNotFoundError
        The file is not a CIFAR-10 batch (including one that asks the unpickler for anything but numpy
        arrays); nothing in it is executed.
    """
    try:
        with open(path, "rb") as handle:
            batch = _CifarBatchUnpickler(handle, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise DataNotFoundError(
            f"{path} is not an official CIFAR-10 batch and was refused ({exc}). Delete it and extract "
            f"cifar-10-batches-py/ again from {_CIFAR}."
        ) from exc
    data = batch.get("data") if isinstance(batch, dict) else None
    labels = batch.get("labels") if isinstance(batch, dict) else None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataNotFoundError(f"{path} is not an official CIFAR-10 batch: no (n, 3072) uint8 'data' array.")
    if not isinstance(labels, list) or len(labels) != data.shape[0]:
        raise DataNotFoundError(f"{path} is not an official CIFAR-10 batch: 'labels' is not a list of {len(data)}.")
    return batch


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path) as handle:
        raw = handle.read()
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _to_unit_range(images_uint8: np.ndarray) -> np.ndarray:
    return (images_uint8.astype(np.float32) / 127.5 - 1.0).astype(np.float32)


def load_dataset(
    name: str, split: str = "train", *, data_dir_path: str | os.PathLike | None = None, download: bool = False
) -> Dataset:
    """Load ``split`` ("train" or "test") of ``name`` (mnist, fashion-mnist, kmnist, cifar10, svhn).

    CIFAR-10 reads the official python batches when present and otherwise the exact subsets
    (``Dataset.subset`` says so).
    """
    if name not in DATASETS:
        raise InvalidInputError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}.")
    if split not in ("train", "test"):
        raise InvalidInputError(f"split must be 'train' or 'test', got {split!r}.")
    root = data_dir(data_dir_path)
    files = DATASETS[name]
    if name in ("mnist", "fashion-mnist", "kmnist"):
        images_file, labels_file = files[split]
        images = _read_idx(_resolve(name, images_file, root, download))
        labels = _read_idx(_resolve(name, labels_file, root, download)).astype(np.int64)
        return Dataset(name, split, _to_unit_range(images)[:, None], labels)
    if name == "cifar10":
        batches = files[split]
        if all((root / name / b.name).exists() for b in batches):
            parts = [read_cifar_batch(_resolve(name, b, root, download=False)) for b in batches]
            images = np.concatenate([p["data"] for p in parts]).reshape(-1, 3, 32, 32)
            labels = np.concatenate([p["labels"] for p in parts]).astype(np.int64)
            return Dataset(name, split, _to_unit_range(images), labels)
        subset_file = files[f"{split}-subset"][0]
        if not (root / name / subset_file.name).exists():
            _resolve(name, batches[0], root, download=False)  # raises naming the official batches
        with np.load(_resolve(name, subset_file, root, download=False), allow_pickle=False) as data:
            images, subset_labels = data["x"].transpose(0, 3, 1, 2), data["y"]
        count = "4000 training" if split == "train" else "1000 test"
        return Dataset(
            name,
            split,
            _to_unit_range(images),
            subset_labels.astype(np.int64),
            subset=f"first {count} images in official order",
        )
    # svhn: official .mat files, read with scipy (optional dependency)
    try:
        from scipy.io import loadmat
    except ImportError as exc:
        raise InvalidInputError("reading SVHN needs scipy: pip install scipy") from exc
    mat = loadmat(_resolve(name, files[split][0], root, download))
    images = mat["X"].transpose(3, 2, 0, 1)
    labels = mat["y"].ravel().astype(np.int64) % 10  # the .mat files label digit 0 as 10
    return Dataset(name, split, _to_unit_range(images), labels)
