"""Transfer Zoo plugin: torchvision's classic ImageNet architectures as backbones, with their weights.

Weights come through torchvision's own weight enums and download code (`WeightsEnum.get_state_dict`),
so they are cached where torchvision caches them (`$TORCH_HOME/hub/checkpoints`) and read with
`weights_only=True`. Each tag is described from its enum (`Weights`): the transforms it was evaluated with
(resize, crop, mean/std, interpolation), its published metrics, recipe and number of classes.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable

import torchvision
from torch import nn
from torchvision.models import WeightsEnum, get_model, get_model_weights

from zoo_core import BackboneSpec, ImagePreprocessing, PretrainedWeights, WeightsError, WeightSource, hookimpl
from zoo_core.backbone import Weights
from zoo_core.errors import UnknownNameError
from zoo_core.sources import source_head

__version__ = "0.1.0"

INCEPTION_PREPROCESSING = ImagePreprocessing(input_size=299, resize_size=342)


def _build(arch: str, head_path: str, **kwargs) -> Callable[[], nn.Module]:
    """Build torchvision's model and replace its final classifier layer with Identity: it returns features."""

    def build() -> nn.Module:
        model = get_model(arch, weights=None, **kwargs)
        parent, _, leaf = head_path.rpartition(".")
        owner = model.get_submodule(parent) if parent else model
        setattr(owner, leaf, nn.Identity())
        return model

    return build


def _resnet_groups(m: nn.Module):
    return [("stem", [m.conv1, m.bn1]), ("layer1", m.layer1), ("layer2", m.layer2),
            ("layer3", m.layer3), ("layer4", m.layer4)]


def _conv_blocks(features: nn.Sequential) -> list[tuple[str, list[nn.Module]]]:
    """Split a VGG/AlexNet `features` stack into blocks that end at each max-pool."""
    blocks, current = [], []
    for layer in features:
        current.append(layer)
        if isinstance(layer, nn.MaxPool2d):
            blocks.append((f"block{len(blocks) + 1}", current))
            current = []
    if current:
        blocks.append((f"block{len(blocks) + 1}", current))
    return blocks


def _vgg_groups(m: nn.Module):
    # the classifier trunk: Linear-ReLU-Dropout-Linear-ReLU-Dropout (its last Linear is the replaced head)
    return [*_conv_blocks(m.features), ("classifier", m.classifier)]


def _inception_groups(m: nn.Module):
    stem = [m.Conv2d_1a_3x3, m.Conv2d_2a_3x3, m.Conv2d_2b_3x3, m.Conv2d_3b_1x1, m.Conv2d_4a_3x3]
    mixed = [name for name, _ in m.named_children() if name.startswith("Mixed_")]
    return [("stem", stem), *[(name.lower(), getattr(m, name)) for name in mixed]]


def _googlenet_groups(m: nn.Module):
    stem = [m.conv1, m.conv2, m.conv3]
    blocks = [name for name, _ in m.named_children() if name.startswith("inception")]
    return [("stem", stem), *[(name, getattr(m, name)) for name in blocks]]


def _preprocessing(weights: WeightsEnum) -> ImagePreprocessing:
    """The preprocessing torchvision evaluates these weights with (their `transforms`: ImageClassification)."""
    transforms = weights.transforms()
    crop, resize = transforms.crop_size, transforms.resize_size
    return ImagePreprocessing(input_size=crop[0] if isinstance(crop, list) else crop,
                              resize_size=resize[0] if isinstance(resize, list) else resize,
                              mean=tuple(transforms.mean), std=tuple(transforms.std),
                              interpolation=transforms.interpolation.value, center_crop=True)


def describe(arch: str, weights: WeightsEnum) -> Weights:
    """One torchvision weight tag as data: reference, preprocessing, metrics, source data set and classes."""
    meta = weights.meta
    metrics = meta.get("_metrics") or {}
    return Weights(reference=f"torchvision:{arch}.{weights.name}", tag=weights.name,
                   preprocessing=_preprocessing(weights), dataset=next(iter(metrics), None),
                   metrics=metrics, num_classes=len(meta.get("categories") or []) or None, recipe=meta.get("recipe"),
                   description=" ".join((meta.get("_docs") or "").split()),
                   default=weights == get_model_weights(arch).DEFAULT)


def _weights_of(arch: str) -> tuple[Weights, ...]:
    return tuple(describe(arch, w) for w in get_model_weights(arch))


