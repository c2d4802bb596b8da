"""Data: readers for the benchmark datasets, evaluation protocols and synthetic 2-D sets."""

from omasgan.data.protocols import PROTOCOLS, Split, leave_one_out, make_split, one_class, out_of_dataset
from omasgan.data.readers import DATASETS, Dataset, data_dir, load_dataset
from omasgan.data.synthetic import bimodal, bimodal_anomalies

__all__ = [
    "DATASETS",
    "PROTOCOLS",
    "Dataset",
    "Split",
    "bimodal",
    "bimodal_anomalies",
    "data_dir",
    "leave_one_out",
    "load_dataset",
    "make_split",
    "one_class",
    "out_of_dataset",
]
