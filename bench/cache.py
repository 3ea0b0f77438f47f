"""Linear probe with the feature cache against the naive loop that runs the frozen backbone every epoch.

Both train the same head (same seed, same batches) for 10 epochs on PneumoniaMNIST with a frozen ResNet-18;
the naive loop is the engine's own forward pass through backbone + head, so the only difference is the cache.
Prints a table; --json adds {"speedup", "accuracy_cached", "accuracy_naive", ...} on the last line.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from _common import PNEUMONIA, emit, options, require_shared_data, set_threads

from zoo_core.recipe import recipe_from_dict
from zoo_core.train import Engine


def main() -> None:
    require_shared_data()
    quick = options(__doc__, "fewer steps").parse_args().quick
    set_threads()
    recipe = {
        # the epoch loop (solver: sgd) is what the cache speeds up; the default lbfgs fit reads the cache once
        "base": "scratch:resnet18", "strategy": {"name": "linear-probe", "solver": "sgd"},
        "data": {"reader": "npz", "args": {"path": str(PNEUMONIA)}, "image_size": 32 if quick else 64,
                 "limit": {"train": 600} if quick else {}},
        "train": {"epochs": 10, "batch_size": 64, "lr": 0.01, "seed": 0},
    }
    # cached: the engine as `zoo train` runs it
    engine = Engine(recipe_from_dict(dict(recipe)), progress=False)
    start = time.perf_counter()
    cached = engine.train()
    cached_s = time.perf_counter() - start

    # naive: same engine set-up, but every epoch runs the frozen backbone on every batch
    naive = Engine(recipe_from_dict(dict(recipe)), progress=False)
    model, data, cfg = naive.model, naive.data, naive.recipe.train
    optimizer = torch.optim.AdamW(model.head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    labels = torch.from_numpy(data.train.labels)
    steps_per_epoch = -(-len(data.train) // cfg.batch_size)
    total, step = steps_per_epoch * cfg.epochs, 0
    start = time.perf_counter()
    if model.head.standardize:  # the head standardises features by their training statistics: one pass for them
        model.head.set_statistics(naive.features(data.train))
    best_acc, best_state, naive_val = -1.0, None, []
    for _ in range(cfg.epochs):
        model.eval()
        model.head.train()
        for idx in torch.randperm(len(data.train), generator=naive.generator).split(cfg.batch_size):
            idx = idx.numpy()
            for g in optimizer.param_groups:
                g["lr"] = cfg.lr * naive._lr_factor(step, total, 0)
            loss = F.cross_entropy(model(naive.encode(data.train, idx)), labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
        val = naive.evaluate(data.val)["accuracy"]
        naive_val.append(val)
        if val > best_acc:
            best_acc, best_state = val, {k: v.clone() for k, v in model.head.state_dict().items()}
    model.head.load_state_dict(best_state)
    naive_metrics = naive.evaluate(data.test)
    naive_s = time.perf_counter() - start

    result = {"speedup": round(naive_s / cached_s, 2), "cached_seconds": round(cached_s, 2),
              "naive_seconds": round(naive_s, 2), "accuracy_cached": round(cached.metrics["accuracy"], 4),
              "accuracy_naive": round(naive_metrics["accuracy"], 4)}
    print(f"linear-probe, frozen ResNet-18, {len(data.train)} training images, 10 epochs")
    print(f"{'':12}{'seconds':>10}{'test accuracy':>16}")
    print(f"{'naive':12}{naive_s:10.2f}{naive_metrics['accuracy']:16.4f}")
    print(f"{'cached':12}{cached_s:10.2f}{cached.metrics['accuracy']:16.4f}")
    print(f"speedup {result['speedup']}x (target >= 5x, same accuracy)")
    print("validation accuracy per epoch, cached: " + " ".join(f"{h['val_accuracy']:.4f}" for h in cached.history))
    print("validation accuracy per epoch, naive:  " + " ".join(f"{v:.4f}" for v in naive_val))
    emit(result)


if __name__ == "__main__":
    main()
