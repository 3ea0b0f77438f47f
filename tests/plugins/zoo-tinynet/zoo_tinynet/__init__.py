"""A third-party plugin, as a user would write one: a two-block CNN registered with `register_backbones`."""

from torch import nn

from zoo_core import BackboneSpec, ImagePreprocessing, hookimpl


def build() -> nn.Module:
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU()),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


@hookimpl
def register_backbones(register):
    register(BackboneSpec(
        name="tinynet", family="tinynet", modality="image", feature_dim=16, build=build,
        groups=lambda m: [("block1", m[0]), ("block2", m[1])],
        preprocessing=ImagePreprocessing(input_size=32, resize_size=32, mean=(0.5,) * 3, std=(0.5,) * 3),
        description="two conv blocks, for tests and examples",
    ))
