"""ADBench-style tables: the reader (no pickle, MD5 manifest), the two protocols, and the evaluate command."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from omasgan import cli
from omasgan.cli import main
from omasgan.data import ADBENCH_TABLES, PROTOCOLS, TABLE_PROTOCOLS, load_table, table_split
from omasgan.errors import DataNotFoundError, InvalidInputError

TINY = [
    "--set",
    "task1.steps=30",
    "--set",
    "task2.steps=5",
    "--set",
    "task3.steps=5",
    "--set",
    "detector.steps=10",
]


def test_every_shared_table_reads_by_name_with_its_checksum(data_dir):
    for name in ADBENCH_TABLES:
        table = load_table(name)
        assert table.X.dtype == np.float64 and table.X.ndim == 2 and table.y.shape == (len(table.X),)
        assert set(np.unique(table.y)) == {0, 1}
    assert load_table("2_annthyroid").name == "annthyroid"  # the file stem works too


def test_novelty_split_trains_on_seeded_70_percent_of_the_normal_rows(data_dir):
    table = load_table("WBC")
    split = table_split("WBC", "novelty", seed=3)
    normal, anomalies = int((table.y == 0).sum()), int(table.y.sum())
    assert len(split.train) == round(0.7 * normal)
    assert len(split.test) == normal - len(split.train) + anomalies and split.test_labels.sum() == anomalies
    assert np.array_equal(split.train, table_split("WBC", "novelty", seed=3).train)
    assert not np.array_equal(split.train, table_split("WBC", "novelty", seed=4).train)
    # No normal test row is a training row (rows are distinct in WBC's normal class).
    train_rows = {row.tobytes() for row in split.train}
    assert not any(row.tobytes() in train_rows for row in split.test[split.test_labels == 0])


def test_unsupervised_split_fits_and_scores_every_row(data_dir):
    table, split = load_table("WBC"), table_split("WBC", "unsupervised")
    assert np.array_equal(split.train, table.X) and np.array_equal(split.test, table.X)
    assert np.array_equal(split.test_labels, table.y)
    with pytest.raises(InvalidInputError, match="protocol"):
        table_split("WBC", "loo")


def test_a_table_that_does_not_match_its_manifest_is_refused(data_dir, tmp_path):
    folder = tmp_path / "adbench"
    folder.mkdir()
    source = data_dir / "adbench" / "42_WBC.npz"
    shutil.copy(source, folder / "42_WBC.npz")
    (folder / "MD5SUMS").write_text((data_dir / "adbench" / "MD5SUMS").read_text())
    assert load_table("WBC", data_dir_path=tmp_path).X.shape[0] == 223
    np.savez(folder / "42_WBC.npz", X=np.zeros((3, 2)), y=np.zeros(3))
    with pytest.raises(DataNotFoundError, match="MD5"):
        load_table("WBC", data_dir_path=tmp_path)


def test_pickled_or_malformed_tables_are_refused(tmp_path):
    folder = tmp_path / "adbench"
    folder.mkdir()
    np.savez(folder / "1_objects.npz", X=np.array([[{"a": 1}]], dtype=object), y=np.zeros(1))
    with pytest.raises(InvalidInputError, match="not an ADBench table"):
        load_table("objects", data_dir_path=tmp_path)  # object arrays would need pickle: never loaded
    np.savez(folder / "2_labels.npz", X=np.zeros((3, 2)), y=np.array([0, 2, 1]))
    with pytest.raises(InvalidInputError, match="0 .normal. or 1"):
        load_table("labels", data_dir_path=tmp_path)
    with pytest.raises(DataNotFoundError, match="tables there"):
        load_table("missing", data_dir_path=tmp_path)


def test_evaluate_runs_a_table_with_the_baselines(data_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    code = main(["evaluate", "--dataset", "adbench:WBC", "--seeds", "0", "--out", str(out), "--quiet", *TINY])
    assert code == 0
    text = (out / "results.md").read_text()
    for method in ("OMASGAN J", "Task-1 critic D", "Task-3 critic C", "knn5", "isolation_forest"):
        assert f"| {method} |" in text
    assert "novelty protocol" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["evaluate", "--dataset", "adbench:WBC", "--protocol", "loo", "--out", str(out), "--quiet"])
    assert (cli.IMAGE_PROTOCOLS, cli.TABLE_PROTOCOLS) == (PROTOCOLS, TABLE_PROTOCOLS)
