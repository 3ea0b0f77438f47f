"""Adaptation strategies: which layer groups train, at which learning-rate scale, at which epoch.

A strategy is a pydantic model whose fields are its parameters (so a recipe's `strategy:` block is validated
with errors that name the field) and which speaks only of layer groups, ordered input to output with the
new head last. The engine builds one optimizer parameter group per layer group once, and applies the
strategy by switching `requires_grad` and each group's learning rate: groups are never added mid-training.

What the engine asks of a strategy is declared here, with defaults, and nothing else: a third-party strategy
can do all that a built-in one does (LoRA is an ordinary strategy, through `prepare` and `export`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict
from torch import nn

from zoo_core.errors import UnknownNameError, ZooError

if TYPE_CHECKING:
    from zoo_core.backbone import TransferModel

NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


class Strategy(BaseModel):
    """Base of every strategy. Subclasses set `name` and a docstring (its first line is the description)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ClassVar[str]
    uses_pretrained: ClassVar[bool] = True
    """False for strategies that start from random initialisation (`scratch`)."""
    frozen_backbone: ClassVar[bool] = False
    """True when no backbone parameter ever trains: the engine may then compute features once and cache them."""
    relation: ClassVar[str] = "finetune"
    """How a checkpoint made with this strategy relates to its base, in lineage and in the card's
    `base_model_relation`: ``finetune``, ``adapter``, ``merge`` or ``quantized`` (the Hub's vocabulary)."""
    requires: ClassVar[tuple[str, ...]] = ()
    """Distributions the strategy needs beyond its plugin's own requirements (their versions are recorded)."""

    @classmethod
    def description(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0]

    @classmethod
    def recommended(cls, modality: str) -> dict[str, dict[str, Any]]:
        """The current defaults for a backbone of this modality (``image`` or ``text``), used where a recipe sets
        nothing (zoo_core.defaults): ``{"train": {"lr": ..., "epochs": ..., "min_steps": ..., "schedule": ...},
        "strategy": {parameter: value}}``. Missing train keys come from the modality's common defaults."""
        return {}

    def check_groups(self, groups: list[str]) -> None:
        """Raise a `ZooError` if the strategy's parameters do not fit these layer groups."""

    def lr_scales(self, groups: list[str], epoch: int) -> list[float]:
        """Learning-rate scale per group at `epoch` (0-based); 0 means frozen. `groups[-1]` is the head."""
        raise NotImplementedError

    def trains_parameter(self, module: nn.Module, param_name: str, group: str) -> bool:
        """Whether this parameter (of `module`, in `group`) trains when its group does."""
        return True

    def head_options(self) -> dict[str, Any]:
        """Options for the new head (`feature_groups`, `standardize`): see `BackboneSpec.create_model`."""
        return {}

    def head_fit(self) -> dict[str, Any] | None:
        """For a frozen backbone: settings to fit the head to convergence on the cached features (`C`: inverse
        L2 strength or None for cross-validation, `folds`), instead of the epoch loop; None keeps the loop."""
        return None

    def probe_initialises_head(self) -> bool:
        """True to start the new head from the linear probe fitted on the base's features of the training split
        (LP-FT) instead of a random initialisation; the epoch loop then trains as usual."""
        return False

    def default_warmup_epochs(self) -> float:
        """Linear learning-rate warm-up, in epochs, when the recipe's `train.warmup_epochs` is not set."""
        return 0.0

    def freezes_norm_statistics(self) -> bool:
        """True to keep the base's normalisation statistics: norm layers run in eval mode while training
        (their affine parameters still train). Frozen groups' norm layers are in eval mode regardless."""
        return False

    def recomputes_norm_statistics(self) -> bool:
        """True to re-estimate BatchNorm's statistics on the whole training split once, before training (AdaBN,
        Li et al. 2016): the target's statistics, not the base's and not noisy per-batch ones. Together with
        `freezes_norm_statistics` they are then kept for the whole run."""
        return False

    def prepare(self, model: TransferModel) -> None:
        """Change the model in place before training: called once, after the base weights are loaded and
        before the optimizer's parameter groups are built (LoRA injects its adapters here)."""

    def export(self, model: TransferModel, folder: Path) -> None:
        """Called before the checkpoint's weights are written, with the folder being written: add files to it
        and bring the model to the shape `model.safetensors` should hold (LoRA saves its adapters, then merges
        them so the checkpoint loads without peft)."""

    @classmethod
    def summary(cls, plugin: str | None = None) -> dict[str, Any]:
        schema = cls.model_json_schema()
        params = {
            key: {k: v for k, v in prop.items() if k in ("type", "default", "description", "anyOf", "minimum")}
            for key, prop in schema.get("properties", {}).items()
        }
        return {"name": cls.name, "plugin": plugin, "description": cls.description(), "parameters": params,
                "uses_pretrained": cls.uses_pretrained, "frozen_backbone": cls.frozen_backbone,
                "relation": cls.relation}


def resolve_group(reference: str | int, groups: list[str]) -> int:
    """Index of a layer group given by name or by (possibly negative) position."""
    if isinstance(reference, int):
        if not -len(groups) <= reference < len(groups):
            raise ZooError(f"layer group index {reference} is out of range: this model has {len(groups)} "
                           f"groups ({', '.join(groups)})")
        return reference % len(groups)
    if reference not in groups:
        raise UnknownNameError("layer group", reference, groups)
    return groups.index(reference)


def decayed(groups: list[str], decay: float, base: float = 1.0) -> list[float]:
    """Discriminative learning rates: the head gets 1, the top backbone group `base`, each lower one x decay."""
    n = len(groups) - 1
    return [base * decay ** (n - 1 - i) for i in range(n)] + [1.0]
