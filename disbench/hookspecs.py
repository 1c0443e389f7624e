"""The hooks a disbench plugin may implement.

Each registration hook receives a :class:`disbench.registry.Registry` and adds
to it (``registry.add(name, obj)``). Plugins are loaded, and these hooks run,
before any gin file is parsed, so whatever a plugin registers can be bound
from gin.
"""

import pluggy

hookspec = pluggy.HookspecMarker("disbench")
hookimpl = pluggy.HookimplMarker("disbench")


@hookspec
def register_models(registry):
    """Add model classes: ``registry.add("name", ModelClass)``.

    A model class subclasses :class:`disbench.models.VAEModel`.
    """


@hookspec
def register_architectures(registry):
    """Add encoder/decoder architectures: ``registry.add("name", build)``, where
    ``build(num_channels, latent_dim)`` returns an initialised ``(encoder, decoder)``
    (see :mod:`disbench.models.architecture`). A protocol chooses one with
    ``Protocol.architecture``.
    """


@hookspec
def register_schedulers(registry):
    """Add β-scheduler classes (see :class:`disbench.schedulers.BetaScheduler`)."""


@hookspec
def register_setpoints(registry):
    """Add KL set-point classes (see :class:`disbench.schedulers.Setpoint`)."""


@hookspec
def register_metrics(registry):
    """Add metric classes (see :mod:`disbench.metrics`)."""


@hookspec
def register_datasets(registry):
    """Add dataset factories: ``factory(data_root=None) -> ImageDataset``."""


@hookspec
def register_loggers(registry):
    """Add loggers that watch runs: ``registry.add("name", LoggerClass)``.

    A logger class (see :class:`disbench.loggers.Logger`) is called once per run
    (per member of a fused group) as ``LoggerClass(run_info)`` before training
    starts, then receives the run's config once, each row written to
    ``scalars.jsonl``, metric results (during training and at the end), images
    every ``Protocol.image_every`` steps, and ``close(status)``; all but the
    constructor run in a background thread. An optional classmethod ``check()``
    raises :class:`disbench.errors.DisbenchError` when the logger cannot work
    here (a library not installed); it runs before a run is created. Runs
    choose loggers with ``--logger NAME`` or ``Run.loggers``.
    """


@hookspec
def register_commands(subparsers):
    """Add CLI sub-commands to the ``disbench`` argparse ``subparsers``.

    A command sets ``func=callable(args) -> int`` as its parser default.
    """
