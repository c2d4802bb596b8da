"""Data: readers for the benchmark datasets and tables, evaluation protocols and synthetic 2-D sets."""

from omasgan.data.protocols import PROTOCOLS, Split, leave_one_out, make_split, one_class, out_of_dataset
from omasgan.data.readers import DATASETS, Dataset, data_dir, load_dataset
from omasgan.data.synthetic import bimodal, bimodal_anomalies
from omasgan.data.tables import ADBENCH_TABLES, TABLE_PROTOCOLS, Table, TableSplit, load_table, table_split

__all__ = [
    "ADBENCH_TABLES",
    "DATASETS",
    "PROTOCOLS",
    "Dataset",
    "Split",
    "TABLE_PROTOCOLS",
    "Table",
    "TableSplit",
    "bimodal",
    "bimodal_anomalies",
    "data_dir",
    "leave_one_out",
    "load_dataset",
    "load_table",
    "make_split",
    "one_class",
    "out_of_dataset",
    "table_split",
]
