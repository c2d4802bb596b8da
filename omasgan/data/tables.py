"""Tables in ADBench's format and the two tabular protocols.

An ADBench table is an ``.npz`` with ``X`` (n x d, any real dtype) and ``y`` (n, 1 = anomaly), read with
``allow_pickle=False``. Tables are looked up as ``<data dir>/adbench/<name>.npz`` (``OMASGAN_DATA`` or an
argument), by file stem ("2_annthyroid") or by name alone ("annthyroid"); where an ``MD5SUMS`` manifest sits
beside the file, the file must match it.

Protocols (Han et al. 2022, ADBench):

- ``novelty``: train on a seeded 70% of the normal rows; test on the other 30% plus every anomaly.
- ``unsupervised``: fit on every row, anomalies included, and score the same rows.

Rows come back unscaled: scaling is the detector's job (``OMASGANDetector`` fits and stores its scaler;
``benchmarks/tabular.py`` fits a ``StandardScaler`` on the training rows for the peers).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from omasgan.data.readers import data_dir
from omasgan.errors import DataNotFoundError, InvalidInputError

__all__ = ["ADBENCH_TABLES", "TABLE_PROTOCOLS", "Table", "TableSplit", "load_table", "table_split"]

# The twelve tables in shared/data/adbench (the tuning set), by the names ADBench gives them.
ADBENCH_TABLES = (
    "annthyroid",
    "cardio",
    "Ionosphere",
    "magic.gamma",
    "mammography",
    "pendigits",
    "satellite",
    "shuttle",
    "SpamBase",
    "thyroid",
    "vowels",
    "WBC",
)
TABLE_PROTOCOLS = ("novelty", "unsupervised")
TRAIN_FRACTION = 0.7  # of the normal rows, in the novelty protocol


@dataclass(frozen=True)
class Table:
    """Rows ``X`` (n, d) float64 and labels ``y`` (n,) int64, 1 = anomaly."""

    name: str
    X: np.ndarray
    y: np.ndarray
    path: Path


@dataclass(frozen=True)
class TableSplit:
    """What a detector fits on (``train``) and is scored on (``test``, labels ``test_labels``, 1 = anomaly)."""

    name: str
    protocol: str
    seed: int
    train: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray
    description: str


def _find(name: str, root: Path) -> Path:
    folder = root / "adbench"
    exact = folder / (name if name.endswith(".npz") else f"{name}.npz")
    if exact.is_file():
        return exact
    matches = sorted(folder.glob(f"*_{name}.npz")) if folder.is_dir() else []
    if len(matches) == 1:
        return matches[0]
    known = sorted(p.stem.split("_", 1)[-1] for p in folder.glob("*.npz")) if folder.is_dir() else []
    raise DataNotFoundError(
        f"no ADBench table {name!r} under {folder}"
        + (f"; tables there: {known}" if known else " (set OMASGAN_DATA to the folder holding adbench/)")
        + ". ADBench's tables: https://github.com/Minqi824/ADBench (adbench/datasets/Classical)."
    )


def _check_manifest(path: Path) -> None:
    manifest = path.parent / "MD5SUMS"
    if not manifest.is_file():
        return
    expected = {}
    for line in manifest.read_text().splitlines():
        digest, _, file_name = line.strip().partition("  ")
        if file_name:
            expected[file_name.lstrip("*")] = digest.lower()
    if path.name not in expected:
        return
    with open(path, "rb") as handle:
        actual = hashlib.file_digest(handle, "md5").hexdigest()
    if actual != expected[path.name]:
        raise DataNotFoundError(
            f"{path} has MD5 {actual} but {manifest} says {expected[path.name]}: the file is corrupt or "
            "not the published table; copy it again."
        )


def load_table(name: str, *, data_dir_path: str | os.PathLike | None = None) -> Table:
    """The ADBench table ``name`` ("annthyroid" or "2_annthyroid"), MD5-checked against ``MD5SUMS``."""
    path = _find(name, data_dir(data_dir_path))
    _check_manifest(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            X, y = archive["X"], archive["y"]
    except (ValueError, KeyError, OSError) as error:
        raise InvalidInputError(f"{path} is not an ADBench table (an .npz of numeric X and y): {error}") from None
    if X.ndim != 2 or y.shape != (X.shape[0],) or not np.issubdtype(X.dtype, np.number):
        raise InvalidInputError(f"{path}: X must be (n, d) numbers and y (n,), got {X.shape} and {y.shape}.")
    labels = y.astype(np.int64)
    if not np.isin(labels, (0, 1)).all():
        raise InvalidInputError(f"{path}: y must be 0 (normal) or 1 (anomaly).")
    return Table(name=path.stem.split("_", 1)[-1], X=X.astype(np.float64), y=labels, path=path)


def table_split(
    name: str, protocol: str = "novelty", seed: int = 0, *, data_dir_path: str | os.PathLike | None = None
) -> TableSplit:
    """The table ``name`` under ``protocol`` ("novelty" or "unsupervised"); ``seed`` draws the novelty
    protocol's training rows."""
    table = load_table(name, data_dir_path=data_dir_path)
    if protocol == "unsupervised":
        return TableSplit(
            table.name, protocol, seed, table.X, table.X, table.y, f"{table.name}: fit on all rows, score them"
        )
    if protocol != "novelty":
        raise InvalidInputError(f"unknown table protocol {protocol!r}; protocols: {TABLE_PROTOCOLS}.")
    normal = np.flatnonzero(table.y == 0)
    order = np.random.default_rng(seed).permutation(normal)
    n_train = int(round(TRAIN_FRACTION * len(normal)))
    train, held_out = np.sort(order[:n_train]), np.sort(order[n_train:])
    test = np.concatenate([held_out, np.flatnonzero(table.y == 1)])
    return TableSplit(
        table.name,
        protocol,
        seed,
        table.X[train],
        table.X[test],
        table.y[test],
        f"{table.name}: train on {n_train} normal rows (70%), test on {len(held_out)} normal + "
        f"{int(table.y.sum())} anomalous rows",
    )
