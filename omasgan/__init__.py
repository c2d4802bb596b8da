"""omasgan: anomaly detection with strong negatives on the boundary of the data distribution."""

__version__ = "0.1.0"
