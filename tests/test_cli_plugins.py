"""`disbench plugins` lists the CLI sub-commands each plugin adds through `register_commands`."""

import argparse
import json

from disbench.cli import main
from disbench.cli.plugins_cmd import run_plugins
from disbench.hookspecs import hookimpl
from disbench.plugins import PluginHost, set_host


def _hello(args):
    print("hello")
    return 0


class Greeter:
    @hookimpl
    def register_commands(subparsers):
        p = subparsers.add_parser("hello", help="say hello")
        p.set_defaults(func=_hello)


class HalfGreeter:
    """Adds a command, then fails: the failure is its error, the command it added is still listed."""

    @hookimpl
    def register_commands(subparsers):
        subparsers.add_parser("half").set_defaults(func=_hello)
        raise RuntimeError("second command failed")


def _plugin(data, name):
    return next(p for p in data["plugins"] if p["name"] == name)


def test_plugins_json_and_text_list_each_plugins_commands(capsys):
    set_host(PluginHost(entry_points=False, extra_plugins={"greeter": Greeter}))
    try:
        assert main(["plugins", "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert _plugin(data, "greeter")["contributes"] == {"commands": ["hello"]}
        assert "commands" not in _plugin(data, "disbench.baselines")["contributes"]  # built-ins are not plugins'
        assert main(["plugins"]) == 0
        out = capsys.readouterr().out
        assert "\ngreeter [loaded] (" in out and "    commands: hello" in out
        assert main(["hello"]) == 0 and capsys.readouterr().out == "hello\n"
    finally:
        set_host(None)


def test_run_plugins_outside_the_cli_parser_still_lists_commands(capsys):
    """`run_plugins` called directly (no `disbench` parser built yet) builds it to learn the commands."""
    host = PluginHost(entry_points=False, extra_plugins={"greeter": Greeter})
    set_host(host)
    try:
        assert not host.commands_registered
        assert run_plugins(argparse.Namespace(json=True)) == 0
        assert _plugin(json.loads(capsys.readouterr().out), "greeter")["contributes"] == {"commands": ["hello"]}
    finally:
        set_host(None)


def test_a_failing_register_commands_is_reported_with_what_it_added(capsys):
    host = PluginHost(entry_points=False, extra_plugins={"half": HalfGreeter})
    host.register_commands(argparse.ArgumentParser().add_subparsers())
    info = host.plugins["half"]
    assert info.error.startswith("register_commands: RuntimeError: second command failed")
    assert info.contributes["commands"] == ["half"]


def test_dvae_plugin_lists_its_stability_command(full_host, capsys):
    assert main(["plugins", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert _plugin(data, "dvae")["contributes"]["commands"] == ["stability"]
    assert main(["plugins"]) == 0
    assert "    commands: stability" in capsys.readouterr().out
