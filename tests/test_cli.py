from __future__ import annotations

import json


def test_backbones_json_lists_fifteen_across_families_from_two_plugins(zoo):
    rows = json.loads(zoo("backbones", "--json", check=True).stdout)
    assert len(rows) >= 15
    required = {"name", "family", "modality", "plugin", "num_params", "feature_dim", "groups", "weights"}
    assert all(required <= row.keys() for row in rows)
    assert {r["family"] for r in rows} >= {"resnet", "vgg", "inception", "alexnet", "bert"}
    assert {r["plugin"] for r in rows} >= {"torchvision", "transformers", "tinynet"}
    resnet50 = next(r for r in rows if r["name"] == "resnet50")
    assert resnet50["num_params"] == 23_508_032 and resnet50["feature_dim"] == 2048
    assert resnet50["groups"] == ["stem", "layer1", "layer2", "layer3", "layer4"]
    weights = {w["tag"]: w for w in resnet50["weights"]}
    assert weights["IMAGENET1K_V2"]["reference"] == "torchvision:resnet50.IMAGENET1K_V2"


def test_backbones_wildcard_in_natural_order(zoo):
    rows = json.loads(zoo("backbones", "resnet*", "--json", check=True).stdout)
    torchvision = [r["name"] for r in rows if r["plugin"] == "torchvision"]  # zoo-timm adds resnet10t, ...
    assert torchvision == ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
    table = zoo("backbones", "vgg1?_bn", check=True).stdout
    assert "vgg11_bn" in table and "vgg19_bn" in table and "vgg16 " not in table


def test_plugins_lists_builtins_both_plugins_and_the_test_plugin(zoo):
    rows = {p["name"]: p for p in json.loads(zoo("plugins", "--json", check=True).stdout)}
    assert {"zoo_core.builtin.strategies", "torchvision", "transformers", "tinynet"} <= rows.keys()
    for row in rows.values():
        assert set(row) >= {"name", "version", "backbones", "strategies", "readers", "sources", "error"}
    assert rows["tinynet"]["backbones"] == ["tinynet"]
    assert "tinynet" in zoo("plugins", check=True).stdout


def test_strategies_and_info(zoo):
    names = [s["name"] for s in json.loads(zoo("strategies", "--json", check=True).stdout)]
    assert {"linear-probe", "freeze", "finetune", "gradual-unfreeze", "bitfit", "lora", "scratch"} <= set(names)
    info = json.loads(zoo("info", "inception_v3", "--json", check=True).stdout)
    assert info["kind"] == "backbone" and info["preprocessing"]["input_size"] == 299
    assert json.loads(zoo("info", "freeze", "--json", check=True).stdout)["parameters"]["trainable_from"]
    assert json.loads(zoo("info", "npz", "--json", check=True).stdout)["kind"] == "reader"
    assert json.loads(zoo("info", "hf", "--json", check=True).stdout)["plugin"] == "transformers"
    assert "layer4" in zoo("info", "resnet18", check=True).stdout


def test_unknown_name_is_one_line_with_suggestions_and_no_traceback(zoo):
    result = zoo("info", "resnet5")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: unknown name 'resnet5'; did you mean resnet50")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    result = zoo("backbones", "resnt*")
    assert result.returncode == 2 and "unknown backbone pattern 'resnt*'" in result.stderr
