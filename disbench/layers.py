"""The layers of disbench and its plugin, bottom to top (``tests/test_layers.py`` keeps them).

A module imports from its own layer and the layers below it, never from one
above: what a module depends on is what it imports at its top. An import that
must go up carries :data:`UPWARD_MARK` and its reason on its line; there are at
most :data:`MAX_UPWARD` of them. A module not listed here belongs to nobody
yet: give it a layer.

    0 foundations     errors, files written atomically, paths, progress bars, the version, the hook specs
    1 infrastructure  name registries (one accessor loads the plugins), pluggable parts, determinism,
                      how a run is executed (threads, devices), run locks
    2 parts           datasets, models, β schedulers and closed-loop control, the metric interface
    3 configuration   gin parsing (protocol, run) and the run folder's files
    4 plugins         the plugin host and the built-in plugins (baselines, datasets, metrics)
    5 building        a configured run, built: dataset, model, fingerprint
    6 training aids   scoring a model with metrics; loggers that watch a run
    7 training        the loop, fused groups, checkpoints, the scalar log
    8 finished runs   a run rebuilt from its folder and evaluated; what its logs say
    9 figures         figures drawn from saved runs
   10 runs            start, resume and evaluate one run; replay it (verify)
   11 comparisons     many runs: plan, execute (locally or on Ray), tabulate, report
   12 interfaces      the Python API and the command line
   13 the package     ``import disbench`` (kept light) and ``python -m disbench``
   14 plugins outside the DynamicVAE plugin: it may use any of disbench, disbench never imports it
"""

from __future__ import annotations

# (name, modules): a module listed here stands for itself and, for a package, all its submodules.
LAYERS = (
    ("foundations", ("disbench.errors", "disbench.io", "disbench.paths", "disbench.progress", "disbench.version",
                     "disbench.hookspecs", "disbench.layers")),
    ("infrastructure", ("disbench.registry", "disbench.components", "disbench.determinism", "disbench.execution",
                        "disbench.locks")),
    ("parts", ("disbench.data", "disbench.models", "disbench.schedulers", "disbench.control", "disbench.metrics")),
    ("configuration", ("disbench.config", "disbench.runs")),
    ("plugins", ("disbench.plugins", "disbench.baselines", "disbench.datasets", "disbench.standard_metrics")),
    ("building", ("disbench.builders",)),
    ("training aids", ("disbench.evaluation", "disbench.loggers")),
    ("training", ("disbench.training",)),
    ("finished runs", ("disbench.trained", "disbench.analysis")),
    ("figures", ("disbench.figures",)),
    ("runs", ("disbench.runner", "disbench.verify")),
    ("comparisons", ("disbench.compare",)),
    ("interfaces", ("disbench.api", "disbench.cli")),
    ("the package", ("disbench", "disbench.__main__")),
    ("plugins outside", ("dvae_plugin",)),
)
PACKAGE_ONLY = {"disbench"}  # stands for itself only: its submodules each have their own layer

UPWARD_MARK = "# upward import:"  # on the import's line, followed by why it must go up
MAX_UPWARD = 5


def listed_as(module: str) -> str | None:
    """The entry of :data:`LAYERS` that stands for a dotted module name (None: no entry does)."""
    for _, modules in LAYERS:
        for listed in modules:
            if module == listed or (listed not in PACKAGE_ONLY and module.startswith(listed + ".")):
                return listed
    return None


def layer_of(module: str) -> int | None:
    """The layer (0 = bottom) of a dotted module name; None for a module no layer lists."""
    listed = listed_as(module)
    return None if listed is None else next(i for i, (_, modules) in enumerate(LAYERS) if listed in modules)
