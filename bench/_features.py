"""Frozen features computed once per (base, exact split) for a whole bench/fewshot.py run.

The zoo's linear probe and the plain probe of a cell read the same frozen features, and the validation and test
splits of a seed are the same for every k: without a cache each of them was encoded again (a MiniLM pass over
1,000 test sentences, or 1,000 CIFAR images at 96x96 through EfficientNet-Lite0, per run). The key is the base's
identity and the split's fingerprint (sha256 of its exact inputs and labels), so a hit is the same tensor the
engine would compute: the probes' figures do not change, only their cost.
"""

from __future__ import annotations

import json


class FeatureCache:
    """`attach(engine, base)` makes `engine.features(split)` look up (base, split) before computing it."""

    def __init__(self) -> None:
        self.store: dict[tuple[str, str], object] = {}
        self.hits = self.misses = 0

    def attach(self, engine, base: dict) -> None:
        """`base`: what decides the features besides the split (the recipe's base, backbone and input size)."""
        identity = json.dumps(base, sort_keys=True)
        compute = engine.features

        def features(split, batch_size=None):
            key = (identity, split.fingerprint())
            if key in self.store:
                self.hits += 1
            else:
                self.misses += 1
                self.store[key] = compute(split, batch_size)
            return self.store[key]

        engine.features = features  # this engine only: its train() and the plain probe both call it

    def __len__(self) -> int:
        return len(self.store)
