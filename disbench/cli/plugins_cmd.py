"""``disbench plugins``: what is loaded and what each plugin contributes
(registered names by kind, and the CLI sub-commands it adds as ``commands``)."""

from __future__ import annotations

import json

from ..plugins import get_host
from . import build_parser


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("plugins", help="list plugins and what they register")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_plugins)


def run_plugins(args) -> int:
    host = get_host()
    if not host.commands_registered:  # run outside `disbench`'s own parser: build it to learn plugin commands
        build_parser()
    if args.json:
        print(json.dumps(host.as_json(), indent=2))
        return 0
    for info in host.plugins.values():
        state = "disabled" if info.disabled else ("FAILED" if info.error else "loaded")
        version = f" {info.version}" if info.version else ""
        print(f"{info.name}{version} [{state}] ({info.module})")
        if info.error:
            print(f"    error: {info.error}")
        for kind, names in info.contributes.items():
            print(f"    {kind}: {', '.join(names)}")
    return 0