def _spec(arch: str, family: str, feature_dim: int, groups, head_path: str, description: str,
          preprocessing: ImagePreprocessing = ImagePreprocessing(), **kwargs) -> BackboneSpec:
    return BackboneSpec(name=arch, family=family, modality="image", feature_dim=feature_dim,
                        build=_build(arch, head_path, **kwargs), groups=groups, preprocessing=preprocessing,
                        weights=_weights_of(arch), description=description)


def backbone_specs() -> list[BackboneSpec]:
    specs = []
    for depth, dim in ((18, 512), (34, 512), (50, 2048), (101, 2048), (152, 2048)):
        specs.append(_spec(f"resnet{depth}", "resnet", dim, _resnet_groups, "fc",
                           f"ResNet-{depth} (He et al. 2015)"))
    for depth in (11, 13, 16, 19):
        for bn in ("", "_bn"):
            specs.append(_spec(f"vgg{depth}{bn}", "vgg", 4096, _vgg_groups, "classifier.6",
                               f"VGG-{depth}{' with batch norm' if bn else ''} (Simonyan & Zisserman 2014)"))
    specs.append(_spec("alexnet", "alexnet", 4096, _vgg_groups, "classifier.6", "AlexNet (Krizhevsky 2012)"))
    # Auxiliary classifiers only help ImageNet training from scratch; the new head replaces them, so they are
    # not built and their pretrained weights are dropped. transform_input matches torchvision's weights.
    specs.append(_spec("inception_v3", "inception", 2048, _inception_groups, "fc",
                       "Inception v3 (Szegedy et al. 2015), input 299", INCEPTION_PREPROCESSING,
                       aux_logits=False, init_weights=True, transform_input=True))
    specs.append(_spec("googlenet", "inception", 1024, _googlenet_groups, "fc",
                       "GoogLeNet / Inception v1 (Szegedy et al. 2014)",
                       aux_logits=False, init_weights=True, transform_input=True))
    return specs


# State-dict keys of torchvision's checkpoints that the backbone does not have: the ImageNet classifier
# layer the new head replaces (each architecture has one of these, kept apart as the source head), and the
# auxiliary classifiers.
CLASSIFIER_PREFIXES = ("fc.", "classifier.6.")
DROPPED_PREFIXES = (*CLASSIFIER_PREFIXES, "AuxLogits.", "aux1.", "aux2.")


class TorchvisionSource(WeightSource):
    name = "torchvision"
    description = "torchvision's pretrained weights: torchvision:ARCH[.TAG], e.g. resnet50.IMAGENET1K_V2"

    def load(self, reference: str) -> PretrainedWeights:
        from zoo_core.plugins import get_backbone

        arch, _, tag = reference.partition(".")
        spec = get_backbone(arch)
        if not any(w.reference.startswith(f"torchvision:{arch}.") for w in spec.weights):
            raise WeightsError(f"backbone '{arch}' has no torchvision weights")
        enum = get_model_weights(arch)
        tag = tag or "DEFAULT"
        try:
            weights = enum[tag]
        except KeyError:
            raise UnknownNameError(f"{arch} weights tag", tag, [w.name for w in enum] + ["DEFAULT"]) from None
        file = weights.url.rsplit("/", 1)[-1]
        try:
            state = weights.get_state_dict(progress=False, check_hash=True, weights_only=True)
        except pickle.UnpicklingError as exc:
            raise WeightsError(f"refused torchvision weights file {file}: it holds more than tensors, and "
                               f"weights are never unpickled ({str(exc).splitlines()[0]})") from None
        except (OSError, RuntimeError) as exc:
            raise WeightsError(f"cannot fetch torchvision weights {arch}.{weights.name} ({exc}); offline, place "
                               f"the file at $TORCH_HOME/hub/checkpoints/{file}") from None
        # the ImageNet classifier, where it is the one linear layer on the backbone's features (ResNet's fc, VGG's
        # and AlexNet's classifier.6); an Inception's auxiliary classifiers are not it
        head = next(filter(None, (source_head(state, p) for p in CLASSIFIER_PREFIXES)), None)
        state = {k: v for k, v in state.items() if not k.startswith(DROPPED_PREFIXES)}
        meta = weights.meta
        described = describe(arch, weights)
        return PretrainedWeights(
            spec=spec, state_dict=state, origin=described.reference, preprocessing=described.preprocessing,
            head_state=head,
            metadata={"source_classes": len(meta.get("categories") or []), "recipe": meta.get("recipe"),
                      "metrics": meta.get("_metrics"), "url": weights.url,
                      "torchvision_version": torchvision.__version__},
        )


@hookimpl
def register_backbones(register):
    for spec in backbone_specs():
        register(spec)


@hookimpl
def register_sources(register):
    register(TorchvisionSource())
