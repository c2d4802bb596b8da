"""Compiled operators for the boundary loss (DESIGN §5), with pure-torch references beside them.

``min_distance``, ``knn`` and ``scattering`` go through ``torch.ops.omasgan`` when the extension is built
(``backend() == "compiled"``) and through the reference implementations otherwise, with one warning.
"""

from omasgan.ops._extension import backend, build_info, cuda_built, load_error
from omasgan.ops._reference import knn_reference, min_distance_reference, scattering_reference
from omasgan.ops.knn import knn
from omasgan.ops.min_distance import min_distance
from omasgan.ops.scattering import scattering

__all__ = [
    "backend",
    "build_info",
    "cuda_built",
    "knn",
    "knn_reference",
    "load_error",
    "min_distance",
    "min_distance_reference",
    "scattering",
    "scattering_reference",
]
