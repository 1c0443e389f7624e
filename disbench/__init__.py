"""disbench: a plugin-based, gin-configured benchmark harness for disentangled
representation learning."""

__version__ = "0.1.0"
