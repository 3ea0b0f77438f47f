"""Backbones: what a plugin tells the core about an architecture, and the model the core builds from it.

A backbone module maps an input batch to features `[batch, feature_dim]`; the core adds the new head. Its
*layer groups* are listed in order from input to output, and every strategy speaks only of groups, which
is what makes each strategy work with each backbone from any plugin.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from torch import nn

from zoo_core.errors import WeightsError

Modality = Literal["image", "text"]


@dataclass(frozen=True)
class ImagePreprocessing:
    """How images are prepared for the backbone (torchvision's conventions).

    With `center_crop` (the default, as torchvision's and timm's weights are evaluated) the shorter side is
    resized to `resize_size` and the centre `input_size` square is cut out; without it the whole image is resized
    to `input_size` x `input_size` (what a recipe's `data.image_size` asks for, and what checkpoints written
    before `center_crop` existed were trained with).
    """

    input_size: int = 224
    resize_size: int = 256
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: Literal["bilinear", "bicubic", "nearest"] = "bilinear"
    center_crop: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"kind": "image", "input_size": self.input_size, "resize_size": self.resize_size,
                "mean": list(self.mean), "std": list(self.std), "interpolation": self.interpolation,
                "center_crop": self.center_crop}


@dataclass(frozen=True)
class TextPreprocessing:
    """How text is prepared: the tokenizer (a weight reference or folder holding its files) and max length."""

    tokenizer: str
    max_length: int = 128

    def as_dict(self) -> dict[str, Any]:
        return {"kind": "text", "tokenizer": self.tokenizer, "max_length": self.max_length}


Preprocessing = ImagePreprocessing | TextPreprocessing


def preprocessing_from_dict(data: Mapping[str, Any]) -> Preprocessing:
    data = dict(data)
    kind = data.pop("kind")
    if kind == "image":
        # a config without `center_crop` predates it: its model was trained on whole, squashed images
        return ImagePreprocessing(input_size=data["input_size"], resize_size=data["resize_size"],
                                  mean=tuple(data["mean"]), std=tuple(data["std"]),
                                  interpolation=data.get("interpolation", "bilinear"),
                                  center_crop=data.get("center_crop", False))
    return TextPreprocessing(**data)


@dataclass(frozen=True, kw_only=True)
class Weights:
    """One set of pretrained weights of a backbone, described as data (timm's pretrained configs).

    Args:
        reference: the weight reference a recipe's `base` takes, e.g. ``torchvision:resnet50.IMAGENET1K_V2``.
        tag: the short name of these weights among the backbone's, e.g. ``IMAGENET1K_V2``.
        preprocessing: how inputs must be prepared for these weights (None: the backbone's default).
        license: SPDX identifier or name of the weights' licence, when the source states one.
        dataset: the data set the weights were trained on, e.g. ``ImageNet-1K``.
        metrics: published results, e.g. ``{"ImageNet-1K": {"acc@1": 80.858}}``.
        num_classes: classes of the head the weights were trained with (the head itself is not loaded).
        recipe: where the training recipe of the weights is described (a link).
        description: one or two sentences from the source.
        default: whether the source picks these weights when no tag is given.
    """

    reference: str
    tag: str = ""
    preprocessing: Preprocessing | None = None
    license: str | None = None
    dataset: str | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    num_classes: int | None = None
    recipe: str | None = None
    description: str = ""
    default: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "tag": self.tag, "default": self.default,
                "preprocessing": self.preprocessing.as_dict() if self.preprocessing else None,
                "license": self.license, "dataset": self.dataset, "metrics": dict(self.metrics),
                "num_classes": self.num_classes, "recipe": self.recipe, "description": self.description}


class Encoder(Protocol):
    """Turns raw inputs (uint8 images, image files, texts) into what the backbone module takes."""

    def __call__(self, inputs: Any, augment: bool = False,
                 generator: torch.Generator | None = None) -> torch.Tensor | dict[str, torch.Tensor]: ...

    def save(self, folder: Path) -> None:
        """Write the files this encoder needs into a checkpoint folder (a tokenizer's); images need none."""


EncoderFactory = Callable[..., Encoder]
"""``factory(preprocessing, *, files=None, tokenizer=None, max_length=None) -> Encoder``. `files` is a folder the
encoder may read its files from (a checkpoint, or the base weights' companion files); `tokenizer` and `max_length`
are a recipe's `data.tokenizer` and `data.max_length` (None when not set)."""


def default_adapter_targets(backbone: nn.Module) -> list[str]:
    """Adapter targets when a backbone declares none: every conv and linear layer but a first (stem) conv,
    whose three input channels leave too little to adapt."""
    names = [name for name, module in backbone.named_modules()
             if isinstance(module, nn.Conv2d | nn.Linear) and module.weight.ndim > 1]
    if names and isinstance(backbone.get_submodule(names[0]), nn.Conv2d):
        names = names[1:]
    return names


@dataclass(frozen=True)
class LayerGroup:
    """A named slice of the network that strategies freeze, unfreeze or give a learning rate as one."""

    name: str
    modules: tuple[nn.Module, ...]

    def parameters(self) -> Iterator[nn.Parameter]:
        for module in self.modules:
            yield from module.parameters()


GroupsFn = Callable[[nn.Module], Sequence[tuple[str, nn.Module | Sequence[nn.Module]]]]


@dataclass(frozen=True, kw_only=True)
class BackboneSpec:
    """An architecture a plugin provides.

    Args:
        name: unique name, e.g. ``resnet50`` (weights are named ``name.TAG``, as timm and torchvision do).
        family: e.g. ``resnet``, ``vgg``, ``bert``; lets users filter and compare like with like.
        modality: ``image`` or ``text``.
        feature_dim: width of the features the backbone module returns, i.e. the new head's input.
        build: builds the backbone module, randomly initialised, returning features ``[batch, feature_dim]``.
        groups: given a built backbone, its layer groups in order from input to output, as ``(name, modules)``.
        preprocessing: default input preparation (mean/std/size, or tokenizer); weights may carry their own.
        weights: the known pretrained weights, described (`Weights`); a bare reference string such as
            ``torchvision:resnet50.IMAGENET1K_V2`` is accepted and described by its reference alone.
        encoder: builds the `Encoder` that turns raw inputs into the backbone's inputs (see `EncoderFactory`).
            None: the core's image encoder for images; a text backbone must bring its own (its tokenizer).
        adapter_targets: given a built backbone, the names of the modules adapter strategies (LoRA) adapt by
            default. None: every conv and linear layer but the stem conv (`default_adapter_targets`).
        options: architecture options needed to rebuild this exact variant (saved in checkpoints).
        variant: given saved `options`, the spec of that variant (for families configured by a config file,
            such as BERT); None when the name alone fixes the architecture.
        unused_keys: prefixes of pretrained weights this variant does not use (BERT's pooler when features are
            mean-pooled); they are skipped instead of refused.
        hub_export: `(model, labels) -> (config, state_dict)` in a Hugging Face library's own layout, for
            checkpoints that library can load directly (BERT with its pooler -> BertForSequenceClassification).
        hub_import: maps such a state dict back to the zoo's names.
        description: one line for listings.
    """

    name: str
    family: str
    modality: Modality
    feature_dim: int
    build: Callable[[], nn.Module] = field(repr=False, compare=False)
    groups: GroupsFn = field(repr=False, compare=False)
    preprocessing: Preprocessing
    weights: tuple[Weights, ...] = ()
    encoder: EncoderFactory | None = field(default=None, repr=False, compare=False)
    adapter_targets: Callable[[nn.Module], list[str]] | None = field(default=None, repr=False, compare=False)
    options: Mapping[str, Any] = field(default_factory=dict, compare=False)
    variant: Callable[[Mapping[str, Any]], BackboneSpec] | None = field(default=None, repr=False, compare=False)
    description: str = ""
    unused_keys: tuple[str, ...] = ()
    hub_export: Callable[..., tuple[dict[str, Any], dict[str, torch.Tensor]]] | None = field(
        default=None, repr=False, compare=False)
    hub_import: Callable[[Mapping[str, torch.Tensor]], dict[str, torch.Tensor]] | None = field(
        default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        described = tuple(w if isinstance(w, Weights) else Weights(reference=w, tag=w.rpartition(".")[2])
                          for w in self.weights)
        object.__setattr__(self, "weights", described)

    def find_weights(self, reference: str) -> Weights | None:
        """The described weights with this reference, if the spec lists them."""
        return next((w for w in self.weights if w.reference == reference), None)

    def make_encoder(self, preprocessing: Preprocessing | None = None, **options: Any) -> Encoder:
        """The input encoder for `preprocessing` (default: the spec's); `options` as `EncoderFactory` says."""
        preprocessing = preprocessing or self.preprocessing
        if self.encoder is not None:
            return self.encoder(preprocessing, **options)
        if isinstance(preprocessing, ImagePreprocessing):
            from zoo_core.pipeline import ImageEncoder

            return ImageEncoder(preprocessing)
        raise WeightsError(f"backbone '{self.name}' takes {self.modality} but declares no encoder for it "
                           "(BackboneSpec.encoder)")

    def adapter_target_names(self, backbone: nn.Module) -> list[str]:
        """The modules of `backbone` that adapters target by default."""
        return (self.adapter_targets or default_adapter_targets)(backbone)

    @cached_property
    def num_params(self) -> int:
        """Parameters of the backbone (without a head), counted on the meta device: nothing is allocated."""
        with torch.device("meta"):
            module = self.build()
        return sum(p.numel() for p in module.parameters())

    @cached_property
    def group_names(self) -> list[str]:
        with torch.device("meta"):
            module = self.build()
        return [name for name, _ in self.groups(module)]

    def layer_groups(self, backbone: nn.Module) -> list[LayerGroup]:
        groups = []
        for name, modules in self.groups(backbone):
            modules = (modules,) if isinstance(modules, nn.Module) else tuple(modules)
            groups.append(LayerGroup(name, modules))
        return groups

    def create_model(self, num_classes: int, dropout: float = 0.0, feature_groups: Sequence[str] | None = None,
                     standardize: bool = False) -> TransferModel:
        """The backbone, randomly initialised, with a new linear head for `num_classes`.

        `feature_groups` makes the head read the pooled, concatenated outputs of those layer groups instead of
        the backbone's final features; `standardize` puts a per-feature standardisation in front of the head.
        """
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        model = TransferModel(self, self.build(), nn.Identity(), tuple(feature_groups or ()))
        width = model.probe_feature_dim() if feature_groups else self.feature_dim
        model.head = Head(width, num_classes, dropout, standardize)
        return model

    def for_options(self, options: Mapping[str, Any]) -> BackboneSpec:
        """The spec of the variant saved with `options` (this spec itself when they match)."""
        if dict(options) == dict(self.options):
            return self
        if self.variant is None:
            raise WeightsError(f"backbone '{self.name}' has no variants, but options {dict(options)} were given")
        return self.variant(options)

    def summary(self, plugin: str | None = None) -> dict[str, Any]:
        return _summary(self, plugin, num_params=self.num_params, feature_dim=self.feature_dim,
                        groups=self.group_names)


@dataclass(frozen=True, kw_only=True)
class LazyBackbone:
    """A backbone listed from metadata alone; its `BackboneSpec` is made on first use (`spec`).

    For plugins that register very many architectures (zoo-timm: over a thousand), where building each one, even
    on the meta device, to count its parameters would make every listing take minutes. Register it like a spec;
    `get_backbone` returns the resolved spec, while listings (`zoo backbones`) show this metadata and leave the
    fields that need the built module (`num_params`, `feature_dim`, `groups`) as None.

    Args:
        name, family, modality, preprocessing, weights, description: as `BackboneSpec`'s, known without building.
        resolve: makes the full spec (it may build the module on the meta device to learn its feature width).
    """

    name: str
    family: str
    modality: Modality
    preprocessing: Preprocessing
    resolve: Callable[[], BackboneSpec] = field(repr=False, compare=False)
    weights: tuple[Weights, ...] = ()
    description: str = ""

    @cached_property
    def spec(self) -> BackboneSpec:
        spec = self.resolve()
        if spec.name != self.name:
            raise WeightsError(f"lazy backbone '{self.name}' resolved to a spec named '{spec.name}'")
        return spec

    def summary(self, plugin: str | None = None) -> dict[str, Any]:
        return _summary(self, plugin, num_params=None, feature_dim=None, groups=None)


def _summary(entry: BackboneSpec | LazyBackbone, plugin: str | None, *, num_params: int | None,
             feature_dim: int | None, groups: list[str] | None) -> dict[str, Any]:
    """One backbone as listings show it; the three fields that need the built module are given by the caller."""
    return {"name": entry.name, "family": entry.family, "modality": entry.modality, "plugin": plugin,
            "num_params": num_params, "feature_dim": feature_dim, "groups": groups,
            "weights": [w.as_dict() for w in entry.weights], "preprocessing": entry.preprocessing.as_dict(),
            "description": entry.description}


class Head(nn.Module):
    """The new head: optional standardisation (statistics set from the training features), dropout, linear."""

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.0, standardize: bool = False):
        super().__init__()
        self.standardize = standardize
        if standardize:
            self.register_buffer("mean", torch.zeros(in_features))
            self.register_buffer("std", torch.ones(in_features))
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_features, num_classes)

    STD_FLOOR = 0.1
    """No feature's std is taken below this fraction of the median feature std: a feature (almost) constant on
    a few training examples (a dead ReLU channel) would otherwise be multiplied by up to a million on new inputs
    (a test loss in the hundreds on a 16-image probe; with the floor, 0.58)."""

    def set_statistics(self, features: torch.Tensor) -> None:
        """Standardise with the training features' mean and spread. A feature constant over the training set (a unit
        that never fires on these images, std <= 1e-3 x the median) tells the head nothing: it is read as 0 (its
        spread set to infinity; EfficientNet-Lite0 on 40 X-rays gave a test loss of 1,200 without this). Any other
        spread is floored at STD_FLOOR x the median (a 16-image probe on layer4: test loss 246 -> 0.58)."""
        std = features.std(0) if len(features) > 1 else torch.zeros(features.shape[1], device=features.device)
        typical = float(std.median()) if std.numel() else 0.0
        dead = std <= 1e-3 * max(typical, 1e-12)
        self.mean.copy_(features.mean(0))
        self.std.copy_(std.clamp(min=max(self.STD_FLOOR * typical, 1e-6)).masked_fill(dead, float("inf")))

    def standardized(self, x: torch.Tensor) -> torch.Tensor:
        """The features as the linear layer reads them (standardised when the head standardises)."""
        return (x - self.mean) / self.std if self.standardize else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(self.standardized(x)))


class TransferModel(nn.Module):
    """A backbone with a new head. Inputs are an image tensor, or a mapping of tokenizer outputs for text."""

    def __init__(self, spec: BackboneSpec, backbone: nn.Module, head: nn.Module, feature_groups: tuple[str, ...] = ()):
        super().__init__()
        self.spec = spec
        self.backbone = backbone
        self.head = head
        self.feature_groups = feature_groups

    @property
    def num_classes(self) -> int:
        return self.head.linear.out_features

    def features(self, inputs: torch.Tensor | Mapping[str, torch.Tensor]) -> torch.Tensor:
        if not self.feature_groups:
            return self._run_backbone(inputs)
        groups = {g.name: g for g in self.spec.layer_groups(self.backbone)}
        unknown = [name for name in self.feature_groups if name not in groups]
        if unknown:
            from zoo_core.errors import UnknownNameError

            raise UnknownNameError("layer group", unknown[0], list(groups))
        captured: dict[str, torch.Tensor] = {}
        hooks = [groups[name].modules[-1].register_forward_hook(
            lambda _module, _inputs, output, name=name: captured.__setitem__(name, _pool(output)))
            for name in self.feature_groups]
        try:
            self._run_backbone(inputs)
        finally:
            for hook in hooks:
                hook.remove()
        return torch.cat([captured[name] for name in self.feature_groups], dim=1)

    def _run_backbone(self, inputs):
        if isinstance(inputs, Mapping):
            return self.backbone(**inputs)
        return self.backbone(inputs)

    def probe_feature_dim(self) -> int:
        """Width of the tapped features, from one forward pass of a small dummy input."""
        was_training = self.training
        self.eval()
        with torch.no_grad():
            if self.spec.modality == "text":
                dummy = {"input_ids": torch.ones(1, 4, dtype=torch.long),
                         "attention_mask": torch.ones(1, 4, dtype=torch.long)}
            else:
                side = max(75, min(self.spec.preprocessing.input_size, 96))
                dummy = torch.zeros(1, 3, side, side)
            width = self.features(dummy).shape[1]
        self.train(was_training)
        return width

    def forward(self, inputs: torch.Tensor | Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.features(inputs))

    def layer_groups(self) -> list[LayerGroup]:
        """The backbone's groups, input to output, then the head: together they hold every parameter once."""
        return [*self.spec.layer_groups(self.backbone), LayerGroup("head", (self.head,))]

    def load_backbone_state(self, state_dict: Mapping[str, torch.Tensor], origin: str) -> None:
        """Load pretrained backbone weights, refusing any mismatch with a message naming the keys."""
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith(self.spec.unused_keys)}
        try:
            result = self.backbone.load_state_dict(state_dict, strict=False)
        except RuntimeError as exc:  # shape mismatches are raised even when strict=False
            first = str(exc).strip().splitlines()[-1].strip()
            raise WeightsError(f"weights from {origin} do not fit backbone '{self.spec.name}': {first}") from None
        problems = []
        if result.missing_keys:
            problems.append(f"missing {_some(result.missing_keys)}")
        if result.unexpected_keys:
            problems.append(f"unexpected {_some(result.unexpected_keys)}")
        if problems:
            raise WeightsError(f"weights from {origin} do not fit backbone '{self.spec.name}': "
                               + "; ".join(problems))


def _pool(output: Any) -> torch.Tensor:
    """A group's output as one vector per example: global average over space (images) or tokens (text)."""
    if isinstance(output, tuple | list):
        output = output[0]
    if output.ndim == 4:
        return output.mean(dim=(2, 3))
    if output.ndim == 3:
        return output.mean(dim=1)
    return output.flatten(1)


def _some(keys: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return f"{len(keys)} keys ({shown}{', ...' if len(keys) > limit else ''})"
