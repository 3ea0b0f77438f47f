"""A realistic sample catalog for the web catalog's browser tests, its benchmark, and for trying the pages.

    python scripts/sample_catalog.py REGISTRY_FOLDER [--extra N]
    zoo serve --registry REGISTRY_FOLDER

Models from every backbone family the zoo ships (ResNet, VGG, Inception, AlexNet, BERT), a lineage chain four
generations deep from an ImageNet ResNet with a branch, aliases, a yanked and a deprecated version, a private model
and a card that tries to run a script. Every version goes through the registry's real publication path (card
checks, blobs, lineage from the recipe); the weights file of each is a small real safetensors file (a 2-class head)
rather than a full backbone, which keeps seeding to a second. `--extra N` adds N more generated models (the
benchmark's 50-result pages).
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
from pathlib import Path

import torch
import yaml
from safetensors.torch import save_file

SECTIONS = """
## Intended use

{intended}

## Training data

{data}

## Training procedure

- Base: `{base}`
- Strategy: `{strategy}` {params}
- Epochs: {epochs}, batch size {batch}, adamw at lr {lr}, cosine schedule, seed 0

## Evaluation

| metric | value |
|---|---|
{metric_rows}

## Limitations

{limitations}
"""

# (model id, backbone, family, modality, task, strategy, base, relation, metrics, license, tags, description)
BACKBONES = {"resnet50": ("resnet", "image"), "vgg16": ("vgg", "image"), "inception_v3": ("inception", "image"),
             "alexnet": ("alexnet", "image"), "bert-base-uncased": ("bert", "text"),
             "all-minilm-l6-v2": ("bert", "text"), "resnet18": ("resnet", "image")}


def card(model_id: str, backbone: str, task: str, strategy: str, base: str, relation: str,
         metrics: dict[str, float], license: str, tags: list[str], description: str, dataset: str,
         body_extra: str = "") -> str:
    meta = {"library_name": "transfer-zoo", "license": license, "pipeline_tag": task,
            "tags": ["transfer-zoo", strategy, BACKBONES[backbone][0], *tags], "base_model": base,
            "base_model_relation": relation, "datasets": [dataset],
            "model-index": [{"name": model_id.split("/")[1], "results": [{
                "task": {"type": task}, "dataset": {"name": dataset, "type": dataset, "split": "test"},
                "metrics": [{"type": k, "value": v} for k, v in metrics.items()]}]}]}
    body = f"# {model_id.split('/')[1]}\n\n{description}\n" + body_extra + SECTIONS.format(
        intended="Research on transfer learning; a sample entry of the catalog's test data.",
        data=f"`{dataset}`, train split, 100 labels per class.", base=base, strategy=strategy, params="",
        epochs=10, batch=32, lr=0.001, metric_rows="\n".join(f"| {k} | {v:.4f} |" for k, v in metrics.items()),
        limitations="Evaluated on one test split; numbers are illustrative of the catalog, not a benchmark.")
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n\n" + body


def write_version(folder: Path, model_id: str, backbone: str, task: str, strategy: str, base: str, relation: str,
                  metrics: dict[str, float], license: str, tags: list[str], description: str, dataset: str,
                  lr: float = 0.001, epochs: int = 10, body_extra: str = "", seed: int = 0) -> Path:
    family, modality = BACKBONES[backbone]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text(card(model_id, backbone, task, strategy, base, relation, metrics, license,
                                           tags, description, dataset, body_extra))
    (folder / "config.json").write_text(json.dumps({
        "library_name": "transfer-zoo", "format_version": 1,
        "backbone": {"name": backbone, "family": family, "modality": modality, "options": {}},
        "num_classes": 2, "labels": ["negative", "positive"]}, indent=2))
    (folder / "metrics.json").write_text(json.dumps(metrics))
    recipe = {"base": base, "backbone": backbone, "strategy": {"name": strategy},
              "data": {"reader": "npz" if modality == "image" else "csv", "labels_per_class": 100,
                       "image_size": 224 if modality == "image" else None},
              "train": {"epochs": epochs, "batch_size": 32, "optimizer": "adamw", "lr": lr, "seed": seed},
              "resolved": {"base": base}}
    (folder / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    generator = torch.Generator().manual_seed(seed)
    save_file({"head.linear.weight": torch.randn(2, 64, generator=generator), "head.linear.bias": torch.zeros(2)},
              folder / "model.safetensors")
    return folder


CATALOG = [
    # chain: ImageNet ResNet-50 -> CIFAR-10 -> pneumonia (3 versions, one yanked) -> LoRA adapter; branch: probe
    ("vision/resnet50-cifar10", "resnet50", "image-classification", "finetune", "torchvision:resnet50.IMAGENET1K_V2",
     "finetune", {"accuracy": 0.9412, "macro_f1": 0.9409}, "apache-2.0", ["cifar10"],
     "ResNet-50 from ImageNet fine-tuned on CIFAR-10: a natural-image source for smaller targets.", "cifar10", 0.001),
    ("vision/resnet50-cifar10", "resnet50", "image-classification", "finetune", "torchvision:resnet50.IMAGENET1K_V2",
     "finetune", {"accuracy": 0.9531, "macro_f1": 0.9528}, "apache-2.0", ["cifar10"],
     "ResNet-50 from ImageNet fine-tuned on CIFAR-10: a natural-image source for smaller targets.", "cifar10", 0.0005),
    ("medical/resnet50-pneumonia", "resnet50", "image-classification", "freeze", "zoo:vision/resnet50-cifar10@2",
     "finetune", {"accuracy": 0.8713, "macro_f1": 0.8702, "auroc": 0.9311}, "cc-by-4.0", ["medical", "x-ray"],
     "Paediatric chest X-ray pneumonia classifier transferred from the CIFAR-10 ResNet-50.", "pneumoniamnist",
     0.002),
    ("medical/resnet50-pneumonia", "resnet50", "image-classification", "finetune", "zoo:vision/resnet50-cifar10@2",
     "finetune", {"accuracy": 0.8932, "macro_f1": 0.8929, "auroc": 0.9507}, "cc-by-4.0", ["medical", "x-ray"],
     "Paediatric chest X-ray pneumonia classifier transferred from the CIFAR-10 ResNet-50.", "pneumoniamnist",
     0.0005),
    ("medical/resnet50-pneumonia", "resnet50", "image-classification", "finetune", "zoo:vision/resnet50-cifar10@2",
     "finetune", {"accuracy": 0.9744, "macro_f1": 0.9743, "auroc": 0.9961}, "cc-by-4.0", ["medical", "x-ray"],
     "Paediatric chest X-ray pneumonia classifier transferred from the CIFAR-10 ResNet-50.", "pneumoniamnist",
     0.0005),
    ("medical/resnet50-pneumonia-lora", "resnet50", "image-classification", "lora", "zoo:medical/resnet50-pneumonia@2",
     "adapter", {"accuracy": 0.8846, "macro_f1": 0.8840}, "cc-by-4.0", ["medical", "x-ray"],
     "LoRA adapters on the pneumonia ResNet-50 for a second hospital's scanners.", "pneumoniamnist", 0.003),
    ("medical/resnet50-chestxray-probe", "resnet50", "image-classification", "linear-probe",
     "zoo:vision/resnet50-cifar10@2", "feature-extraction", {"accuracy": 0.8301, "macro_f1": 0.8297},
     "cc-by-4.0", ["medical", "x-ray"], "A linear probe on frozen CIFAR-10 ResNet-50 features.", "pneumoniamnist",
     0.003),
    ("vision/vgg16-flowers", "vgg16", "image-classification", "freeze", "torchvision:vgg16.IMAGENET1K_V1",
     "finetune", {"accuracy": 0.9120, "macro_f1": 0.9077}, "mit", ["flowers"],
     "VGG-16 with its convolutional blocks frozen, retrained top layers for flower species.", "oxford-flowers",
     0.001),
    ("eyes/inception-v3-retina", "inception_v3", "image-classification", "finetune",
     "torchvision:inception_v3.IMAGENET1K_V1", "finetune", {"accuracy": 0.8741, "macro_f1": 0.8650, "auroc": 0.9302},
     "cc-by-nc-4.0", ["medical", "retina"], "Inception v3 fine-tuned to grade diabetic retinopathy in fundus photos.",
     "retina-grading", 0.0003),
    ("vision/alexnet-digits", "alexnet", "image-classification", "linear-probe", "torchvision:alexnet.IMAGENET1K_V1",
     "feature-extraction", {"accuracy": 0.9507, "macro_f1": 0.9501}, "bsd-3-clause", ["digits"],
     "AlexNet ImageNet features with a linear head on handwritten digits: the classic feature-extraction baseline.",
     "mnist", 0.01),
    ("nlp/bert-base-sst2", "bert-base-uncased", "text-classification", "finetune", "hf:google-bert/bert-base-uncased",
     "finetune", {"accuracy": 0.9243, "macro_f1": 0.9241}, "apache-2.0", ["sentiment", "en"],
     "BERT base fine-tuned for English movie-review sentiment (SST-2).", "sst2", 2e-5),
    ("nlp/minilm-sst2-lora", "all-minilm-l6-v2", "text-classification", "lora",
     "hf:sentence-transformers/all-MiniLM-L6-v2", "adapter", {"accuracy": 0.8807, "macro_f1": 0.8804},
     "apache-2.0", ["sentiment", "en"], "LoRA on all-MiniLM-L6-v2 for sentiment: 0.3% of the weights trained.",
     "sst2", 3e-4),
]

HOSTILE_CARD_EXTRA = """
<script>window.__zoo_pwned = "script";</script>

