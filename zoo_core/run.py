"""`zoo train`: run a recipe and write its checkpoint (weights, config, card, resolved recipe) atomically.

Under torchrun every rank runs the recipe (zoo_core.distributed); rank 0 alone logs, writes and publishes, once
every rank has finished training without error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from zoo_core import distributed
from zoo_core.card import render_card
from zoo_core.checkpoint import write_checkpoint
from zoo_core.determinism import nondeterminism_log
from zoo_core.determinism import record as reproducibility
from zoo_core.plugins import get_catalog
from zoo_core.recipe import Recipe
from zoo_core.sources import split_reference
from zoo_core.train import Engine, RunResult


def package_versions(recipe: Recipe, engine: Engine) -> dict[str, str]:
    """python, torch and transfer-zoo, plus the plugins this run used (backbone, strategy, reader, weight
    source) with their installed requirements, and what the strategy requires (peft for lora)."""
    uses = [("backbone", engine.spec.name), ("strategy", engine.strategy.name), ("reader", recipe.data.reader)]
    if recipe.base != "scratch":
        uses.append(("source", split_reference(recipe.base)[0]))
    return get_catalog().versions_for(uses, extra=engine.strategy.requires)


def resolved_recipe(recipe: Recipe, engine: Engine, result: RunResult) -> dict[str, Any]:
    """Exactly what produced the checkpoint: every default explicit, plus data fingerprints and versions."""
    data = recipe.model_dump(mode="json")
    data["backbone"] = engine.spec.name
    data["strategy"] = {"name": engine.strategy.name, **engine.strategy.model_dump(mode="json")}
    data["resolved"] = {
        "base": engine.weights.origin if engine.weights else "scratch",
        "classes": result.classes,
        "defaults_used": engine.defaults_used,  # which of the values above came from defaults (zoo_core.defaults)
        "data": engine.data.provenance,
        "best_epoch": result.best_epoch,
        "history": result.history,
        "test_metrics": result.metrics,
        **{key: result.extra[key] for key in ("selection", "probe", "head_init", "threshold", "test_per_class_f1",
                                              "auto")
           if key in result.extra},
        "versions": package_versions(recipe, engine),
        # how it ran: train.batch_size is the global batch, split among these processes
        "distributed": {"world_size": engine.world.size, "backend": engine.world.backend,
                        "device": engine.device.type, "precision": recipe.train.precision,
                        "grad_accum_steps": recipe.train.grad_accum_steps},
        **reproducibility(recipe, engine, result.extra.get("nondeterministic", [])),
    }
    return data


def run_recipe(recipe: Recipe, progress: bool = True, log=print, overwrite: bool = False) -> RunResult:
    with distributed.session(recipe.train.device) as world:
        if not world.main:
            progress, log = False, (lambda message: None)
        output = Path(recipe.output).expanduser() if recipe.output else None
        if world.main and output is not None and output.exists() and not overwrite:
            from zoo_core.errors import ZooError

            raise ZooError(f"output '{output}' already exists; choose another output or pass --overwrite")
        with nondeterminism_log() as nondeterministic:
            if recipe.strategy.name == "auto":  # several whole runs, the best on validation kept
                from zoo_core.auto import choose

                engine, result = choose(recipe, progress=progress, log=log)
            else:
                engine = Engine(recipe, progress=progress, log=log)
                result = engine.train()
        recipe = engine.recipe  # every default resolved: what recipe.yaml and the card record
        result.extra["nondeterministic"] = nondeterministic
        distributed.barrier(world)  # nothing is written unless every rank got here
        if output is None or not world.main:
            return result
        return _write(recipe, engine, result, output, log, overwrite)


def _write(recipe: Recipe, engine: Engine, result: RunResult, output: Path, log, overwrite: bool) -> RunResult:
    resolved = resolved_recipe(recipe, engine, result)
    origin = resolved["resolved"]["base"]
    task = "text-classification" if engine.spec.modality == "text" else "image-classification"

    def extras(folder: Path) -> None:
        (folder / "recipe.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True))
        (folder / "metrics.json").write_text(json.dumps(result.metrics, indent=2) + "\n")
        (folder / "README.md").write_text(render_card(recipe=recipe, result=result, origin=origin,
                                                      data_provenance=engine.data.provenance,
                                                      versions=resolved["resolved"]["versions"], task=task,
                                                      relation=engine.strategy.relation,
                                                      reproducibility=resolved["resolved"]))
        engine.encoder.save(folder)  # what predicting needs besides config.json (a tokenizer's files)

    result.checkpoint = write_checkpoint(output, engine.model.cpu(), result.classes,
                                         preprocessing=engine.preprocessing, extra=extras, overwrite=overwrite,
                                         export=engine.strategy.export)
    if recipe.publish:
        from zoo_core.client import open_registry

        parent = origin if origin != "scratch" else None
        relation = engine.strategy.relation if parent else None
        version = open_registry().push(result.checkpoint, recipe.publish, status=recipe.publish_status,
                                  parent=parent, relation=relation)
        result.extra["published"] = f"{version.model_id}@{version.number}"
        log(f"published {version.model_id}@{version.number}")
    return result


