"""The harness's built-in datasets, registered as an ordinary plugin.

Loaded by name from ``BUILTIN_PLUGINS`` in :mod:`disbench.plugins`, like the
baselines, so the shipped protocols run with every entry-point plugin
disabled.
"""

from ..hookspecs import hookimpl
from . import DATASETS


@hookimpl
def register_datasets(registry):
    registry.add_all(DATASETS)
