"""Per-strategy defaults, versioned: what `strategy: {name: X}` alone trains with, and how old recipes keep theirs.

A recipe may leave out the learning rate, the epochs, the schedule and the strategy's own parameters; the engine
fills each one in from the strategy's recommended defaults for the backbone's modality (`Strategy.recommended`),
before anything trains, and recipe.yaml records every resolved value (so the written recipe no longer depends on
any default). The defaults carry a version, the recipe's top-level `defaults` field:

- version 1: the defaults before per-strategy defaults existed (5 epochs, lr 1e-3, cosine, the strategy classes'
  own field defaults, no minimum of steps);
- version 2: per strategy and modality, with a minimum number of optimizer steps (with 64 labelled images, 5
  epochs of batches of 32 were 10 steps: the fine-tune collapsed to constant predictions);
- version 3 (`CURRENT`): `bitfit` and `lora` on image bases keep the base's BatchNorm statistics, as `finetune`
  does (`freeze_norm_stats: true`; bench/transfer.py: better in all 12 cells measured, e.g. ImageNet
  EfficientNet-Lite0 at 20 labels a class bitfit 0.692 -> 0.845, lora 0.793 -> 0.856), and the linear probe
  chooses its L2 strength by held-out accuracy (`cv_score`), not log-loss.

A recipe that does not say which version it wants gets the current one. A recipe.yaml the engine wrote before this
field existed is read as version 1 by `zoo reproduce` (zoo_core.reproduce): it trains exactly as it did. From
version 2 on, the engine writes `defaults: N` into every recipe.yaml.

A version's values never change once released: a recipe.yaml records `defaults: N` and every value resolved, but a
strategy parameter added later is absent from it and takes that version's recommendation, so a new recommended
value (or a new parameter recommended on) needs a new version, and recipes of the old version must keep getting
its values: `Strategy.recommended` gives the current ones, `SUPERSEDED` what an older version had instead.

`train.min_steps` lengthens the default epoch count only: a recipe that sets `train.epochs` itself gets those
epochs (its `min_steps` is 0 unless it sets that too).
"""

from __future__ import annotations

import math
from typing import Any

from zoo_core.errors import ZooError

CURRENT = 3
VERSIONS = (1, 2, 3)

# Version 1: the train section's defaults before this module existed (TrainConfig's field defaults then).
LEGACY_TRAIN: dict[str, Any] = {"epochs": 5, "lr": 1e-3, "schedule": "cosine", "min_steps": 0}

# Version 2, per modality, for every strategy (a strategy's `recommended` overrides them). 100 steps: with 64
# labelled images and batches of 32 that is 50 epochs, where 5 epochs (10 steps) left the fine-tune at chance.
MODALITY_TRAIN: dict[str, dict[str, Any]] = {
    "image": {"epochs": 10, "lr": 1e-3, "schedule": "cosine", "min_steps": 100},
    "text": {"epochs": 5, "lr": 1e-3, "schedule": "cosine", "min_steps": 100},
}


# What a version recommended where the next one changed it, per strategy: a recipe of an older version gets the
# current recommendations with these laid over them, from the newest change back to its own version.
SUPERSEDED: dict[int, dict[str, dict[str, Any]]] = {
    # version 3: the linear probe's C by held-out accuracy (it lost to scikit-learn's probe on CIFAR-10 from the
    # MNIST chain when chosen by log-loss); bitfit and lora keep the base's BatchNorm statistics on image bases
    # (their field default, false, is what version 2 had: text bases recommend nothing there in any version)
    2: {"linear-probe": {"cv_score": "log_loss"}, "bitfit": {"freeze_norm_stats": False},
        "lora": {"freeze_norm_stats": False}},
}

# The strategy recommended per modality when nothing is known about the data: fixed in advance, the one
# bench/fewshot.py holds to beating the plain baselines. Text: lora, chosen on bench/fewshot.py's sst2dev target
# (sentences held out of SST-2's train split; never its test split), k = 32: lora 0.745, 0.680, 0.744 (seeds 0-2),
# finetune 0.703, 0.658 (seeds 0-1). Naming a strategy changes no recipe's values, so no new defaults version.
RECOMMENDED = {"image": "auto", "text": "lora"}

