"""The entry-point registry, tested with fake distributions (no real plugin needed)."""

from __future__ import annotations

import sys

import pytest

from localkit_registry import (
    HERMETIC_ENV,
    ContractError,
    DuplicateEntryError,
    OptionError,
    PluginLoadError,
    Registry,
    RegistryError,
    UnknownEntryError,
    natural_key,
)

GROUP = "localkit.testgroup"


def registry(**kw) -> Registry:
    return Registry(GROUP, owner="owner-dist", kind="widget", **kw)


def test_listing_never_imports_plugin_code(fake_dist):
    fake_dist(
        "heavy",
        {GROUP: {"heavy": "heavy_mod:make"}},
        {"heavy_mod": "raise RuntimeError('imported at listing time')\n"},
    )
    reg = registry()
    assert reg.names() == ["heavy"]
    assert [e.distribution for e in reg.entries()] == ["heavy"]
    assert "heavy_mod" not in sys.modules


def test_names_are_naturally_sorted_and_filtered(fake_dist):
    names = ["net10", "net2", "net1", "other", "net2_small"]
    fake_dist("nets", {GROUP: {n: "nets_mod:f" for n in names}}, {"nets_mod": "def f(): pass\n"})
    reg = registry()
    assert reg.names() == ["net1", "net2", "net2_small", "net10", "other"]
    assert reg.names("net*", exclude="*_small") == ["net1", "net2", "net10"]
    assert reg.names(["other", "net1?"]) == ["net10", "other"]
    assert sorted(["b10", "b9", "a"], key=natural_key) == ["a", "b9", "b10"]


def test_load_is_lazy_and_memoised(fake_dist):
    fake_dist(
        "counter",
        {GROUP: {"thing": "counter_mod:Thing"}},
        {"counter_mod": "LOADS = []\nLOADS.append(1)\nclass Thing: pass\n"},
    )
    reg = registry()
    first = reg.load("thing")
    assert reg.load("thing") is first
    assert sys.modules["counter_mod"].LOADS == [1]
    assert reg.provenance() == {
        "thing": {
            "group": GROUP,
            "name": "thing",
            "value": "counter_mod:Thing",
            "distribution": "counter",
            "version": "1.0",
        }
    }


def test_unknown_name_names_group_close_matches_and_the_fix(fake_dist):
    fake_dist("nets", {GROUP: {"resnet50": "m:f", "resnet18": "m:f", "vit": "m:f"}})
    with pytest.raises(UnknownEntryError) as info:
        registry(hint="Try timm.").load("resnet5")
    msg = str(info.value)
    assert "'resnet5'" in msg and f"'{GROUP}'" in msg
    assert "resnet50" in msg and "resnet18" in msg and "vit," not in msg
    assert "misspelled" in msg and "not installed" in msg and "Try timm." in msg
    assert isinstance(info.value, LookupError)


def test_duplicate_names_from_two_distributions_name_both(fake_dist):
    fake_dist(
        "first-plugin", {GROUP: {"same": "a_mod:f", "only_a": "a_mod:f"}}, {"a_mod": "def f(): return 'a'\n"}
    )
    fake_dist("second-plugin", {GROUP: {"same": "b_mod:f"}}, {"b_mod": "def f(): return 'b'\n"})
    reg = registry()
    assert reg.names() == ["only_a", "same"]
    with pytest.raises(DuplicateEntryError) as info:
        reg.load("same")
    assert "first-plugin" in str(info.value) and "second-plugin" in str(info.value)
    assert reg.load("only_a")() == "a"


def test_a_broken_plugin_is_reported_by_distribution_and_spares_the_group(fake_dist):
    fake_dist(
        "broken-plugin",
        {GROUP: {"broken": "broken_mod:f"}},
        {"broken_mod": "import module_that_does_not_exist\n"},
        version="0.3",
    )
    fake_dist("good-plugin", {GROUP: {"good": "good_mod:f"}}, {"good_mod": "def f(): return 42\n"})
    reg = registry()
    with pytest.raises(PluginLoadError) as info:
        reg.load("broken")
    assert "broken-plugin 0.3" in str(info.value) and "module_that_does_not_exist" in str(info.value)
    assert info.value.entry.distribution == "broken-plugin"
    assert reg.load("good")() == 42
    loaded, problems = reg.load_all()
    assert list(loaded) == ["good"] and len(problems) == 1


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        ("raise SystemExit(3)\n", "SystemExit: 3"),
        ("import sys\nsys.exit('no display')\n", "SystemExit: no display"),
        ("class Stop(BaseException): pass\nraise Stop('odd plugin')\n", "Stop: odd plugin"),
        ("raise GeneratorExit('closed')\n", "GeneratorExit: closed"),
    ],
)
def test_a_plugin_that_exits_on_import_is_a_broken_plugin(fake_dist, source, shown):
    module = f"exiting_{abs(hash(source))}"
    fake_dist("exiting-plugin", {GROUP: {"exits": f"{module}:f"}}, {module: source}, version="2.0")
    fake_dist("fine-plugin", {GROUP: {"fine": "fine_mod:f"}}, {"fine_mod": "def f(): return 'ok'\n"})
    reg = registry()
    with pytest.raises(PluginLoadError, match=rf"'exits' from distribution 'exiting-plugin 2.0'.*{shown}"):
        reg.load("exits")
    loaded, problems = reg.load_all()
    assert list(loaded) == ["fine"] and [p.entry.name for p in problems] == ["exits"]


def test_ctrl_c_while_a_plugin_imports_still_stops_the_program(fake_dist):
    fake_dist("slow-plugin", {GROUP: {"slow": "slow_mod:f"}}, {"slow_mod": "raise KeyboardInterrupt\n"})
    with pytest.raises(KeyboardInterrupt):
        registry().load("slow")


def test_every_error_is_a_registry_error():
    for error in (UnknownEntryError, DuplicateEntryError, PluginLoadError, ContractError, OptionError):
        assert issubclass(error, RegistryError)


def test_hermetic_switch_keeps_only_the_owners_entries(fake_dist, monkeypatch):
    fake_dist("owner-dist", {GROUP: {"builtin": "m:f"}})
    fake_dist("third-party", {GROUP: {"plugin": "m:f"}})
    assert registry().names() == ["builtin", "plugin"]
    monkeypatch.setenv(HERMETIC_ENV, "1")
    reg = registry()
    assert reg.names() == ["builtin"]
    with pytest.raises(UnknownEntryError, match=HERMETIC_ENV):
        reg.entry("plugin")
    monkeypatch.setenv(HERMETIC_ENV, "0")
    assert registry().names() == ["builtin", "plugin"]


def test_hermetic_owner_is_compared_by_canonical_distribution_name(fake_dist, monkeypatch):
    fake_dist("Owner_Dist", {GROUP: {"builtin": "m:f"}})
    fake_dist("owner-dist-extras", {GROUP: {"other": "m:f"}})
    monkeypatch.setenv(HERMETIC_ENV, "1")
    assert registry().names() == ["builtin"]


def test_refresh_sees_newly_installed_plugins(fake_dist):
    reg = registry()
    assert reg.names() == []
    fake_dist("late", {GROUP: {"late": "m:f"}})
    assert reg.names() == []
    reg.refresh()
    assert reg.names() == ["late"]
