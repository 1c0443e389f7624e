import json
import textwrap

from disbench.hookspecs import hookimpl
from disbench.plugins import PluginHost


class BrokenAtRegistration:
    """Registers a model, then fails in another hook: everything it added is undone."""

    @hookimpl
    def register_models(registry):
        registry.add("half_registered", object)

    @hookimpl
    def register_metrics(registry):
        raise RuntimeError("metric setup exploded")


class StealsVAE:
    @hookimpl
    def register_models(registry):
        registry.add("vae", object)


def test_builtins_load_like_a_plugin():
    host = PluginHost(entry_points=False)
    assert {"vae", "betavae_h"} <= set(host.registry("models").names())
    assert host.registry("models").source("vae") == "disbench.baselines"
    assert host.plugins["disbench.baselines"].error is None


def test_registration_failure_is_isolated():
    host = PluginHost(entry_points=False, extra_plugins={"broken": BrokenAtRegistration})
    info = host.plugins["broken"]
    assert "metric setup exploded" in info.error
    assert "half_registered" not in host.registry("models")
    assert "vae" in host.registry("models")  # the rest keeps working


def test_duplicate_name_fails_the_second_plugin_naming_both():
    host = PluginHost(entry_points=False, extra_plugins={"thief": StealsVAE})
    assert "disbench.baselines" in host.plugins["thief"].error
    assert "thief" in host.plugins["thief"].error
    assert host.registry("models").source("vae") == "disbench.baselines"


def _fake_distribution(tmp_path, name, module_source, module_name):
    """An installed distribution on sys.path with a `disbench` entry point."""
    (tmp_path / f"{module_name}.py").write_text(textwrap.dedent(module_source))
    dist = tmp_path / f"{name}-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    (dist / "entry_points.txt").write_text(f"[disbench]\n{name} = {module_name}\n")


GOOD_PLUGIN = """
    from disbench.hookspecs import hookimpl
    from disbench.schedulers import ConstantBeta

    class Half(ConstantBeta):
        def __init__(self):
            super().__init__(0.5)

    @hookimpl
    def register_schedulers(registry):
        registry.add("half", Half)
"""


def test_entry_point_plugins_load_with_version(tmp_path, monkeypatch):
    _fake_distribution(tmp_path, "goodplug", GOOD_PLUGIN, "goodplug_mod")
    _fake_distribution(tmp_path, "badplug", "raise ImportError('missing dependency xyz')\n", "badplug_mod")
    monkeypatch.syspath_prepend(str(tmp_path))
    host = PluginHost()
    assert host.plugins["goodplug"].version == "1.2.3"
    assert host.registry("schedulers").source("half") == "goodplug"
    assert "missing dependency xyz" in host.plugins["badplug"].error
    assert "vae" in host.registry("models")


def test_environment_variable_disables_named_plugins(tmp_path, monkeypatch):
    _fake_distribution(tmp_path, "goodplug", GOOD_PLUGIN, "goodplug_mod2")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("DISBENCH_DISABLE_PLUGINS", "goodplug, other")
    host = PluginHost()
    assert host.plugins["goodplug"].disabled
    assert "half" not in host.registry("schedulers")


def test_plugins_json_shape(toy_host, capsys):
    from disbench.cli import main

    assert main(["plugins", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) >= {"plugins", "models", "schedulers", "setpoints", "metrics", "datasets"}
    assert {"vae", "betavae_h"} <= set(data["models"])
    assert "toy_squares" in data["datasets"]
    assert all({"name", "version", "error"} <= set(p) for p in data["plugins"])


def test_plugins_text_lists_contributions(toy_host, capsys):
    from disbench.cli import main

    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "disbench.baselines" in out
    assert "models: betatcvae, betavae_b, betavae_h, dipvae_i, dipvae_ii, factorvae, vae" in out
    assert "metrics: betavae_score, dci, factorvae_score, modularity, sap, unsupervised" in out


def test_installed_console_script_lists_builtins(installed_plugins_json):
    """The real `disbench` executable of the installed package."""
    data = installed_plugins_json
    assert {"vae", "betavae_h"} <= set(data["models"])


def test_installed_console_script_lists_plugin_commands(installed_plugins_json):
    """dvae_plugin adds `disbench stability` through register_commands."""
    dvae = next(p for p in installed_plugins_json["plugins"] if p["name"] == "dvae")
    assert dvae["contributes"]["commands"] == ["stability"]
