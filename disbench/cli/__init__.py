"""The ``disbench`` command line.

Each sub-command lives in its own module with ``add_parser(subparsers)``;
plugins add theirs through the ``register_commands`` hook. User errors
(:class:`disbench.errors.DisbenchError`) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys

from ..errors import DisbenchError
from ..execution import command_line
from ..plugins import get_host
from ..version import __version__

BUILTIN_COMMANDS = ("train", "evaluate", "compare", "sweep", "study", "report", "verify", "plugins", "data")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="disbench",
        description="Train, evaluate and compare disentangled representation learners under one protocol.",
        epilog="`disbench COMMAND --help` describes each command; `disbench plugins` lists what is installed.")
    parser.add_argument("--version", action="version", version=f"disbench {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in BUILTIN_COMMANDS:
        module = importlib.import_module(f".{name}_cmd", __name__)
        module.add_parser(subparsers)
    get_host().register_commands(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = command_line(sys.argv[1:] if argv is None else argv)  # recorded with each run
    try:
        return int(args.func(args) or 0)
    except DisbenchError as exc:
        # one line: gin appends "In call to configurable ..." to errors raised inside configurables
        message = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        print(f"disbench {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"disbench {args.command}: interrupted{how_to_continue(args)}", file=sys.stderr)
        return 130


def how_to_continue(args) -> str:
    """After "interrupted": the command that continues the work."""
    run_dir = getattr(args, "run_dir", None)
    if args.command == "train" and run_dir is not None:
        return f"; continue it with: disbench train --resume --out {shlex.quote(str(run_dir))}"
    if args.command in ("compare", "sweep", "study"):
        return "; run the same command again to continue (finished runs are kept, interrupted ones resume)"
    return ""


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
