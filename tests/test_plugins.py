"""Plugin discovery: built-ins through the same hooks, entry points, broken and conflicting plugins."""

from __future__ import annotations

import inspect
import json

import pytest
from torch import nn

import zoo_core
from zoo_core import hookspecs
from zoo_core.errors import DuplicateNameError
from zoo_core.plugins import DEFAULT_PLUGINS, KINDS, get_catalog, register_plugin, unregister_plugin


def test_builtins_and_installed_plugins_contribute_through_the_hooks():
    plugins = get_catalog().plugins
    for builtin in DEFAULT_PLUGINS:
        assert plugins[builtin].builtin and plugins[builtin].error is None
    assert set(plugins["zoo_core.builtin.strategies"].contributions["strategy"]) >= {
        "linear-probe", "freeze", "finetune", "gradual-unfreeze", "bitfit", "lora", "scratch"}
    assert set(plugins["zoo_core.builtin.readers"].contributions["reader"]) == {"imagefolder", "npz", "idx", "csv"}
    assert set(plugins["zoo_core.builtin.sources"].contributions["source"]) == {"file", "scratch", "zoo"}
    assert "resnet50" in plugins["torchvision"].contributions["backbone"]
    assert "torchvision" in plugins["torchvision"].contributions["source"]
    assert "all-minilm-l6-v2" in plugins["transformers"].contributions["backbone"]
    assert plugins["tinynet"].contributions["backbone"] == ["tinynet"]
    assert plugins["torchvision"].version == "0.1.0"


def test_every_hook_is_documented_and_implemented():
    specs = {name for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("register_")}
    assert specs == set(KINDS.values())
    pm = get_catalog().pm
    for name in specs:
        assert getattr(hookspecs, name).__doc__.strip()
        assert inspect.signature(getattr(hookspecs, name)).parameters.keys() == {"register"}
        assert getattr(pm.hook, name).get_hookimpls(), f"no plugin implements {name}"


class _Duplicate:
    @zoo_core.hookimpl
    def register_backbones(self, register):
        import zoo_tinynet

        zoo_tinynet.register_backbones(register)


def test_two_plugins_registering_one_name_is_an_error_naming_both(fresh_catalog):
    register_plugin(_Duplicate(), name="copycat")
    try:
        with pytest.raises(DuplicateNameError, match="'tinynet'.*'tinynet' and plugin 'copycat'"):
            zoo_core.get_backbone("resnet18")
        assert "registered by both" in get_catalog().plugins["copycat"].error
    finally:
        unregister_plugin("copycat")
    assert zoo_core.get_backbone("tinynet").name == "tinynet"


def test_a_runtime_plugin_contributes_like_an_installed_one(fresh_catalog):
    class Extra:
        @zoo_core.hookimpl
        def register_backbones(self, register):
            register(zoo_core.BackboneSpec(
                name="one-layer", family="toy", modality="image", feature_dim=4,
                build=lambda: nn.Sequential(nn.Flatten(), nn.LazyLinear(4)), groups=lambda m: [("all", m)],
                preprocessing=zoo_core.ImagePreprocessing()))

    register_plugin(Extra(), name="extra")
    try:
        assert "one-layer" in zoo_core.list_backbones("one-*")
    finally:
        unregister_plugin("extra")
    assert zoo_core.list_backbones("one-*") == []


def test_broken_plugin_is_reported_by_name_and_others_still_load(zoo, plugin_site):
    plugin_site.add("zoo_broken", "raise ImportError('needs a library that is not installed')")
    result = zoo("plugins", "--json", env=plugin_site.env, check=True)
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    assert "ImportError: needs a library that is not installed" in plugins["zoo_broken"]["error"]
    assert plugins["torchvision"]["error"] is None and plugins["torchvision"]["backbones"]
    assert "zoo plugin 'zoo_broken' failed to load" in result.stderr
    listed = zoo("backbones", "--json", env=plugin_site.env, check=True)
    assert len(json.loads(listed.stdout)) >= 15


def test_installed_duplicate_fails_commands_and_shows_in_plugins(zoo, plugin_site):
    plugin_site.add("zoo_dupe", inspect.cleandoc('''
        from zoo_core import hookimpl
        from zoo_torchvision import backbone_specs

        @hookimpl
        def register_backbones(register):
            register(backbone_specs()[0])
        '''))
    result = zoo("backbones", env=plugin_site.env)
    assert result.returncode == 2
    assert "backbone 'resnet18' is registered by both plugin 'torchvision' and plugin 'zoo_dupe'" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    listing = json.loads(zoo("plugins", "--json", env=plugin_site.env, check=True).stdout)
    errors = {p["name"]: p["error"] for p in listing}
    assert "zoo_dupe" in errors["torchvision"] and "torchvision" in errors["zoo_dupe"]


def test_zoo_load_plugins_chooses_entry_points(zoo):
    only_builtins = json.loads(zoo("plugins", "--json", env={"ZOO_LOAD_PLUGINS": ""}, check=True).stdout)
    assert {p["name"] for p in only_builtins} == set(DEFAULT_PLUGINS)
    chosen = json.loads(zoo("plugins", "--json", env={"ZOO_LOAD_PLUGINS": "tinynet"}, check=True).stdout)
    assert {p["name"] for p in chosen} == {*DEFAULT_PLUGINS, "tinynet"}
