"""The engine's training throughput (strategy `finetune`) against a hand-written PyTorch loop on the same
model, batch size and optimizer, in the same run.

The plain loop gets every advantage: its images are resized and normalised once up front, outside the timing;
the engine does that per batch, inside. Each side runs `ROUNDS` times, interleaved; the best round counts.
Prints a table; --json adds {"ratio": engine / plain throughput, ...} on the last line. Target: ratio >= 0.95.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from _common import PNEUMONIA, emit, options, require_shared_data

from zoo_core.recipe import recipe_from_dict
from zoo_core.train import Engine


def recipe(train_size: int, epochs: int) -> dict:
    return {
        "base": "scratch:resnet18", "strategy": {"name": "finetune", "warmup_epochs": 0},
        "data": {"reader": "npz", "args": {"path": str(PNEUMONIA)}, "image_size": 32, "val": None, "test": None,
                 "limit": {"train": train_size}},
        "train": {"epochs": epochs, "batch_size": 64, "lr": 0.001, "seed": 0},
    }


def engine_throughput(cfg: dict) -> float:
    result = Engine(recipe_from_dict(dict(cfg)), progress=False).train()
    return result.train_samples_per_second


def plain_throughput(cfg: dict) -> float:
    """What a user would write by hand: model, AdamW, a shuffled loop over pre-encoded tensors."""
    setup = Engine(recipe_from_dict(dict(cfg)), progress=False)  # same model, weights and data
    model, split = setup.model, setup.data.train
    x = setup.encoder(split.inputs)  # encoded once, not timed
    y = torch.from_numpy(split.labels)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    model.train()
    seen, start = 0, time.perf_counter()
    for _ in range(cfg["train"]["epochs"]):
        for idx in torch.randperm(len(y)).split(cfg["train"]["batch_size"]):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(idx)
    return seen / (time.perf_counter() - start)


def main() -> None:
    require_shared_data()
    quick = options(__doc__, "fewer steps").parse_args().quick
    torch.set_num_threads(2)
    cfg = recipe(train_size=640 if quick else 2428, epochs=1 if quick else 2)
    rounds = 2 if quick else 3
    engine, plain = [], []
    for _ in range(rounds):
        plain.append(plain_throughput(cfg))
        engine.append(engine_throughput(cfg))
    best_engine, best_plain = max(engine), max(plain)
    ratio = best_engine / best_plain
    print(f"finetune, ResNet-18 at 32x32, batch 64, AdamW, {cfg['data']['limit']['train']} images x "
          f"{cfg['train']['epochs']} epochs, best of {rounds}")
    print(f"{'plain loop':14}{best_plain:10.1f} samples/s   (rounds: {np.round(plain, 1).tolist()})")
    print(f"{'engine':14}{best_engine:10.1f} samples/s   (rounds: {np.round(engine, 1).tolist()})")
    print(f"ratio {ratio:.3f} (target >= 0.95)")
    emit({"ratio": round(ratio, 3), "engine_samples_per_s": round(best_engine, 1),
          "plain_samples_per_s": round(best_plain, 1)})


if __name__ == "__main__":
    main()
