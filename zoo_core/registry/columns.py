"""What a pushed version's own files put into the database's columns, checked against those columns before any row
is written: the card's `pipeline_tag`, `license`, `library_name` and tags, config.json's backbone, recipe.yaml's
strategy, metrics.json's names, an external parent's reference. Each is a string of at most the column's size, so a
card cannot make PostgreSQL refuse the row (a 500, once) nor SQLite store what PostgreSQL would not.
"""

from __future__ import annotations

from typing import Any

from zoo_core.errors import ContentError
from zoo_core.registry.models import LineageEdge, Model, Version, VersionMetric


def fit(value: Any, column: Any, what: str) -> str | None:
    """`value` if it is None or a string without NUL that fits `column` (a model's column, e.g. `Model.task`, or a
    text column of any length); else ContentError naming `what` and the limit."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ContentError(f"{what} must be a string, not {type(value).__name__} ({value!r:.60})")
    if "\x00" in value:  # PostgreSQL cannot store it in text (SQLite can: the rule is the same on both)
        raise ContentError(f"{what} holds a NUL character")
    length = column.property.columns[0].type.length
    if length is not None and len(value) > length:
        raise ContentError(f"{what} is {len(value):,} characters ({value[:40]!r}...); at most {length}")
    return value


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def version_columns(meta: dict[str, Any], config: dict[str, Any], recipe: Any) -> dict[str, str | None]:
    """The model's and the version's columns read from its card metadata (`meta`), config.json and recipe.yaml."""
    backbone = _mapping(config.get("backbone"))
    if not backbone and config.get("model_type"):  # a Hugging Face config (zoo import)
        backbone = {"family": config["model_type"], "name": None}
    strategy = _mapping(recipe).get("strategy")
    return {
        "task": fit(meta.get("pipeline_tag") or None, Model.task, "the card's pipeline_tag"),
        "license": fit(meta.get("license") or None, Model.license, "the card's license"),
        "library": fit(meta.get("library_name"), Version.library, "the card's library_name"),
        "modality": fit(backbone.get("modality") or None, Model.modality, "config.json's backbone modality"),
        "backbone": fit(backbone.get("name"), Version.backbone, "config.json's backbone name"),
        "family": fit(backbone.get("family"), Version.family, "config.json's backbone family"),
        "strategy": fit(strategy if isinstance(strategy, str) else _mapping(strategy).get("name"), Version.strategy,
                        "recipe.yaml's strategy name"),
    }


def check_tags(tags: Any) -> list[str]:
    """A model's tags: a list of strings (the card's `tags`, or the push's; one string is one tag)."""
    if tags is None:
        return []
    if isinstance(tags, str):
        return [tags]
    if not isinstance(tags, list | tuple) or not all(isinstance(t, str) and "\x00" not in t for t in tags):
        raise ContentError(f"tags are a list of strings (without NUL), not {tags!r:.60}")
    return list(tags)


def check_metric_name(name: str) -> str:
    return fit(name, VersionMetric.name, f"metric name {name[:40]!r}")


def check_external_parent(parent: str) -> str:
    return fit(parent, LineageEdge.parent_external, "an external parent (base_model)")
