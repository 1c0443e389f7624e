"""The harness's built-in loggers, registered as a plugin (``disbench.loggers``).

Loaded by name from ``BUILTIN_PLUGINS`` in :mod:`disbench.plugins`, like the
other built-ins. TensorBoard itself is imported only when a run uses it.
"""

from ..hookspecs import hookimpl
from .tensorboard import TensorBoardLogger


@hookimpl
def register_loggers(registry):
    registry.add("tensorboard", TensorBoardLogger)