# What `strategy: auto` trains when its recipe names no candidates, per modality: each a strategy block with the
# data and train values it needs, all trained from the same seed; the one best on validation is kept (zoo_core.auto).
# Images: finetune as recommended (BatchNorm keeps the base's statistics, the backbone at half the head's rate),
# which wins from a base near the target and under-fits a distant one (a digit base on photographs: training loss
# 1.9 after 100 steps); and finetune with everything plastic (statistics follow the batches, the backbone at the
# head's rate) on augmented images, which a distant base needs and a near one is hurt by (README "Defaults").
AUTO_CANDIDATES: dict[str, list[dict[str, Any]]] = {
    "image": [{"strategy": {"name": "finetune"}},
              {"strategy": {"name": "finetune", "freeze_norm_stats": False, "backbone_lr_scale": 1.0,
                            "layer_decay": 1.0}, "data": {"augment": True}}],
    "text": [{"strategy": {"name": "lora"}}],
}


def version_of(recipe) -> int:
    version = recipe.defaults if recipe.defaults is not None else CURRENT
    if version not in VERSIONS:
        raise ZooError(f"defaults: version {version} is unknown; this zoo knows {', '.join(map(str, VERSIONS))}")
    return version


def strategy_parameters(strategy_cls, params: dict[str, Any], modality: str, version: int) -> dict[str, Any]:
    """The strategy's parameters: the recipe's, over the recommended ones for this version and modality
    (version 1: none, the strategy class's field defaults as they were)."""
    if version == 1:
        return dict(params)
    recommended = dict(strategy_cls.recommended(modality).get("strategy", {}))
    for older in range(CURRENT - 1, version - 1, -1):
        recommended.update(SUPERSEDED.get(older, {}).get(strategy_cls.name, {}))
    known = strategy_cls.model_fields
    return {**{k: v for k, v in recommended.items() if k in known}, **params}


def resolve_train(recipe, strategy, modality: str, train_size: int, version: int) -> tuple[dict[str, Any], dict]:
    """The train section with every default this module owns filled in, and the record of which values came
    from defaults (for recipe.yaml). `train_size` is the number of training examples (for `min_steps`)."""
    cfg = recipe.train
    given = {name for name in cfg.model_fields_set if getattr(cfg, name) is not None}
    table = dict(LEGACY_TRAIN) if version == 1 else train_table(type(strategy), modality)
    values: dict[str, Any] = {}
    used: dict[str, Any] = {}
    for name in ("epochs", "lr", "schedule"):
        values[name] = getattr(cfg, name) if name in given else table[name]
        if name not in given:
            used[f"train.{name}"] = values[name]
    # a minimum of steps stretches the default epoch count only; explicit epochs are kept as written
    min_steps = cfg.min_steps if "min_steps" in given else (0 if "epochs" in given else table["min_steps"])
    if "min_steps" not in given:
        used["train.min_steps"] = min_steps
    steps_per_epoch = max(1, math.ceil(train_size / cfg.batch_size))
    if min_steps and values["epochs"] * steps_per_epoch < min_steps:
        values["epochs"] = math.ceil(min_steps / steps_per_epoch)
        used["train.epochs"] = values["epochs"]
        used["train.epochs_from"] = (f"min_steps {min_steps}: {steps_per_epoch} steps an epoch "
                                     f"({train_size} examples, batch {cfg.batch_size})")
    values["min_steps"] = min_steps
    if "warmup_epochs" not in given:
        values["warmup_epochs"] = strategy.default_warmup_epochs()
        used["train.warmup_epochs"] = values["warmup_epochs"]
    return values, used


def train_table(strategy_cls, modality: str) -> dict[str, Any]:
    """The current version's train defaults of a strategy for a modality."""
    return {**LEGACY_TRAIN, **MODALITY_TRAIN.get(modality, {}), **strategy_cls.recommended(modality).get("train", {})}


def describe(strategy_cls, modality: str) -> dict[str, Any]:
    """The current version's defaults of a strategy for a modality, for listings and the README."""
    return {"train": train_table(strategy_cls, modality),
            "strategy": strategy_cls.recommended(modality).get("strategy", {})}
