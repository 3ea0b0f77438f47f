"""The transfer recipe: one declarative, validated YAML file for base + strategy + head + data + training.

Every validation error names the field path (``train.epochs``) and what is allowed. ``zoo train --set
train.epochs=3`` overrides a field on the command line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from zoo_core.errors import ZooError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StrategyConfig(BaseModel):
    """`strategy: finetune` or `strategy: {name: freeze, trainable_from: layer3}`; the rest are its parameters."""

    model_config = ConfigDict(extra="allow")
    name: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class HeadConfig(_Section):
    dropout: float = Field(0.0, ge=0, lt=1)
    num_classes: int | None = Field(None, ge=1, description="checked against the data when given")


class DataConfig(_Section):
    reader: str
    args: dict[str, Any] = Field(default_factory=dict, description="the reader's arguments")
    train: str = "train"
    val: str | None = Field("val", description="validation split; carved from train when the data has none")
    test: str | None = "test"
    val_fraction: float = Field(0.1, gt=0, lt=1, description="share of train carved off when val is missing")
    labels_per_class: int | None = Field(None, ge=1, description="few-label regime: keep k train examples a class")
    image_size: int | None = Field(None, ge=16, description="resize whole images to this size, no crop (speed; "
                                                            "default: the base weights' own resize and crop)")
    max_length: int | None = Field(None, ge=8, description="override the tokenizer's max length (passed to the "
                                                           "backbone's encoder)")
    tokenizer: str | None = Field(None, description="tokenizer folder or hf: reference (default: the base's; "
                                                    "passed to the backbone's encoder)")
    augment: bool = Field(False, description="random crops and flips on training images")
    limit: dict[str, int] = Field(default_factory=dict, description="cap examples per split (quick runs)")


class EarlyStopping(_Section):
    patience: int = Field(3, ge=1)


class TrainConfig(_Section):
    # None: the strategy's default for the backbone's modality (zoo_core.defaults); recipe.yaml records the value
    epochs: int | None = Field(None, ge=1, description="default: the strategy's (see min_steps)")
    min_steps: int | None = Field(
        None, ge=0, description="at least this many optimizer steps: the default epoch count grows until it is "
                                "reached (default: the strategy's when epochs is not set, else 0)")
    batch_size: int = Field(32, ge=1)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float | None = Field(None, gt=0, description="the head's learning rate (default: the strategy's)")
    weight_decay: float = Field(0.01, ge=0)
    schedule: Literal["cosine", "constant"] | None = Field(None, description="default: the strategy's")
    warmup_epochs: float | None = Field(None, ge=0, description="default: the strategy's, else 0")
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    seed: int = 0
    device: str = Field("auto", description="auto, cpu, cuda, cuda:1, ...")
    early_stopping: EarlyStopping | None = None
    select_metric: Literal["accuracy", "macro_f1", "loss"] = Field(
        "accuracy", description="validation metric that chooses the kept epoch; ties go to the lower validation loss")
    class_weights: Literal["none", "balanced"] = Field(
        "none", description="balanced: weight the loss by n / (classes * n_class), for imbalanced training data")
    threshold: Literal["argmax", "validation"] = Field(
        "argmax", description="two classes: 'validation' chooses the decision threshold that maximises validation "
                              "macro-F1 (never the test split) and folds it into the head's bias")
    num_threads: int | None = Field(None, ge=1, description="CPU threads (per process)")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="bf16/fp16: autocast (fp16 needs CUDA and scales the loss with a GradScaler)")
    grad_accum_steps: int = Field(
        1, ge=1, description="split each batch into this many micro-batches (memory): batch_size stays the batch "
                             "of one optimizer step, so results match 1 up to BatchNorm's statistics")
    compile: bool = Field(False, description="torch.compile the trained module")
    sync_batchnorm: bool = Field(False, description="several CUDA processes: BatchNorm statistics over the global "
                                                    "batch (SyncBatchNorm) instead of each rank's share")
    find_unused_parameters: bool = Field(
        False, description="several processes: let DDP find parameters the forward skips (slower; only for a "
                           "backbone whose forward leaves a trainable parameter unused)")


class CardConfig(_Section):
    model_config = ConfigDict(extra="allow")
    intended_use: str | None = None
    limitations: str | None = None
    license: str | None = None
    datasets: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    language: list[str] = Field(default_factory=list)
    description: str | None = None


class Recipe(_Section):
    defaults: int | None = Field(
        None, ge=1, description="version of the per-strategy defaults (zoo_core.defaults): absent means the current "
                                "one; recipe.yaml records the version used, and one written before versions "
                                "existed is reproduced as version 1")
    base: str = Field(description="weight reference: torchvision:..., hf:..., file:PATH, or scratch")
    backbone: str | None = Field(None, description="inferred from the base; required with base: scratch")
    backbone_options: dict[str, Any] = Field(
        default_factory=dict, description="variant options, e.g. {pooling: pooler} for BERT (the layout "
                                          "transformers' BertForSequenceClassification loads)")
    strategy: StrategyConfig
    head: HeadConfig = Field(default_factory=HeadConfig)
    data: DataConfig
    train: TrainConfig = Field(default_factory=TrainConfig)
    card: CardConfig = Field(default_factory=CardConfig)
    output: str | None = Field(None, description="checkpoint folder to write")
    publish: str | None = Field(None, description="registry model (NAMESPACE/NAME) to publish the checkpoint to")
    publish_status: Literal["published", "draft"] = "published"

    @model_validator(mode="after")
    def _publish_needs_output(self) -> Recipe:
        if self.publish and not self.output:
            raise ValueError("publish needs an output folder (field 'output')")
        return self

    @field_validator("strategy", mode="before")
    @classmethod
    def _strategy_shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _scratch_needs_backbone(self) -> Recipe:
        if self.base == "scratch" and not self.backbone:
            raise ValueError("base 'scratch' needs a backbone name (field 'backbone')")
        return self


def format_validation_error(error: ValidationError, source: str) -> str:
    """One line per problem: `field.path: message (got value)`."""
    lines = []
    for item in error.errors():
        path = ".".join(str(p) for p in item["loc"]) or "(recipe)"
        got = "" if item["type"] in ("missing",) else f" (got {item.get('input')!r})"
        lines.append(f"{path}: {item['msg']}{got}")
    return f"invalid recipe {source}: " + "; ".join(lines)


def set_override(data: dict[str, Any], assignment: str) -> None:
    """Apply `a.b.c=value` to nested dicts; the value is parsed as YAML (numbers, booleans, lists)."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key:
        raise ZooError(f"--set expects FIELD=VALUE, e.g. train.epochs=3 (got {assignment!r})")
    *parents, leaf = key.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ZooError(f"--set {key}: '{part}' is not a section")
    node[leaf] = yaml.safe_load(raw)


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read a recipe file. Relative paths inside it are relative to the file; those given in `overrides`
    (``--set``, ``--output``) are relative to the current directory, as a shell user expects."""
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"recipe '{path}' does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ZooError(f"recipe '{path}' is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ZooError(f"recipe '{path}' must be a mapping of sections (base, strategy, data, ...)")
    resolve_paths(data, path.parent)
    return recipe_from_dict(data, overrides, source=str(path))


def recipe_from_dict(data: dict[str, Any], overrides: list[str] | None = None, source: str = "(dict)") -> Recipe:
    overridden: dict[str, Any] = {}
    for assignment in overrides or []:
        set_override(overridden, assignment)
    resolve_paths(overridden, Path.cwd())
    merged = _merge(data, overridden)
    try:
        return Recipe.model_validate(merged)
    except ValidationError as exc:
        raise ZooError(format_validation_error(exc, source)) from None


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        current = merged.get(key)
        if key == "strategy" and isinstance(current, str):
            current = {"name": current}
        merged[key] = _merge(current, value) if isinstance(value, dict) and isinstance(current, dict) else value
    return merged


def resolve_paths(data: dict[str, Any], base_dir: Path) -> None:
    """Make the recipe's relative paths absolute against `base_dir`, in place: data reader arguments that
    name existing files or folders, a `file:` base, and the output."""

    def fix(value: Any) -> Any:
        if isinstance(value, str) and value and not Path(value).is_absolute() and (base_dir / value).exists():
            return str((base_dir / value).resolve())
        if isinstance(value, dict):
            return {k: fix(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fix(v) for v in value]
        return value

    data_section = data.get("data")
    if isinstance(data_section, dict) and isinstance(data_section.get("args"), dict):
        data_section["args"] = fix(data_section["args"])
    base = data.get("base")
    if isinstance(base, str) and base.startswith("file:") and not Path(base[5:]).expanduser().is_absolute():
        data["base"] = "file:" + str((base_dir / base[5:]).resolve())
    output = data.get("output")
    if isinstance(output, str) and not Path(output).expanduser().is_absolute():
        data["output"] = str((base_dir / output).resolve())
