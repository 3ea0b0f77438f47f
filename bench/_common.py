"""Shared pieces of the benchmarks: where the data lives, and running a recipe quietly."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
PNEUMONIA = SHARED / "pneumoniamnist" / "pneumoniamnist.npz"
MNIST = {"images": str(SHARED / "mnist-test" / "t10k-images-idx3-ubyte.gz"),
         "labels": str(SHARED / "mnist-test" / "t10k-labels-idx1-ubyte.gz")}


def require_shared_data() -> None:
    if not PNEUMONIA.is_file():
        sys.exit(f"benchmarks read ../shared/data ({PNEUMONIA} is missing)")


def run(recipe: dict):
    from zoo_core.recipe import recipe_from_dict
    from zoo_core.run import run_recipe

    return run_recipe(recipe_from_dict(copy.deepcopy(recipe)), progress=False, log=lambda message: None)


def emit(result: dict) -> None:
    """With --json, the last line is one JSON object."""
    if "--json" in sys.argv:
        print(json.dumps(result))
