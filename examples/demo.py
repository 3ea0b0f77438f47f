"""`make demo`: what is installed, and one backbone of each family built with a new head and run once.

Later stages of the project grow this into the full story (train, transfer, compare, publish, serve).
"""

from __future__ import annotations

import sys
import time

import torch
from rich.console import Console
from rich.table import Table

import zoo_core

console = Console(width=None if sys.stdout.isatty() else 160)


def main() -> None:
    catalog = zoo_core.get_catalog()
    console.rule("Transfer Zoo: installed plugins")
    for info in catalog.plugins.values():
        row = info.as_dict()
        parts = [f"{len(row[k])} {k}" for k in ("backbones", "strategies", "readers", "sources") if row[k]]
        console.print(f"  {row['name']:<30} {row['version'] or '':<8} {', '.join(parts)}"
                      + (f"  [red]{row['error']}[/red]" if row["error"] else ""))

    console.rule("One backbone per family: new 2-class head, one forward pass")
    table = Table("backbone", "family", "params", "groups (input → output)", "logits shape", "seconds")
    seen = set()
    for name in zoo_core.list_backbones():
        spec = zoo_core.get_backbone(name)
        if spec.family in seen:
            continue
        seen.add(spec.family)
        start = time.perf_counter()
        model = spec.create_model(num_classes=2).eval()
        if spec.modality == "text":
            batch = {"input_ids": torch.tensor([[101, 7592, 2088, 102]]), "attention_mask": torch.ones(1, 4).long()}
        else:
            batch = torch.randn(1, 3, spec.preprocessing.input_size, spec.preprocessing.input_size)
        with torch.no_grad():
            logits = model(batch)
        groups = [g.name for g in model.layer_groups()]
        table.add_row(name, spec.family, f"{spec.num_params / 1e6:.1f}M", " → ".join(groups),
                      str(tuple(logits.shape)), f"{time.perf_counter() - start:.2f}")
    console.print(table)
    console.print(f"{len(zoo_core.list_backbones())} backbones, {len(zoo_core.list_strategies())} strategies. "
                  "Try: .venv/bin/zoo backbones 'resnet*'  ·  .venv/bin/zoo info finetune")


if __name__ == "__main__":
    main()
