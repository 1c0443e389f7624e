"""The plugin's hook implementations: what dvae_plugin contributes to disbench.

Found by the harness through the ``disbench`` entry point in setup.py, exactly
as a third-party plugin is.
"""

from disbench.hookspecs import hookimpl


@hookimpl
def register_commands(subparsers):
    from .stability.cli import add_parser

    add_parser(subparsers)
