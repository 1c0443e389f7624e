"""disbench's version: one place that the package, the plugin host and each run's record read."""

__version__ = "0.1.0"
