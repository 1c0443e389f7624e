"""dvae_plugin: DynamicVAE (incremental non-linear PI control of β) for disbench."""

__version__ = "0.1.0"
