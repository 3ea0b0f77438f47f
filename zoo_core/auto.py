"""`strategy: auto`: train each candidate and keep the one best on validation, never on test.

No single default suits every base: fine-tuning with the base's BatchNorm statistics kept wins from a base near the
target and under-fits a distant one, and what a distant base needs (everything plastic, augmented images) costs a
near one (README "Defaults"). `auto` trains each candidate of `zoo_core.defaults.AUTO_CANDIDATES` (or the recipe's
own `candidates`) as a whole run from the same seed and data, compares them on the validation split (the recipe's
`select_metric` of each candidate's kept model, ties to the lower validation loss, then to the earlier candidate)
and returns the chosen run. What it writes is that run's concrete recipe (its strategy block and data values), so
`zoo reproduce` trains the chosen candidate alone; `resolved.auto` records every candidate's validation figures.
The cost is one run per candidate.
"""

from __future__ import annotations

import copy
import gc
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from zoo_core import defaults
from zoo_core.errors import DataError, ZooError
from zoo_core.plugins import get_reader
from zoo_core.recipe import Recipe, format_validation_error
from zoo_core.train import Engine, RunResult, selection_key

OVERLAY_SECTIONS = ("strategy", "data", "train")


def candidate_recipes(recipe: Recipe, modality: str) -> list[tuple[dict[str, Any], Recipe]]:
    """Each candidate's overlay and the whole recipe it makes, all validated before anything trains."""
    params = recipe.strategy.params
    overlays = params.get("candidates")
    if overlays is None:
        if defaults.version_of(recipe) == 1:
            raise ZooError("strategy 'auto' has no defaults in defaults version 1: list its candidates")
        overlays = defaults.AUTO_CANDIDATES.get(modality) or []
    if unknown := sorted(set(params) - {"candidates"}):
        raise ZooError(f"strategy.{unknown[0]}: strategy 'auto' takes only 'candidates'")
    if not overlays:
        raise ZooError(f"strategy 'auto' has no candidates for {modality} bases: list them under strategy.candidates")
    base = recipe.model_dump(mode="json", exclude_unset=True)
    made = []
    for i, overlay in enumerate(overlays):
        where = f"strategy.candidates[{i}]"
        if not isinstance(overlay, dict) or "strategy" not in overlay:
            raise ZooError(f"{where}: a candidate is a mapping with a 'strategy' (and optional 'data', 'train')")
        if extra := sorted(set(overlay) - set(OVERLAY_SECTIONS)):
            raise ZooError(f"{where}.{extra[0]}: a candidate sets only {', '.join(OVERLAY_SECTIONS)}")
        strategy = overlay["strategy"]
        strategy = {"name": strategy} if isinstance(strategy, str) else dict(strategy)
        if strategy.get("name") == "auto":
            raise ZooError(f"{where}.strategy: a candidate of 'auto' cannot be 'auto'")
        merged = copy.deepcopy(base)
        merged["strategy"] = strategy
        for section in ("data", "train"):
            if overlay.get(section):
                merged[section] = {**merged.get(section, {}), **overlay[section]}
        try:
            made.append(({"strategy": strategy, **{k: overlay[k] for k in ("data", "train") if overlay.get(k)}},
                         Recipe.model_validate(merged)))
        except ValidationError as exc:
            raise ZooError(format_validation_error(exc, f"({where})")) from None
    return made


def choose(recipe: Recipe, progress: bool = True,
           log: Callable[[str], None] = lambda message: None) -> tuple[Engine, RunResult]:
    """Train every candidate; the chosen one's engine and result, with `result.extra['auto']` saying why."""
    if recipe.data.val is None:
        raise DataError("strategy 'auto' chooses on the validation split: the recipe has none (data.val: null)")
    modality = get_reader(recipe.data.reader).modality  # declared by the reader: no data read for it
    candidates = candidate_recipes(recipe, modality)
    metric = recipe.train.select_metric
    best: tuple[tuple[float, ...], int, Engine, RunResult] | None = None
    report = []
    for i, (overlay, sub) in enumerate(candidates):
        log(f"auto: candidate {i + 1} of {len(candidates)}: {describe(overlay)}")
        engine = Engine(sub, progress=progress, log=log)
        if engine.data.val is None or not len(engine.data.val):
            raise DataError("strategy 'auto' chooses on the validation split: this data has none")
        result = engine.train()
        # the kept model on validation, the same figures for a trained or a fitted head
        validation = engine.evaluate(engine.data.val)
        key = selection_key({f"val_{k}": v for k, v in validation.items()}, metric)
        report.append({"candidate": overlay, "description": describe(overlay),
                       "strategy": {"name": engine.strategy.name, **engine.strategy.model_dump(mode="json")},
                       "best_epoch": result.best_epoch, "validation": validation})
        log(f"auto: candidate {i + 1}: validation {metric} {validation[metric]:.4f}, loss {validation['loss']:.4f}")
        if best is None or key > best[0]:  # ties keep the earlier candidate
            best = (key, i, engine, result)
        else:
            del engine, result
            gc.collect()
    _, chosen, engine, result = best
    tie = "" if metric == "loss" else ", ties to the lower validation loss, then to the earlier candidate"
    result.extra["auto"] = {"rule": f"validation {metric} of each candidate's kept model{tie}",
                            "validation_size": len(engine.data.val), "chosen": chosen, "candidates": report}
    log(f"auto: kept candidate {chosen + 1}: {report[chosen]['description']}")
    return engine, result


def describe(overlay: dict[str, Any]) -> str:
    """A candidate as its strategy's name and the values it sets, for the log and the card."""
    strategy = overlay["strategy"]
    settings = [f"{k} {v}" for k, v in strategy.items() if k != "name"]
    settings += [f"{section}.{k} {v}" for section in ("data", "train") for k, v in (overlay.get(section) or {}).items()]
    return strategy["name"] + (f" ({', '.join(settings)})" if settings else "")
