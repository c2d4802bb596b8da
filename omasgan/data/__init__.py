"""Data: synthetic 2-D sets (dataset readers and protocols come with the evaluation issue)."""

from omasgan.data.synthetic import bimodal, bimodal_anomalies

__all__ = ["bimodal", "bimodal_anomalies"]
