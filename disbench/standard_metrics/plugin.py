"""The harness's disentanglement_lib metrics, registered as an ordinary plugin.

Loaded by name from ``BUILTIN_PLUGINS`` in :mod:`disbench.plugins`, like the
baselines and the datasets. Registering imports no scikit-learn: the metrics
import it when they run.
"""

from ..hookspecs import hookimpl
from . import METRICS


@hookimpl
def register_metrics(registry):
    registry.add_all(METRICS)
