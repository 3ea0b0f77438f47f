"""The features `zoo rank` scores: what the engine's `features` computes on the labelled training split, without
the work a ranking would otherwise repeat for every candidate.

- The data are read, carved and sampled once per ranking (the engine's own `read_data` and `prepare`, with the
  ranking's seed): every candidate is scored on the same examples, and reading SST-2's 33,000-sentence pool again
  for each candidate cost 0.05-0.25 s of CPU a candidate.
- Images are encoded (resized, made 3-channel, normalised) once per preprocessing, not once per candidate.
- A candidate's backbone is built without a head or the random initialisation its weights overwrite (a
  MiniLM's drew 0.2 s), `checkpoint.SkipInitialisation`, and runs in inference mode.
- Texts go through in batches of similar length: a batch is padded to its longest text, and SST-2's 64 labelled
  sentences (12 tokens on average, 53 at most) cost 2.5x the CPU as one padded batch. The features then differ from
  one padded batch's in the last bits of float32 (1e-6), as any change of batch does.

`FeatureCache(data, seed).embed(reference)` gives one candidate's features with the seconds (wall and CPU) each
phase took; a phase paid once per ranking (reading the data) is counted where it happens, in the first candidate.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from zoo_core.backbone import TransferModel
from zoo_core.data import Split
from zoo_core.errors import ZooError
from zoo_core.pipeline import ImageEncoder, PreparedData, batches, prepare
from zoo_core.recipe import Recipe, recipe_from_dict
from zoo_core.sources import PretrainedWeights

TEXT_BATCH = 16
"""Texts a forward pass, in order of length: 8 and 16 measured alike (0.36 and 0.39 s of CPU for SST-2's 64 with
MiniLM, against 0.96 s as one batch and 0.79 s one by one)."""

ENCODED_CACHE_BYTES = 512 * 2**20
"""Encoded images are kept for the next candidates with the same preprocessing up to this size in all (320 images
at 224 x 224 take 190 MiB; the oldest preprocessing's go first); a larger split is encoded batch by batch for each
candidate."""


@dataclass
class Embedding:
    """One candidate's features (N x D, float64) on the labelled examples (`split`), and what produced them."""

    features: np.ndarray
    split: Split
    classes: list[str]
    weights: PretrainedWeights | None
    spec: Any
    phases: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def labels(self) -> np.ndarray:
        return self.split.labels


class _Phases:
    """Wall and CPU seconds per named phase."""

    def __init__(self):
        self.seconds: dict[str, dict[str, float]] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            spent = self.seconds.setdefault(name, {"wall": 0.0, "cpu": 0.0})
            spent["wall"] += time.perf_counter() - wall
            spent["cpu"] += time.process_time() - cpu


class FeatureCache:
    """The labelled examples of one ranking, read once, and each candidate's features on them.

    Args:
        data: the recipe's `data:` section (reader, args, labels_per_class, ...), as a dict.
        seed: the seed of the few-label draw (and of `scratch:` weights), as a recipe's `train.seed`.
        share: False reads and encodes the data anew for every candidate (what sharing must equal; tests).
    """

    def __init__(self, data: dict[str, Any], seed: int = 0, *, device: str = "cpu", batch_size: int = 64,
                 share: bool = True):
        self.data, self.seed, self.device_name, self.batch_size, self.share = data, seed, device, batch_size, share
        self._prepared: tuple[str, PreparedData] | ZooError | None = None
        self._encoded: dict[Any, torch.Tensor] = {}
        self._fingerprint: str | None = None

    def recipe(self, base: str) -> Recipe:
        """The recipe the engine would run to fine-tune `base` on this data (what its features are defined by)."""
        return recipe_from_dict({"base": base, "strategy": "finetune", "data": self.data,
                                 "train": {"seed": self.seed, "device": self.device_name,
                                           "batch_size": self.batch_size, "epochs": 1}}, source=f"(rank {base})")

    def prepared(self, recipe: Recipe) -> tuple[str, PreparedData]:
        """(modality, prepared splits), read once; a data error is kept and raised again for each candidate."""
        from zoo_core.train import read_data

        if self._prepared is None or not self.share:
            try:
                dataset = read_data(recipe)
                self._prepared = dataset.modality, prepare(dataset, recipe.data, self.seed)
            except ZooError as exc:
                self._prepared = exc
        if isinstance(self._prepared, ZooError):
            raise self._prepared
        return self._prepared

    def fingerprint(self, classes: list[str], split: Split) -> str:
        """data_fingerprint of the labelled examples, computed once."""
        from zoo_core.transferability import data_fingerprint

        if self._fingerprint is None or not self.share:
            self._fingerprint = data_fingerprint(classes, split.inputs, split.labels)
        return self._fingerprint

    def embed(self, base: str) -> Embedding:
        """`base`'s features on the labelled training split, as `Engine(recipe).features(data.train)` computes
        them (bit for bit for images; texts: see the module's note)."""
        from zoo_core.checkpoint import SkipInitialisation
        from zoo_core.train import check_modality, input_preprocessing, make_encoder, pick_device, resolve_base

        phase = _Phases()
        with phase("weights"):
            recipe = self.recipe(base)
            # seeded as the engine seeds before it resolves the base: `scratch:` weights are drawn here
            torch.manual_seed(self.seed)
            np.random.seed(self.seed % 2**32)
            weights, spec = resolve_base(recipe)
        with phase("data"):
            modality, data = self.prepared(recipe)
        check_modality(recipe, modality, spec)
        with phase("model"):
            device = pick_device(recipe.train.device)
            if weights is None:  # `base: scratch`: random weights, drawn as the engine draws them
                torch.manual_seed(self.seed)
                backbone = spec.build()
            else:
                with SkipInitialisation():  # every tensor is overwritten by the weights (a missing one is refused)
                    backbone = spec.build()
            model = TransferModel(spec, backbone, nn.Identity())
            if weights is not None:
                model.load_backbone_state(weights.state_dict, weights.origin)
            model.to(device).eval()
        with phase("encoder"):
            preprocessing = input_preprocessing(spec, recipe, weights)
            encoder = make_encoder(spec, preprocessing, recipe, weights)
        features = self._features(model, encoder, preprocessing, data.train, device, phase)
        return Embedding(features.numpy().astype(np.float64), data.train, list(data.classes), weights, spec,
                         phase.seconds)

    def _features(self, model, encoder, preprocessing, split, device, phase) -> torch.Tensor:
        n = len(split)
        texts = not isinstance(split.inputs, np.ndarray) and all(isinstance(x, str) for x in split.inputs)
        if texts:  # similar lengths together (padding)
            order, size = np.argsort([len(x) for x in split.inputs], kind="stable"), min(self.batch_size, TEXT_BATCH)
        else:
            order, size = np.arange(n), self.batch_size
        encoded = self._encoded_images(encoder, preprocessing, split, phase)
        out = []
        with torch.inference_mode():
            for idx in batches(n, size, shuffle=False):
                chosen = order[idx]
                with phase("encode"):
                    batch = encoded[chosen] if encoded is not None else encoder(_take(split.inputs, chosen))
                    batch = {k: v.to(device) for k, v in batch.items()} if isinstance(batch, dict) else \
                        batch.to(device)
                with phase("forward"):
                    out.append(model.features(batch).float().cpu())
        features = torch.cat(out) if out else torch.empty(0, model.spec.feature_dim)
        unsorted = torch.empty_like(features)
        unsorted[torch.from_numpy(order)] = features
        return unsorted

    def _encoded_images(self, encoder, preprocessing, split, phase) -> torch.Tensor | None:
        """The whole split encoded, shared by the candidates with this preprocessing (zoo_core's own image
        encoder only: its output depends on nothing but the preprocessing); None: encode batch by batch."""
        if type(encoder) is not ImageEncoder:
            return None
        key = preprocessing
        if key in self._encoded and self.share:
            return self._encoded[key]
        side = preprocessing.input_size
        if len(split) * 3 * side * side * 4 > ENCODED_CACHE_BYTES:
            return None
        with phase("encode"):
            parts = [encoder(_take(split.inputs, idx)) for idx in batches(len(split), self.batch_size, False)]
            encoded = torch.cat(parts) if parts else torch.empty(0, 3, side, side)
        while self._encoded and sum(t.nbytes for t in self._encoded.values()) + encoded.nbytes > ENCODED_CACHE_BYTES:
            del self._encoded[next(iter(self._encoded))]  # the oldest preprocessing makes room
        self._encoded[key] = encoded
        return encoded


def _take(inputs, idx: np.ndarray):
    return inputs[idx] if isinstance(inputs, np.ndarray) else [inputs[i] for i in idx]
