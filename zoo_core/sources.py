"""Weight sources: how a reference such as ``torchvision:resnet50.IMAGENET1K_V2``, ``hf:bert-base-uncased@main``
or ``file:./runs/pneumonia`` becomes a backbone and its pretrained weights.

A source serves one scheme (the text before the first colon) and is registered with the
`register_sources` hook.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo_core.backbone import BackboneSpec, Preprocessing, TransferModel
from zoo_core.errors import ZooError


@dataclass
class PretrainedWeights:
    """What a source resolved a reference to.

    Attributes:
        spec: the backbone the weights belong to (for some sources, e.g. a Hugging Face config, a variant
            built from the weights' own configuration).
        state_dict: weights of the backbone module, without any head.
        origin: the reference made exact (default tags and branches resolved), recorded as lineage.
        files: a local folder holding the weights' companion files (tokenizer, card), if any.
        preprocessing: how inputs were prepared when these weights were trained (torchvision's V2 ResNet-50
            resizes to 232 then crops 224, V1 resizes to 256); None: the backbone's default.
        head_state: the source's own classifier on the backbone's features, as a `Head` state (what LEEP and NCE
            read in `zoo rank`): for zoo checkpoints the trained head, with its label names in
            `metadata["labels"]`; for timm and torchvision weights their ImageNet classifier (`source_head`).
        metadata: whatever the source knows (ImageNet categories, metrics, license, model card) for the card.
    """

    spec: BackboneSpec
    state_dict: Mapping[str, torch.Tensor]
    origin: str
    files: Path | None = None
    preprocessing: Preprocessing | None = None
    head_state: Mapping[str, torch.Tensor] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def source_head(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor] | None:
    """The source's classifier `prefix`weight / `prefix`bias as a `Head` state, when it is one linear layer
    (a 2-D weight and its bias) in `state`; None otherwise."""
    weight, bias = state.get(f"{prefix}weight"), state.get(f"{prefix}bias")
    if weight is None or bias is None or weight.dim() != 2 or bias.shape != weight.shape[:1]:
        return None
    return {"linear.weight": weight, "linear.bias": bias}


class WeightSource(ABC):
    """Serves one reference scheme. Subclasses set `name` (the scheme) and `description`."""

    name: str
    description: str = ""

    @abstractmethod
    def load(self, reference: str) -> PretrainedWeights:
        """Resolve `reference` (the part after ``scheme:``) to weights, raising `WeightsError` if it cannot."""

    def summary(self, plugin: str | None = None) -> dict[str, Any]:
        return {"name": self.name, "plugin": plugin, "description": self.description}


def split_reference(reference: str) -> tuple[str, str]:
    """``"torchvision:resnet50.DEFAULT"`` -> ``("torchvision", "resnet50.DEFAULT")``."""
    scheme, sep, rest = reference.partition(":")
    if not sep or not scheme or not rest:
        raise ZooError(f"weight reference '{reference}' must look like SCHEME:REFERENCE, "
                       "e.g. torchvision:resnet50.IMAGENET1K_V2, hf:bert-base-uncased or file:./checkpoint")
    return scheme, rest


def load_weights(reference: str) -> PretrainedWeights:
    """Resolve a full ``scheme:reference`` string through the registered source for its scheme."""
    from zoo_core.plugins import get_source

    scheme, rest = split_reference(reference)
    return get_source(scheme).load(rest)


def load_pretrained(reference: str, num_classes: int, dropout: float = 0.0) -> TransferModel:
    """The backbone named by `reference` with its pretrained weights and a new head for `num_classes`."""
    weights = load_weights(reference)
    model = weights.spec.create_model(num_classes, dropout=dropout)
    model.load_backbone_state(weights.state_dict, weights.origin)
    return model
