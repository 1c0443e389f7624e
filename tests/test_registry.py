import pytest

from disbench.errors import DisbenchError, DuplicateNameError, InvalidNameError, UnknownNameError
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


@pytest.mark.parametrize("name", ["../../x", "..", ".", ".hidden", "a/b", "a\\b", "a..b", "a b", "-x", "_x",
                                  "x" * 65, "mod\u00e8le", "a:b", "a\nb", ""])
def test_names_that_are_not_safe_folder_names_are_refused(name):
    reg = Registry("model")
    with pytest.raises(InvalidNameError) as info:
        reg.add(name, object, source="p")
    assert isinstance(info.value, DisbenchError) and isinstance(info.value, ValueError)
    assert "model name" in str(info.value) or "non-empty" in str(info.value)
    assert len(reg) == 0


@pytest.mark.parametrize("name", ["vae", "beta-vae_2.0", "A1", "0x", "x" * 64, "dsprites.full"])
def test_safe_names_are_accepted(name):
    reg = Registry("model")
    reg.add(name, object)
    assert reg.get(name) is object


def test_invalid_name_error_says_what_is_allowed():
    with pytest.raises(InvalidNameError, match=r"'\.\./\.\./x' is not allowed: names become folder names, "
                                               r"so use letters, digits, '_', '\.' and '-'"):
        Registry("metric").add("../../x", object)


def test_get_of_a_path_like_name_is_the_ordinary_unknown_name_error():
    reg = Registry("model")
    reg.add("vae", object)
    for name in ("../../x", "/etc/passwd", ["vae"]):
        with pytest.raises(UnknownNameError) as info:
            reg.get(name)
        assert str(info.value).startswith(f"unknown model {name!r}; known: vae")


def test_unknown_name_error_appends_the_note():
    reg = Registry("scheduler")
    reg.add("constant", object)
    with pytest.raises(UnknownNameError) as info:
        reg.get("constnat")
    assert str(info.value) == "unknown scheduler 'constnat'; known: constant (did you mean 'constant'?)"
    reg.note = "plugin 'y' is disabled ($DISBENCH_DISABLE_PLUGINS); the name may come from it"
    with pytest.raises(UnknownNameError) as info:
        reg.get("pi")
    assert str(info.value) == ("unknown scheduler 'pi'; known: constant; plugin 'y' is disabled "
                               "($DISBENCH_DISABLE_PLUGINS); the name may come from it")
