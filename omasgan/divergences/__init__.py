"""Distribution metrics for adversarial training, as plugins (DESIGN §4).

>>> from omasgan import divergences
>>> sorted(divergences.available())[:3]
['gan', 'js', 'kl']
>>> divergences.get("klwgan", temperature=5.0).name
'klwgan'
"""

from omasgan.divergences.base import Divergence
from omasgan.divergences.builtin import KLWGAN, Wasserstein
from omasgan.divergences.fdivergence import FDivergence
from omasgan.divergences.functional import exp_linear, lambertw_exp, log_mean_exp, log_softplus
from omasgan.divergences.hookspecs import hookimpl
from omasgan.divergences.registry import (
    ENTRY_POINT_GROUP,
    DivergenceInfo,
    available,
    get,
    info,
    load_errors,
    plugin_manager,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "KLWGAN",
    "Divergence",
    "DivergenceInfo",
    "FDivergence",
    "Wasserstein",
    "available",
    "exp_linear",
    "get",
    "hookimpl",
    "info",
    "lambertw_exp",
    "load_errors",
    "log_mean_exp",
    "log_softplus",
    "plugin_manager",
]
