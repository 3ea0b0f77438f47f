"""`zoo rank`, measured: do the transferability scores order candidate bases as fine-tuning them would, and at what
fraction of the compute?

A registry is built the way a team's would grow: ResNet-18 sources trained from scratch on MNIST digits, CIFAR-10
photographs and PneumoniaMNIST X-rays (two training lengths for two of them), descendants fine-tuned from them on
another data set, and a random initialisation. Every data set is cut in two disjoint halves: the sources learn from
one half, the targets' few labels (k a class) and test images come from the other. For each target, `zoo_core.rank`
scores every candidate (loading, features, scores: timed), then every candidate is fine-tuned with the default
recipe (`strategy: finetune`, its defaults; and `linear-probe` for reference) and evaluated on the target's test
images (timed). Reported per target and score: Kendall's tau and the weighted tau (LogME's measure; it stresses the
top of the ranking) between the score and the test accuracy reached, and the compute of ranking against fine-tuning
every candidate. Anchor: LogME's paper reports a mean weighted tau of 0.665 on its benchmark. With several seeds,
`seed-vs-seed` is the ground truth's own agreement (mean tau between two seeds' accuracies): with 9 candidates, a
few dozen labels and a few hundred test images it is the ceiling a score can be expected to reach.

`--quick` (a developer's check, a few minutes): shorter sources, 5 fine-tuning epochs, 1 seed. The full run uses
3 seeds for the fine-tuning accuracy. `--json` adds one JSON object on the last line.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import MNIST, PNEUMONIA, SHARED, emit, options, require_shared_data, run, set_threads

CIFAR = SHARED / "cifar10-subset" / "cifar10_subset.npz"
K = 32  # labels a class


def halves(folder: Path, quick: bool) -> dict[str, dict[str, Path]]:
    """Per data set, a source half and a target half (train = the few-label pool, test = the evaluation images)."""
    import gzip

    def idx(path: str, header: int) -> np.ndarray:
        with gzip.open(path) as f:
            return np.frombuffer(f.read()[header:], dtype=np.uint8)

    rng = np.random.default_rng(0)
    sets = {}
    digits, labels = idx(MNIST["images"], 16).reshape(-1, 28, 28), idx(MNIST["labels"], 8)
    cifar = np.load(CIFAR)
    pneu = np.load(PNEUMONIA)
    raw = {
        "mnist": (digits, labels, None, None),
        "cifar": (cifar["train_images"], cifar["train_labels"], cifar["test_images"], cifar["test_labels"]),
        "pneumonia": (pneu["train_images"], pneu["train_labels"].reshape(-1), pneu["test_images"],
                      pneu["test_labels"].reshape(-1)),
    }
    cap = 2000 if quick else 5000
    for name, (x, y, x_test, y_test) in raw.items():
        order = rng.permutation(len(x))
        source, target = order[: len(x) // 2][:cap], order[len(x) // 2:]
        if x_test is None:  # MNIST's one split: the target half gives both its few labels and its test images
            target, test = target[: len(target) // 2], target[len(target) // 2:]
            x_test, y_test = x[test], y[test]
        paths = {"source": folder / f"{name}-source.npz", "target": folder / f"{name}-target.npz"}
        np.savez(paths["source"], train_images=x[source], train_labels=y[source])
        test_cap = 500 if quick else len(x_test)
        np.savez(paths["target"], train_images=x[target], train_labels=y[target], test_images=x_test[:test_cap],
                 test_labels=y_test[:test_cap])
        sets[name] = paths
    return sets


def data(path: Path, **extra) -> dict:
    return {"reader": "npz", "args": {"path": str(path), "splits": ["train", "test"]}, "image_size": 32, **extra}


def source(sets, out: Path, name: str, epochs: int, base: str = "scratch", strategy: str = "scratch") -> str:
    recipe = {"base": base, "backbone": "resnet18", "strategy": strategy,
              "data": data(sets[name]["source"], val_fraction=0.1, test=None),
              "train": {"epochs": epochs, "batch_size": 64, "lr": 0.002, "seed": 0}, "output": str(out)}
    run(recipe)
    return f"file:{out}"


def candidates(sets, folder: Path, quick: bool) -> dict[str, str]:
    short, long = (1, 2) if quick else (2, 6)
    found = {"scratch": "scratch:resnet18"}
    found["mnist-short"] = source(sets, folder / "mnist-short", "mnist", short)
    found["mnist-long"] = source(sets, folder / "mnist-long", "mnist", long)
    found["cifar-short"] = source(sets, folder / "cifar-short", "cifar", short)
    found["cifar-long"] = source(sets, folder / "cifar-long", "cifar", long)
    found["pneumonia"] = source(sets, folder / "pneumonia", "pneumonia", long)
    found["mnist>cifar"] = source(sets, folder / "mnist-cifar", "cifar", short, found["mnist-long"], "finetune")
    found["cifar>pneumonia"] = source(sets, folder / "cifar-pneu", "pneumonia", short, found["cifar-long"],
                                      "finetune")
    found["pneumonia>mnist"] = source(sets, folder / "pneu-mnist", "mnist", short, found["pneumonia"], "finetune")
    return found


def fine_tune(base: str, target: Path, strategy: str, epochs: int, seed: int, out: Path) -> float:
    recipe = {"base": base, "backbone": "resnet18", "strategy": strategy,
              "data": data(target, labels_per_class=K),
              "train": {"epochs": epochs, "batch_size": 32, "seed": seed}, "output": str(out)}
    accuracy = run(recipe).metrics["accuracy"]
    shutil.rmtree(out)  # 162 ResNet-18 checkpoints in a full run would fill gigabytes
    return accuracy


def main() -> None:
    from scipy.stats import kendalltau, weightedtau

    import zoo_core

    require_shared_data()
    quick = options(__doc__, "one seed, 5 epochs, 500 test images").parse_args().quick
    set_threads()
    seeds, epochs = (1, 5) if quick else (3, 15)
    report = {"targets": {}, "quick": quick}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sets = halves(tmp, quick)
        start = time.perf_counter()
        bases = candidates(sets, tmp, quick)
        print(f"{len(bases)} candidates built in {time.perf_counter() - start:.0f} s: {', '.join(bases)}", flush=True)
        for target in ("pneumonia", "mnist", "cifar"):
            start = time.perf_counter()
            ranked = zoo_core.rank(data(sets[target]["target"], labels_per_class=K), list(bases.values()))
            rank_seconds = time.perf_counter() - start
            print(f"target {target}: ranked {len(ranked)} candidates in {rank_seconds:.1f} s", flush=True)
            by_ref = {r.candidate: r for r in ranked}
            truth: dict[str, dict[str, float]] = {name: {} for name in bases}
            per_seed: dict[str, dict[str, list[float]]] = {name: {} for name in bases}
            seconds = {}
            for strategy in ("finetune", "linear-probe"):
                start = time.perf_counter()
                for name, ref in bases.items():
                    accuracies = [fine_tune(ref, sets[target]["target"], strategy, epochs, seed,
                                            tmp / f"t-{target}-{name}-{strategy}-{seed}") for seed in range(seeds)]
                    truth[name][strategy] = statistics.mean(accuracies)
                    per_seed[name][strategy] = accuracies
                    # a long run reports as it goes: a run stopped early still shows what it measured
                    print(f"  {target} {strategy} {name}: {' '.join(f'{a:.3f}' for a in accuracies)} "
                          f"({time.perf_counter() - start:.0f} s so far)", flush=True)
                seconds[strategy] = time.perf_counter() - start
            train_seconds = seconds["finetune"] / seeds  # one default fine-tune of every candidate
            print(f"\ntarget {target}: {K} labels a class; ranking every candidate {rank_seconds:.1f} s; one "
                  f"default fine-tune of every candidate ({epochs} epochs) {train_seconds:.1f} s "
                  f"({train_seconds / rank_seconds:.0f}x); linear probes {seconds['linear-probe'] / seeds:.1f} s")
            print(f"{'candidate':18} {'finetune':>9} {'probe':>7} {'LogME':>8} {'H-score':>8} {'LEEP':>7} {'NCE':>7}")
            for name, ref in bases.items():
                s = by_ref[ref].scores
                cells = [f"{s[k]:8.3f}" if k in s else f"{'-':>8}" for k in ("logme", "hscore", "leep", "nce")]
                print(f"{name:18} {truth[name]['finetune']:9.3f} {truth[name]['linear-probe']:7.3f} {' '.join(cells)}")
            taus = {}
            for score in ("logme", "hscore", "leep", "nce"):
                names = [n for n in bases if score in by_ref[bases[n]].scores]
                if len(names) < 3:
                    continue
                x = [by_ref[bases[n]].scores[score] for n in names]
                for strategy in ("finetune", "linear-probe"):
                    y = [truth[n][strategy] for n in names]
                    taus[f"{score}/{strategy}"] = {"tau": float(kendalltau(x, y).statistic),
                                                   "weighted_tau": float(weightedtau(y, x).statistic),
                                                   "candidates": len(names)}
            # the ground truth's own noise: how well one seed's accuracies order the candidates as another's do
            # (a score cannot be expected to agree with one seed better than the seeds agree with each other)
            for strategy in ("finetune", "linear-probe"):
                pairs = [kendalltau([per_seed[n][strategy][a] for n in bases],
                                    [per_seed[n][strategy][b] for n in bases]).statistic
                         for a in range(seeds) for b in range(a + 1, seeds)]
                if pairs:
                    taus[f"seed-vs-seed/{strategy}"] = {"tau": float(np.mean(pairs)), "weighted_tau": None,
                                                        "candidates": len(bases)}
            for key, value in taus.items():
                weighted = "" if value["weighted_tau"] is None else f"  weighted tau {value['weighted_tau']:+.3f}"
                print(f"  {key:24} tau {value['tau']:+.3f}{weighted}  ({value['candidates']} candidates)")
            report["targets"][target] = {"rank_seconds": rank_seconds, "train_seconds": train_seconds,
                                         "speedup": train_seconds / rank_seconds, "taus": taus,
                                         "accuracy": truth, "accuracy_per_seed": per_seed,
                                         "scores": {n: by_ref[r].scores for n, r in bases.items()}}
    print("\nmean over targets")
    for key in (f"{score}/{strategy}" for strategy in ("finetune", "linear-probe") for score in
                ("logme", "hscore", "leep", "nce", "seed-vs-seed")):
        values = [t["taus"][key] for t in report["targets"].values() if key in t["taus"]]
        if values:
            weighted = [v["weighted_tau"] for v in values if v["weighted_tau"] is not None]
            print(f"  {key:24} tau {statistics.mean(v['tau'] for v in values):+.3f}"
                  + (f"  weighted tau {statistics.mean(weighted):+.3f}" if weighted else ""))
    speedups = [t["speedup"] for t in report["targets"].values()]
    print(f"  compute: ranking is {statistics.mean(speedups):.0f}x cheaper than one default fine-tune of every "
          "candidate (the goal: >= 30x, mean tau >= 0.7)")
    emit(report)


if __name__ == "__main__":
    main()
