"""`zoo train`: run a recipe and write its checkpoint (weights, config, card, resolved recipe) atomically."""

from __future__ import annotations

import contextlib
import json
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml
from safetensors.torch import save_file

from zoo_core.card import render_card
from zoo_core.checkpoint import write_checkpoint
from zoo_core.recipe import Recipe
from zoo_core.train import Engine, RunResult


def package_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in ("transfer-zoo", "torch", "torchvision", "transformers", "peft", "zoo-torchvision",
                 "zoo-transformers"):
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


def resolved_recipe(recipe: Recipe, engine: Engine, result: RunResult) -> dict[str, Any]:
    """Exactly what produced the checkpoint: every default explicit, plus data fingerprints and versions."""
    data = recipe.model_dump(mode="json")
    data["backbone"] = engine.spec.name
    data["strategy"] = {"name": engine.strategy.name, **engine.strategy.model_dump(mode="json")}
    data["resolved"] = {
        "base": engine.weights.origin if engine.weights else "scratch",
        "classes": result.classes,
        "data": engine.data.provenance,
        "best_epoch": result.best_epoch,
        "history": result.history,
        "test_metrics": result.metrics,
        "versions": package_versions(),
    }
    return data


def run_recipe(recipe: Recipe, progress: bool = True, log=print, overwrite: bool = False) -> RunResult:
    engine = Engine(recipe, progress=progress, log=log)
    output = Path(recipe.output).expanduser() if recipe.output else None
    if output is not None and output.exists() and not overwrite:
        from zoo_core.errors import ZooError

        raise ZooError(f"output '{output}' already exists; choose another output or pass --overwrite")
    result = engine.train()
    if output is None:
        return result
    adapter = None
    if engine.adapter is not None:
        from zoo_core.lora import adapter_state, merge_lora

        adapter = adapter_state(engine.model)
        merge_lora(engine.model)
    resolved = resolved_recipe(recipe, engine, result)
    origin = resolved["resolved"]["base"]
    task = "text-classification" if engine.spec.modality == "text" else "image-classification"

    def extras(folder: Path) -> None:
        (folder / "recipe.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True))
        (folder / "metrics.json").write_text(json.dumps(result.metrics, indent=2) + "\n")
        (folder / "README.md").write_text(render_card(recipe=recipe, result=result, origin=origin,
                                                      data_provenance=engine.data.provenance,
                                                      versions=resolved["resolved"]["versions"], task=task))
        if engine.spec.modality == "text":
            engine.encoder.tokenizer.save_pretrained(folder)
        if adapter is not None:
            save_file(adapter, folder / "adapter_model.safetensors")
            config = engine.adapter.to_dict()
            config["target_modules"] = sorted(config["target_modules"])
            (folder / "adapter_config.json").write_text(json.dumps(config, indent=2, default=str) + "\n")

    preprocessing = engine.spec.preprocessing
    if recipe.data.image_size and engine.spec.modality == "image":
        from dataclasses import replace

        preprocessing = replace(preprocessing, input_size=recipe.data.image_size,
                                resize_size=recipe.data.image_size)
    result.checkpoint = write_checkpoint(output, engine.model.cpu(), result.classes, preprocessing=preprocessing,
                                         extra=extras, overwrite=overwrite)
    if recipe.publish:
        from zoo_core.card import RELATIONS
        from zoo_core.client import open_registry

        parent = origin if origin != "scratch" else None
        relation = RELATIONS.get(engine.strategy.name, "finetune") if parent else None
        version = open_registry().push(result.checkpoint, recipe.publish, status=recipe.publish_status,
                                  parent=parent, relation=relation)
        result.extra["published"] = f"{version.model_id}@{version.number}"
        log(f"published {version.model_id}@{version.number}")
    return result


