"""The harness's built-in datasets, registered as an ordinary plugin.

Loaded by name from ``BUILTIN_PLUGINS`` in :mod:`disbench.plugins`, like the
baselines, so the shipped protocols run with every entry-point plugin
disabled. The dataset modules (h5py, Pillow) are imported when the hook runs.
"""

from ..hookspecs import hookimpl


@hookimpl
def register_datasets(registry):
    from . import DATASETS

    registry.add_all(DATASETS)