<img src="x" onerror="window.__zoo_pwned = 'onerror'">

[a link that must not run](javascript:window.__zoo_pwned='javascript')
"""


def seed(registry: str | Path, extra: int = 0) -> dict[str, str]:
    """Publish the sample catalog into the registry folder (SQLite); returns a few names tests refer to."""
    from zoo_core.registry.service import ADMIN, RegistryService

    root = Path(registry)
    root.mkdir(parents=True, exist_ok=True)
    service = RegistryService(f"sqlite:///{root / 'registry.db'}", root / "blobs")
    with tempfile.TemporaryDirectory() as tmp:
        def push(i: int, entry, *, visibility=None, body_extra="", model_id=None, seed_value=0):
            mid, backbone, task, strategy, base, relation, metrics, license, tags, description, dataset, lr = entry
            mid = model_id or mid
            folder = write_version(Path(tmp) / f"v{i}", mid, backbone, task, strategy, base, relation, metrics,
                                   license, tags, description, dataset, lr=lr, body_extra=body_extra, seed=seed_value)
            return service.push_folder(folder, mid, viewer=ADMIN, visibility=visibility)

        for i, entry in enumerate(CATALOG):
            push(i, entry, seed_value=i)
        service.set_alias("vision/resnet50-cifar10", "production", 1)
        service.set_alias("medical/resnet50-pneumonia", "production", 2)
        service.set_alias("medical/resnet50-pneumonia", "candidate", 3)
        service.set_status("medical/resnet50-pneumonia@3", "yanked", "evaluated on images that were also in training")
        service.set_status("vision/resnet50-cifar10@1", "deprecated", "superseded by v2")
        bert = CATALOG[10]
        push(100, bert, visibility="private", model_id="private-lab/internal-bert")
        push(101, (*bert[:9], "A card that carries a script, an onerror handler and a javascript: link.", *bert[10:]),
             model_id="sandbox/card-with-script", body_extra=HOSTILE_CARD_EXTRA)
        rng = random.Random(0)
        for j in range(extra):
            entry = list(rng.choice(CATALOG))
            entry[6] = {k: round(min(0.99, v * rng.uniform(0.9, 1.05)), 4) for k, v in entry[6].items()}
            entry[9] = f"Generated catalog entry {j} for the benchmark: " + entry[9]
            push(1000 + j, tuple(entry), model_id=f"bench{j % 7}/model-{j:04d}", seed_value=j)
    return {"chain_root": "vision/resnet50-cifar10@2", "chain_leaf": "medical/resnet50-pneumonia-lora@1",
            "yanked": "medical/resnet50-pneumonia@3", "private": "private-lab/internal-bert",
            "hostile": "sandbox/card-with-script"}


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    count = int(sys.argv[sys.argv.index("--extra") + 1]) if "--extra" in sys.argv else 0
    print(seed(sys.argv[1], count))
