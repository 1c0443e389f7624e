import pytest

from disbench.errors import DisbenchError, DuplicateNameError, UnknownNameError
from disbench.registry import Registry


def test_add_get_and_names():
    reg = Registry("model")
    reg.add("vae", int, source="a")
    assert reg.get("vae") is int
    assert "vae" in reg and len(reg) == 1
    assert reg.names() == ["vae"] and reg.source("vae") == "a"


def test_duplicate_names_both_sources():
    reg = Registry("model")
    reg.add("vae", int, source="plugin_a")
    with pytest.raises(DuplicateNameError) as info:
        reg.add("vae", float, source="plugin_b")
    assert "plugin_a" in str(info.value) and "plugin_b" in str(info.value)
    assert reg.get("vae") is int


def test_unknown_name_lists_known_and_closest():
    reg = Registry("model")
    for name in ("dynamicvae", "controlvae", "vae"):
        reg.add(name, object)
    with pytest.raises(UnknownNameError) as info:
        reg.get("dynamicvea")
    msg = str(info.value)
    assert "unknown model 'dynamicvea'" in msg
    assert "controlvae, dynamicvae, vae" in msg
    assert "did you mean 'dynamicvae'" in msg
    assert isinstance(info.value, DisbenchError)


def test_remove_source_drops_only_that_plugin():
    reg = Registry("metric")
    reg.add("a", 1, source="p1")
    reg.add("b", 2, source="p2")
    reg.remove_source("p2")
    assert reg.names() == ["a"]


def test_register_decorator():
    reg = Registry("scheduler")

    @reg.register("mine")
    class Mine:
        pass

    assert reg.get("mine") is Mine


def test_add_all_names_the_source():
    reg = Registry("model")
    reg.add_all({"a": 1, "b": 2}, source="p")
    assert reg.names(source="p") == ["a", "b"]
