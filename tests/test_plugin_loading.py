"""How the plugin host loads plugins that are wrong in ways that used to pass
silently: names that are not safe folder names, misspelt hooks; and what
unknown-name errors say when a plugin is not loaded."""

import types

import pytest

from disbench.cli import main
from disbench.errors import UnknownNameError
from disbench.hookspecs import hookimpl
from disbench.plugins import PluginHost, set_host
from disbench.schedulers import ConstantBeta


class PathName:
    """Registers a fine scheduler, then a model whose name would escape runs/."""

    @hookimpl
    def register_schedulers(registry):
        registry.add("fine", ConstantBeta)

    @hookimpl
    def register_models(registry):
        registry.add("../../escape", object)


def test_a_plugin_registering_an_unsafe_name_fails_to_load():
    host = PluginHost(entry_points=False, extra_plugins={"pathname": PathName})
    error = host.plugins["pathname"].error
    assert "model name '../../escape' is not allowed" in error and "names become folder names" in error
    assert "../../escape" not in host.registry("models")
    assert "fine" not in host.registry("schedulers")  # everything it added is undone
    assert host.plugins["pathname"].contributes == {}
    assert "vae" in host.registry("models")


class Misspelt:
    """`register_scheduler` (no s) is no disbench hook."""

    @hookimpl
    def register_models(registry):
        registry.add("misspelt_model", object)

    @hookimpl
    def register_scheduler(registry):
        registry.add("never", ConstantBeta)


def _module_plugin(source: str) -> types.ModuleType:
    module = types.ModuleType("tiny_plugin_module")
    exec(source, module.__dict__)
    return module


def test_a_misspelt_hook_is_the_plugins_load_error_naming_the_closest_hook():
    host = PluginHost(entry_points=False, extra_plugins={"misspelt": Misspelt})
    error = host.plugins["misspelt"].error
    assert error.startswith("unknown hook 'register_scheduler' (did you mean 'register_schedulers'?)")
    assert "\n" not in error
    assert "misspelt_model" not in host.registry("models")  # the plugin is not loaded at all
    assert "never" not in host.registry("schedulers")
    assert host.pm.get_plugin("misspelt") is None
    assert host.plugins["disbench.baselines"].error is None  # others are unaffected


def test_a_misspelt_hook_in_a_module_plugin_with_two_unknown_hooks():
    module = _module_plugin(
        "from disbench.hookspecs import hookimpl\n"
        "@hookimpl\n"
        "def register_metric(registry):\n"
        "    pass\n"
        "@hookimpl\n"
        "def register_datasetz(registry):\n"
        "    pass\n")
    host = PluginHost(entry_points=False, extra_plugins={"mod": module})
    error = host.plugins["mod"].error
    assert error.startswith("unknown hooks 'register_datasetz' (did you mean 'register_datasets'?), "
                            "'register_metric' (did you mean 'register_metrics'?)")


def test_an_optional_extra_hook_is_allowed():
    module = _module_plugin(
        "from disbench.hookspecs import hookimpl\n"
        "from disbench.schedulers import ConstantBeta\n"
        "@hookimpl(optionalhook=True)\n"
        "def register_future_thing(registry):\n"
        "    pass\n"
        "@hookimpl\n"
        "def register_schedulers(registry):\n"
        "    registry.add('optional_ok', ConstantBeta)\n")
    host = PluginHost(entry_points=False, extra_plugins={"optional": module})
    assert host.plugins["optional"].error is None
    assert host.registry("schedulers").source("optional_ok") == "optional"


class Explodes:
    @hookimpl
    def register_schedulers(registry):
        raise RuntimeError("needs the frobnicator library " + "and a very long explanation " * 20)


def test_unknown_name_errors_mention_a_plugin_that_failed_to_load():
    host = PluginHost(entry_points=False, extra_plugins={"exploding": Explodes})
    with pytest.raises(UnknownNameError) as info:
        host.registry("schedulers").get("frob")
    message = str(info.value)
    assert message.startswith("unknown scheduler 'frob'; known: constant")
    assert "plugin 'exploding' failed to load (RuntimeError: needs the frobnicator library" in message
    assert message.endswith("...); the name may come from it")
    assert len(message) < 250 and "\n" not in message
    # every kind: the failed plugin might have contributed anything
    with pytest.raises(UnknownNameError, match="plugin 'exploding' failed to load"):
        host.registry("models").get("frob_model")


def test_unknown_name_errors_mention_disabled_plugins(monkeypatch):
    monkeypatch.setenv("DISBENCH_DISABLE_PLUGINS", "misspelt_off")
    host = PluginHost(entry_points=False, extra_plugins={"misspelt_off": Misspelt, "exploding": Explodes})
    with pytest.raises(UnknownNameError) as info:
        host.registry("metrics").get("nope")
    message = str(info.value)
    assert "plugin 'misspelt_off' is disabled ($DISBENCH_DISABLE_PLUGINS)" in message
    assert "plugin 'exploding' failed to load (RuntimeError:" in message
    assert message.endswith("the name may come from one of them")


def test_no_note_when_every_plugin_loaded():
    host = PluginHost(entry_points=False)
    with pytest.raises(UnknownNameError) as info:
        host.registry("models").get("vea")
    assert str(info.value).endswith("(did you mean 'vae'?)")
    assert host.registry("models").note is None


def test_the_cli_prints_the_note_on_one_line(capsys):
    set_host(PluginHost(entry_points=False, extra_plugins={"exploding": Explodes}))
    try:
        assert main(["data", "prepare", "frob"]) == 2
    finally:
        set_host(None)
    err = capsys.readouterr().err
    assert err.startswith("disbench data: error: unknown dataset 'frob'")
    assert "plugin 'exploding' failed to load" in err and len(err.strip().splitlines()) == 1
