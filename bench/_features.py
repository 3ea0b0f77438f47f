"""Frozen features computed once per (base, exact split) for a whole bench/fewshot.py run.

The zoo's linear probe and the plain probe of a cell read the same frozen features, and the validation and test
splits of a seed are the same for every k: without a cache each of them was encoded again (a MiniLM pass over
1,000 test sentences, or 1,000 CIFAR images at 96x96 through EfficientNet-Lite0, per run). The key is the base's
identity and the split's fingerprint (sha256 of its exact inputs and labels), so a hit is the same tensor the
engine would compute: the probes' figures do not change, only their cost.

With a folder (`--jobs N`: one cache for N worker processes), a split's features are also kept there as
safetensors: the worker that needs a split first holds its lock file while it encodes it, so a second worker
needing the same split waits for that file instead of encoding it again, and a file appears whole or not at all
(written aside, then renamed over its name).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from pathlib import Path


class FeatureCache:
    """`attach(engine, base)` makes `engine.features(split)` look up (base, split) before computing it."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else None
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
                self.store[key] = self._shared(key, lambda: compute(split, batch_size))
            return self.store[key]

        engine.features = features  # this engine only: its train() and the plain probe both call it

    def _shared(self, key: tuple[str, str], compute):
        """The features from the folder when another process wrote them, else computed (and written there)."""
        if self.folder is None:
            self.misses += 1
            return compute()
        from safetensors.torch import load_file, save_file

        self.folder.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256("\n".join(key).encode()).hexdigest()[:32]
        path = self.folder / f"{name}.safetensors"
        with open(self.folder / f"{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also when this process dies
            if path.is_file():
                self.hits += 1
                return load_file(path)["features"]
            self.misses += 1
            tensor = compute()
            aside = path.with_name(f"{name}.{os.getpid()}.tmp")
            save_file({"features": tensor.contiguous()}, aside)
            os.replace(aside, path)
            return tensor

    def __len__(self) -> int:
        return len(self.store)
