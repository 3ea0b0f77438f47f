"""From a reader's `DataSet` to the batches a model eats: split carving, few-label sampling, preprocessing.

Images stay uint8 in memory and are resized, made 3-channel and normalised per batch (cheap on CPU, and
memory stays at the size of the data set, not of the resized tensors). Text encoders come with the backbones
that need them (`BackboneSpec.encoder`; zoo-transformers brings the tokenizers).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from zoo_core.backbone import ImagePreprocessing
from zoo_core.data import DataSet, Split
from zoo_core.errors import DataError


def stratified_indices(labels: np.ndarray, per_class: int | None = None, fraction: float | None = None,
                       seed: int = 0) -> np.ndarray:
    """Seeded, stratified choice of indices: `per_class` from each class, or `fraction` of each class."""
    rng = np.random.default_rng(seed)
    chosen = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        count = per_class if per_class is not None else max(1, round(len(members) * fraction))
        if count > len(members):
            raise DataError(f"labels_per_class is {count}, but class {cls} has only {len(members)} training "
                            "examples")
        chosen.append(rng.choice(members, size=count, replace=False))
    return np.sort(np.concatenate(chosen))


@dataclass
class PreparedData:
    """The splits a run uses, with the exact indices drawn from the reader's splits (for the fingerprint)."""

    classes: list[str]
    modality: str
    train: Split
    val: Split | None
    test: Split | None
    provenance: dict[str, Any]


def prepare(data: DataSet, cfg, seed: int) -> PreparedData:
    """Apply the recipe's `data:` section: choose, carve and sample splits (all seeded and stratified)."""
    splits = data.splits
    if cfg.train not in splits:
        raise DataError(f"the data has no split '{cfg.train}' (it has {sorted(splits)}); set data.train")
    train, provenance = splits[cfg.train], {}
    train_indices = np.arange(len(train))
    val = splits.get(cfg.val) if cfg.val else None
    if cfg.val and val is None:  # carve a validation split from train
        val_idx = stratified_indices(train.labels, fraction=cfg.val_fraction, seed=seed + 1)
        train_indices = np.setdiff1d(train_indices, val_idx)
        val = train.subset(val_idx)
        provenance["val"] = {"carved_from": cfg.train, "fraction": cfg.val_fraction, "seed": seed + 1}
    if cfg.labels_per_class:
        pick = stratified_indices(train.labels[train_indices], per_class=cfg.labels_per_class, seed=seed)
        train_indices = train_indices[pick]
    if cfg.test and cfg.test not in splits:
        raise DataError(f"the data has no split '{cfg.test}' (it has {sorted(splits)}); set data.test or null")
    test = splits[cfg.test] if cfg.test else None
    limited = {"train": train.subset(train_indices), "val": val, "test": test}
    for name, cap in cfg.limit.items():
        if limited.get(name) is not None and len(limited[name]) > cap:
            idx = stratified_indices(limited[name].labels, fraction=cap / len(limited[name]), seed=seed + 2)[:cap]
            limited[name] = limited[name].subset(idx)
            if name == "train":
                train_indices = train_indices[idx]
    provenance["train"] = {"split": cfg.train, "size": len(train_indices),
                           "labels_per_class": cfg.labels_per_class}
    for name, split in limited.items():
        if split is not None:
            provenance.setdefault(name, {})["sha256"] = split.fingerprint()
            provenance[name]["size"] = len(split)
    return PreparedData(data.classes, data.modality, limited["train"], limited["val"], limited["test"], provenance)


class ImageEncoder:
    """uint8 images (N×H×W, N×H×W×C, or files) -> normalised float batches, prepared as the weights were:
    the shorter side resized to `resize_size` and the centre `input_size` square cut out (`center_crop`), or the
    whole image resized to `input_size` (see `ImagePreprocessing`). Training augmentation, when asked for,
    crops and flips the raw image first, so training images keep the scale of the ones seen at evaluation."""

    def __init__(self, pre: ImagePreprocessing):
        self.pre = pre
        self.mean = torch.tensor(pre.mean).view(1, 3, 1, 1)
        self.std = torch.tensor(pre.std).view(1, 3, 1, 1)

    def __call__(self, inputs, augment: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        arrays = _as_arrays(inputs)
        if not isinstance(arrays, np.ndarray):  # files of different sizes: prepared one by one, then stacked
            return torch.cat([self(array[None], augment, generator) for array in arrays])
        x = torch.from_numpy(arrays).float().div_(255)
        x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # grey -> 3 channels, as the pretrained stem expects
        elif x.shape[1] == 4:
            x = x[:, :3]
        if augment:
            x = _augment(x, generator)
        return (self.resize(x) - self.mean) / self.std

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        """torchvision's Resize(resize_size) + CenterCrop(input_size), or Resize((input_size, input_size))."""
        pre, (h, w) = self.pre, x.shape[-2:]
        if not pre.center_crop:
            return self._interpolate(x, (pre.input_size, pre.input_size))
        short, long = (h, w) if h <= w else (w, h)
        new_short, new_long = pre.resize_size, int(pre.resize_size * long / short)  # torchvision rounds down
        x = self._interpolate(x, (new_short, new_long) if h <= w else (new_long, new_short))
        h, w = x.shape[-2:]
        if h < pre.input_size or w < pre.input_size:
            raise DataError(f"an image resized to {h}x{w} is smaller than the {pre.input_size}-pixel crop; "
                            "resize_size must be at least input_size")
        top, left = int(round((h - pre.input_size) / 2)), int(round((w - pre.input_size) / 2))
        return x[..., top:top + pre.input_size, left:left + pre.input_size]

    def _interpolate(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if tuple(x.shape[-2:]) == size:
            return x
        mode = self.pre.interpolation
        if mode == "nearest":
            return F.interpolate(x, size=size, mode=mode)
        return F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=True)

    def save(self, folder: Path) -> None:
        """Nothing to save: the preprocessing is in the checkpoint's config.json."""


def _as_arrays(inputs) -> np.ndarray | list[np.ndarray]:
    """One stacked array, or a list of arrays when image files differ in size."""
    if isinstance(inputs, np.ndarray):
        return inputs
    from PIL import Image

    images = [np.array(Image.open(Path(p)).convert("RGB")) for p in inputs]
    if len({im.shape for im in images}) > 1:
        return images
    return np.stack(images)


def _augment(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Random horizontal flip and a random square crop of 7/8 to all of the side (resized back), per image.

    The crop's size varies down to 7/8 and includes the whole image: always cropping 7/8 would zoom every
    training image by 8/7 against the images seen at evaluation (measured on PneumoniaMNIST after an MNIST
    source, finetune on layer2+layer3, 3 seeds: 0.834 / 0.859 at 20 / 100 labels a class with the fixed
    crop, 0.867 / 0.873 with the varying one)."""
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=generator) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    scales = (7 + torch.rand(n, generator=generator)) / 8
    out = []
    for i, scale in enumerate(scales.tolist()):
        ch, cw = max(1, round(h * scale)), max(1, round(w * scale))
        top = int(torch.randint(0, h - ch + 1, (1,), generator=generator))
        left = int(torch.randint(0, w - cw + 1, (1,), generator=generator))
        crop = x[i:i + 1, :, top:top + ch, left:left + cw]
        if (ch, cw) != (h, w):
            crop = F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)
        out.append(crop)
    return torch.cat(out)


def batches(n: int, batch_size: int, shuffle: bool, generator: torch.Generator | None = None) -> Iterator[np.ndarray]:
    order = torch.randperm(n, generator=generator).numpy() if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]
